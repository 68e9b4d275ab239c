"""Issue 6, rate limiting: a provider that answers 429 with ``Retry-After: 2`` is not called again before 2 s.

The real worker loop (scheduler leases, engine runs, back-off) polls every 50 ms against a Google or Graph
stand-in that throttles the first API request. For longer than the Retry-After the stand-in's request log
must stay silent; the run is in the sync log as rate-limited. The product then waits its own minimum
(backoff.MIN_DELAY_SECONDS, longer than 2 s): that rest is skipped by moving the clock the engine and the
worker share to the due time the run set, after which the worker's next run succeeds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bridge.secrets import Secrets, new_key
from bridge.settings import load_settings
from bridge.store.db import Store
from bridge.store.models import Connection, SyncRun
from bridge.sync.engine import Engine
from bridge.sync.worker import Worker
from tests.integration.test_provider_secrets import Cli, Provider, connected, running_provider, write_config

RETRY_AFTER = 2
POLL = 0.05


@pytest.fixture(params=["google", "microsoft"])
def provider(request: pytest.FixtureRequest) -> Iterator[Provider]:
    with running_provider(request.param) as running:
        yield running


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def runs_of(store: Store, connection_id: int) -> list[SyncRun]:
    with store.read() as session:
        return list(session.scalars(select(SyncRun).where(SyncRun.connection_id == connection_id)
                                    .order_by(SyncRun.id)))


def test_a_429_with_retry_after_2_is_not_followed_by_a_request_within_2_seconds(
        provider: Provider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("BRIDGE_CONFIG", "BRIDGE_DATABASE_URL", "BRIDGE_SECRET_KEYS", "BRIDGE_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    config = write_config(tmp_path / "calbridge.toml", tmp_path / "data", provider, [new_key()])
    cli = Cli(config, monkeypatch, capsys)
    connection_id = connected(cli, provider, monkeypatch)
    settings = load_settings(config)
    store = Store(settings.effective_database_url)
    skipped = [timedelta(0)]

    def clock() -> datetime:
        return datetime.now(UTC) + skipped[0]

    engine = Engine(store, settings, Secrets.from_settings(settings), clock=clock)
    worker = Worker(store, lambda connection_id, trigger: engine.run(connection_id, trigger=trigger),
                    poll_seconds=POLL, clock=clock)
    provider.throttle_next(RETRY_AFTER)
    stop = threading.Event()
    thread = threading.Thread(target=worker.serve, args=(stop,), daemon=True)
    thread.start()
    try:
        wait_for(lambda: any(status == 429 for _, _, _, status in provider.requests()), 20, "the 429")
        throttled_at, _, throttled_path, _ = next(e for e in provider.requests() if e[3] == 429)
        wait_for(lambda: [r.status for r in runs_of(store, connection_id)] == ["failed"], 10, "the run's end")
        time.sleep(max(0.0, throttled_at + RETRY_AFTER + 0.5 - time.monotonic()))  # ~50 polls of the worker
        assert [e for e in provider.requests() if e[0] > throttled_at] == [], \
            "the provider was called again before its Retry-After had passed"
        with store.read() as session:
            row = session.get(Connection, connection_id)
            assert row is not None and row.next_due_at is not None
            due = row.next_due_at
        (failed,) = runs_of(store, connection_id)
        assert (failed.error_class, failed.trigger) == ("RateLimited", "schedule")
        assert "429" in (failed.error_message or "") and failed.finished_at is not None
        assert due >= failed.finished_at + timedelta(seconds=RETRY_AFTER)
        skipped[0] = due - datetime.now(UTC) + timedelta(milliseconds=1)  # the product's own longer minimum
        wait_for(lambda: [r.status for r in runs_of(store, connection_id)] == ["failed", "ok"], 20, "the next run")
    finally:
        stop.set()
        thread.join(10)
        store.dispose()
    after = [e for e in provider.requests() if e[0] > throttled_at]
    assert after, "the next run made no request"
    next_at, _, _, next_status = next(e for e in after if e[2] == throttled_path)
    assert next_at - throttled_at >= RETRY_AFTER
    assert next_status == 200 and min(e[0] for e in after) - throttled_at >= RETRY_AFTER
