"""The sync worker: claims due connections, runs them a few at a time, and gives the leases back.

The worker only leases. The ``run`` it is given (the engine) does the sync and reschedules the
connection (:func:`bridge.sync.backoff.reschedule`) in its own transactions. One exception: when
``run`` raises, nothing rescheduled the connection, so the worker counts a failure and backs off
when it releases the lease; otherwise a connection whose run crashes would be retried every poll.

While runs are in progress a heartbeat renews their leases, so a run longer than the lease is not
taken over by another worker. What is logged of a failed run is the exception's class, never its
message (it may quote event content).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from bridge.store.db import Store
from bridge.sync import scheduler
from bridge.sync.outcome import RunOutcome

log = logging.getLogger(__name__)

RunFn = Callable[[int, str], RunOutcome]


def utcnow() -> datetime:
    return datetime.now(UTC)


def default_worker_id() -> str:
    """Host, process and a random part: unique per Worker object, readable in the lease column (64 chars)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"


class Worker:
    """Claims up to ``concurrency`` due connections per round and runs each with trigger ``schedule``."""

    def __init__(self, store: Store, run: RunFn, *, worker_id: str | None = None, concurrency: int = 2,
                 lease_seconds: int = 600, poll_seconds: float = 5.0, clock: Callable[[], datetime] = utcnow,
                 heartbeat_seconds: float | None = None) -> None:
        if concurrency < 1 or lease_seconds < 1:
            raise ValueError("concurrency and lease_seconds must be at least 1")
        self.store = store
        self.run = run
        self.worker_id = worker_id or default_worker_id()
        if len(self.worker_id) > 64:
            raise ValueError("a worker id has at most 64 characters (the lease column)")
        self.concurrency = concurrency
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.clock = clock
        # Renew well before expiry: a third of the lease leaves two chances for a slow database.
        self.heartbeat_seconds = heartbeat_seconds if heartbeat_seconds is not None else lease_seconds / 3

    def run_pending(self) -> int:
        """Claim and run one round of due connections; returns how many ran (raised ones included)."""
        ids = scheduler.claim(self.store, self.worker_id, self.clock(), limit=self.concurrency,
                              lease_seconds=self.lease_seconds)
        if not ids:
            return 0
        running = _Running(ids)
        heartbeat = threading.Thread(target=self._heartbeat, args=(running,), name="calbridge-lease-heartbeat",
                                     daemon=True)
        heartbeat.start()
        try:
            with ThreadPoolExecutor(max_workers=len(ids), thread_name_prefix="calbridge-sync") as pool:
                list(pool.map(lambda connection_id: self._run_one(connection_id, running), ids))
        finally:
            running.done.set()
            heartbeat.join()
        return len(ids)

    def serve(self, stop: threading.Event) -> None:
        """Run rounds until ``stop`` is set; a round in progress is finished first. A full round is
        followed at once by the next (there may be more due), a partial one by a pause of ``poll_seconds``."""
        while not stop.is_set():
            try:
                ran = self.run_pending()
            except Exception as exc:  # the database may be away for a while: keep polling
                log.error("claiming due connections failed: %s", type(exc).__name__)
                ran = 0
            if ran < self.concurrency:
                stop.wait(self.poll_seconds)

    def _run_one(self, connection_id: int, running: _Running) -> None:
        crashed = False
        try:
            self.run(connection_id, "schedule")
        except Exception as exc:
            crashed = True
            log.error("sync run of connection %d raised %s", connection_id, type(exc).__name__)
        running.finish(connection_id)
        try:
            if crashed:
                scheduler.release_failed(self.store, connection_id, self.worker_id, self.clock())
            else:
                scheduler.release(self.store, connection_id, self.worker_id)
        except Exception as exc:  # the lease expires by itself
            log.error("releasing the lease of connection %d failed: %s", connection_id, type(exc).__name__)

    def _heartbeat(self, running: _Running) -> None:
        while not running.done.wait(self.heartbeat_seconds):
            for connection_id in running.ids():
                try:
                    renewed = scheduler.renew(self.store, connection_id, self.worker_id, self.clock(),
                                              self.lease_seconds)
                except Exception as exc:  # try again at the next beat
                    log.error("renewing the lease of connection %d failed: %s", connection_id, type(exc).__name__)
                    continue
                if not renewed and running.finish(connection_id):  # not just released after its run ended
                    log.warning("the lease of connection %d was lost during its run", connection_id)


class _Running:
    """The connections of one round whose runs have not ended yet, shared with the heartbeat."""

    def __init__(self, ids: Sequence[int]) -> None:
        self._ids = set(ids)
        self._lock = threading.Lock()
        self.done = threading.Event()

    def ids(self) -> list[int]:
        with self._lock:
            return sorted(self._ids)

    def finish(self, connection_id: int) -> bool:
        """Forget a connection; True if its run was still counted as in progress."""
        with self._lock:
            present = connection_id in self._ids
            self._ids.discard(connection_id)
            return present
