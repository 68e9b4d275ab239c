"""The engine behind a worker: what ``calbridge worker`` and the server's own worker thread run."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from bridge.notify.sender import MailSender
from bridge.secrets import Secrets
from bridge.settings import Settings
from bridge.store.db import Store
from bridge.sync.engine import Engine
from bridge.sync.outcome import RunOutcome
from bridge.sync.runlog import progress_recorder
from bridge.sync.worker import Worker
from bridge.webhooks import WebhookSender


def engine_worker(store: Store, settings: Settings, *, concurrency: int, poll_seconds: float = 5.0) -> Worker:
    """A worker whose runs are the engine's, with the keys from the settings; a long run's progress is kept
    on its log row for the admin page."""
    engine = Engine(store, settings, Secrets.from_settings(settings))
    def run(connection_id: int, trigger: str) -> RunOutcome:
        return engine.run(connection_id, trigger=trigger, progress=progress_recorder(store, connection_id))

    return Worker(store, run, concurrency=concurrency, poll_seconds=poll_seconds)


@contextmanager
def background_worker(store: Store, settings: Settings) -> Iterator[Worker | None]:
    """The server's own worker on a thread (``sync_workers`` at once), stopped after its round on exit,
    and beside it a webhook sender and (with SMTP settings) a mail sender on threads of their own."""
    if settings.sync_workers == 0:
        yield None
        return
    worker = engine_worker(store, settings, concurrency=settings.sync_workers)
    stop = threading.Event()
    sender = WebhookSender(store, Secrets.from_settings(settings))
    threads = [threading.Thread(target=worker.serve, args=(stop,), name="calbridge-sync-worker", daemon=True),
               threading.Thread(target=sender.serve, args=(stop,), name="calbridge-webhooks", daemon=True)]
    mail = MailSender.from_settings(store, settings)  # None when no SMTP server is configured
    if mail is not None:
        threads.append(threading.Thread(target=mail.serve, args=(stop,), name="calbridge-mail", daemon=True))
    for thread in threads:
        thread.start()
    try:
        yield worker
    finally:
        stop.set()
        for thread in threads:
            thread.join()
        sender.close()
