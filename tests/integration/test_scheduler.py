"""Leases on connections against the real databases: which connections a worker takes, that two workers
never take the same one, and that a worker survives a crashing run and gives every lease back."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text

from bridge.store import calendars, connections, users
from bridge.store.db import Store
from bridge.store.models import Connection
from bridge.sync import backoff, scheduler
from bridge.sync.outcome import RunOutcome
from bridge.sync.worker import Worker, default_worker_id

NOW = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
LEASE = 600


def add_connections(store: Store, count: int) -> list[int]:
    with store.write() as session:
        tenant = users.create_tenant(session, "Praxis am Markt")
        owner = users.create_user(session, tenant, login="erika", email="erika@example.org", password_hash="-")
        calendar = calendars.create_calendar(session, owner, "work", timezone="Europe/Berlin")
        return [connections.create_connection(session, calendar, "caldav").id for _ in range(count)]


def edit(store: Store, connection_id: int, change: Callable[[Connection], None]) -> None:
    with store.write() as session:
        found = session.get(Connection, connection_id)
        assert found is not None
        change(found)


def set_columns(store: Store, connection_id: int, **values: object) -> None:
    def change(found: Connection) -> None:
        for name, value in values.items():
            setattr(found, name, value)

    edit(store, connection_id, change)


def row(store: Store, connection_id: int) -> Connection:
    with store.read() as session:
        found = session.get(Connection, connection_id)
        assert found is not None
        return found


def leases(store: Store) -> dict[int, str | None]:
    with store.read() as session:
        return dict(session.execute(select(Connection.id, Connection.lease_owner)).all())


def claim(store: Store, worker: str = "w1", now: datetime = NOW, limit: int = 100) -> list[int]:
    return scheduler.claim(store, worker, now, limit=limit, lease_seconds=LEASE)


# -- which connections are claimed -------------------------------------------------------------------------

def test_claim_takes_due_enabled_unleased_connections_in_due_order(store: Store) -> None:
    never, overdue, due_now, later, disabled, attention, leased = add_connections(store, 7)
    set_columns(store, overdue, next_due_at=NOW - timedelta(hours=1))
    set_columns(store, due_now, next_due_at=NOW)
    set_columns(store, later, next_due_at=NOW + timedelta(seconds=1))
    set_columns(store, disabled, enabled=False)
    set_columns(store, attention, needs_attention=True)
    set_columns(store, leased, lease_owner="w0", lease_expires_at=NOW + timedelta(seconds=1))
    assert scheduler.due_count(store, NOW) == 3

    assert claim(store) == [never, overdue, due_now]
    with store.read() as session:
        for connection_id in (never, overdue, due_now):
            taken = session.get(Connection, connection_id)
            assert taken is not None
            assert (taken.lease_owner, taken.lease_expires_at) == ("w1", NOW + timedelta(seconds=LEASE))
    assert leases(store)[leased] == "w0"
    assert claim(store, "w2") == [] and scheduler.due_count(store, NOW) == 0


def test_claim_respects_the_limit_and_the_next_claim_gets_the_rest(store: Store) -> None:
    ids = add_connections(store, 5)
    first = claim(store, "w1", limit=2)
    second = claim(store, "w2", limit=10)
    assert first == ids[:2] and second == ids[2:]
    assert claim(store, "w1", limit=0) == []


def test_an_expired_lease_is_taken_over_and_the_old_owner_can_neither_renew_nor_release_it(store: Store) -> None:
    (connection_id,) = add_connections(store, 1)
    assert claim(store, "dead") == [connection_id]
    assert claim(store, "w2", now=NOW + timedelta(seconds=LEASE)) == []  # expires at, not before
    later = NOW + timedelta(seconds=LEASE + 1)
    assert claim(store, "w2", now=later) == [connection_id]
    assert not scheduler.renew(store, connection_id, "dead", later, LEASE)
    assert not scheduler.release(store, connection_id, "dead")
    assert leases(store)[connection_id] == "w2"
    assert scheduler.renew(store, connection_id, "w2", later, LEASE)
    assert row(store, connection_id).lease_expires_at == later + timedelta(seconds=LEASE)
    assert scheduler.release(store, connection_id, "w2")
    assert (row(store, connection_id).lease_owner, row(store, connection_id).lease_expires_at) == (None, None)


def test_claim_one_ignores_the_due_time_but_never_runs_beside_another_run(store: Store) -> None:
    scheduled, manual = add_connections(store, 2)
    set_columns(store, manual, next_due_at=NOW + timedelta(hours=1))
    assert claim(store, "worker") == [scheduled]
    assert not scheduler.claim_one(store, scheduled, "web", NOW, LEASE)
    assert not scheduler.claim_one(store, scheduled, "worker", NOW, LEASE)  # not even by the same worker
    assert scheduler.claim_one(store, scheduled, "web", NOW + timedelta(seconds=LEASE + 1), LEASE)  # expired

    assert scheduler.claim_one(store, manual, "web", NOW + timedelta(hours=1), LEASE)
    assert claim(store, "worker", now=NOW + timedelta(hours=1)) == [scheduled]  # manual: due, but held
    assert scheduler.release(store, manual, "web")
    assert claim(store, "worker", now=NOW + timedelta(hours=1)) == [manual]
    assert not scheduler.claim_one(store, 10**9, "web", NOW, LEASE)


def test_a_wrong_password_stops_scheduled_runs_until_the_owner_acts(store: Store) -> None:
    (connection_id,) = add_connections(store, 1)
    assert claim(store) == [connection_id]
    edit(store, connection_id, lambda c: backoff.reschedule(
        c, RunOutcome(run_id=1, status="failed", error_class="AuthExpired", auth_failed=True), NOW))
    assert scheduler.release(store, connection_id, "w1")
    assert claim(store, now=NOW + timedelta(days=365)) == []
    assert scheduler.due_count(store, NOW + timedelta(days=365)) == 0
    edit(store, connection_id, backoff.clear_attention)
    assert claim(store) == [connection_id]


def test_a_429_is_not_claimed_before_its_retry_after(store: Store) -> None:
    (connection_id,) = add_connections(store, 1)
    edit(store, connection_id, lambda c: backoff.reschedule(
        c, RunOutcome(run_id=1, status="failed", error_class="RateLimited", retry_after=120), NOW))
    assert claim(store, now=NOW + timedelta(seconds=119)) == []
    assert claim(store, now=NOW + timedelta(seconds=150)) == [connection_id]


# -- concurrent workers ------------------------------------------------------------------------------------

def _no_lock_waits(postgres_url: str) -> Store:
    """A store whose transactions fail instead of waiting more than 5 s for a row lock."""
    store = Store(postgres_url + "?options=-c%20lock_timeout%3D5000")
    with store.write() as session:
        assert session.execute(text("SHOW lock_timeout")).scalar() == "5s"
    return store


@pytest.fixture
def pg_stores(postgres_url: str) -> Iterator[tuple[Store, Store, Store]]:
    from bridge.store import migrate

    setup = Store(postgres_url)
    migrate.upgrade(setup)
    workers = (_no_lock_waits(postgres_url), _no_lock_waits(postgres_url))
    yield setup, *workers
    for each in (setup, *workers):
        each.dispose()


@pytest.mark.postgres
def test_two_workers_on_postgresql_claim_disjoint_sets_that_cover_every_due_connection(
        pg_stores: tuple[Store, Store, Store]) -> None:
    setup, *workers = pg_stores
    ids = add_connections(setup, 200)
    start = threading.Barrier(2)

    def drain(worker_store: Store, name: str) -> list[int]:
        start.wait()
        taken: list[int] = []
        while batch := scheduler.claim(worker_store, name, NOW, limit=7, lease_seconds=LEASE):
            taken += batch
        return taken

    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(drain, workers, ["w1", "w2"])
    assert not set(first) & set(second)
    assert sorted(first + second) == ids
    owners = leases(setup)
    assert all(owners[i] == "w1" for i in first) and all(owners[i] == "w2" for i in second)


@pytest.mark.postgres
def test_claim_on_postgresql_skips_rows_another_transaction_holds_instead_of_waiting(
        pg_stores: tuple[Store, Store, Store]) -> None:
    setup, other, _ = pg_stores
    ids = add_connections(setup, 6)
    with setup.write() as holder:  # a claim in progress elsewhere, holding the first three rows
        held = list(holder.scalars(select(Connection.id).where(Connection.id.in_(ids[:3])).with_for_update()))
        assert scheduler.claim(other, "w2", NOW, limit=10, lease_seconds=LEASE) == ids[3:]
    assert held == ids[:3]


# -- the worker ----------------------------------------------------------------------------------------------

class FakeEngine:
    """Stands in for the engine: records runs, reschedules as it would, and crashes on request."""

    def __init__(self, store: Store, crash_on: set[int] | None = None) -> None:
        self.store = store
        self.crash_on = crash_on or set()
        self.runs: list[tuple[int, str, str | None]] = []
        self.lock = threading.Lock()

    def __call__(self, connection_id: int, trigger: str) -> RunOutcome:
        owner = row(self.store, connection_id).lease_owner
        with self.lock:
            self.runs.append((connection_id, trigger, owner))
        if connection_id in self.crash_on:
            raise RuntimeError("SUMMARY:Arzt Dr. Geheim")  # content that must never reach the log
        outcome = RunOutcome(run_id=len(self.runs), status="ok")
        edit(self.store, connection_id, lambda c: backoff.reschedule(c, outcome, NOW))
        return outcome


def test_a_run_that_raises_does_not_stop_the_others_and_every_lease_is_released(
        store: Store, caplog: pytest.LogCaptureFixture) -> None:
    ids = add_connections(store, 3)
    engine = FakeEngine(store, crash_on={ids[1]})
    worker = Worker(store, engine, worker_id="w1", concurrency=3, clock=lambda: NOW)
    with caplog.at_level(logging.ERROR, logger="bridge.sync.worker"):
        assert worker.run_pending() == 3
    assert sorted(engine.runs) == [(i, "schedule", "w1") for i in ids]
    assert set(leases(store).values()) == {None}
    assert "RuntimeError" in caplog.text and "Geheim" not in caplog.text
    crashed = row(store, ids[1])
    assert crashed.failures == 1 and crashed.next_due_at is not None and crashed.next_due_at > NOW
    assert worker.run_pending() == 0  # the crashed one backs off instead of running again at once


def test_run_pending_runs_at_most_concurrency_per_round_until_nothing_is_due(store: Store) -> None:
    ids = add_connections(store, 5)
    engine = FakeEngine(store)
    worker = Worker(store, engine, worker_id="w1", concurrency=2, clock=lambda: NOW)
    assert [worker.run_pending() for _ in range(4)] == [2, 2, 1, 0]
    assert sorted(run[0] for run in engine.runs) == ids


def test_the_heartbeat_renews_the_lease_of_a_long_run(store: Store) -> None:
    (connection_id,) = add_connections(store, 1)
    clock = [NOW]
    renewed_until = NOW + timedelta(hours=1, seconds=LEASE)

    seen = threading.Event()

    def long_run(connection_id: int, trigger: str) -> RunOutcome:
        clock[0] = NOW + timedelta(hours=1)  # a run outlasting its lease
        for _ in range(1000):  # a bound against hanging, not a timing: the heartbeat beats every 10 ms
            if row(store, connection_id).lease_expires_at == renewed_until:
                seen.set()
                break
            seen.wait(0.01)
        return RunOutcome(run_id=1, status="ok")

    worker = Worker(store, long_run, worker_id="w1", lease_seconds=LEASE, clock=lambda: clock[0],
                    heartbeat_seconds=0.01)
    assert worker.run_pending() == 1
    assert seen.is_set()
    assert leases(store)[connection_id] is None


def test_serve_finishes_the_run_in_progress_and_stops(store: Store) -> None:
    add_connections(store, 1)
    stop = threading.Event()
    ran: list[int] = []

    def run(connection_id: int, trigger: str) -> RunOutcome:
        stop.set()  # asked to stop while this run is in progress
        ran.append(connection_id)
        return RunOutcome(run_id=1, status="ok")

    Worker(store, run, worker_id="w1", poll_seconds=0.01, clock=lambda: NOW).serve(stop)
    assert len(ran) == 1 and set(leases(store).values()) == {None}


def test_serve_survives_a_database_error_while_claiming(store: Store, caplog: pytest.LogCaptureFixture) -> None:
    stop = threading.Event()
    calls = []

    def failing_clock() -> datetime:
        calls.append(1)
        if len(calls) >= 3:
            stop.set()
        raise OSError("database away")

    with caplog.at_level(logging.ERROR, logger="bridge.sync.worker"):
        Worker(store, FakeEngine(store), worker_id="w1", poll_seconds=0.001, clock=failing_clock).serve(stop)
    assert len(calls) == 3 and "OSError" in caplog.text


def test_worker_ids_are_unique_and_fit_the_lease_column() -> None:
    assert default_worker_id() != default_worker_id()
    assert len(default_worker_id()) <= 64
    memory = Store("sqlite://")
    with pytest.raises(ValueError):
        Worker(memory, FakeEngine(memory), worker_id="x" * 65)
    memory.dispose()
