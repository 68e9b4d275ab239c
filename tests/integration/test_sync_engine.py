"""The sync engine's scenarios against real CalDAV servers (a second Radicale and Xandikos on loopback):
first sync, changes both ways, bookings moved and cancelled in the external calendar, conflicts,
token reset and expiry without duplicates, fail-closed mass deletions, a crash between a remote
write and its mapping, rules at write time, directions, the sync window and the run log."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import icalendar
import pytest
from sqlalchemy import func, select

from bridge import adapters, bookings
from bridge.adapters.base import Adapter, RemoteEvent
from bridge.secrets import Secrets, new_key
from bridge.settings import Settings
from bridge.store import bookings as booking_rows
from bridge.store import calendars, connections, users
from bridge.store.db import Store
from bridge.store.models import Booking, Calendar, Change, Connection, Item, Mapping, Outbox, SyncRun
from bridge.sync import connection_admin
from bridge.sync.engine import ConnectionDisabled, Engine
from bridge.sync.outcome import RunOutcome
from bridge.sync.plan import ApplyRemoteToOwned, CancelOwned, Plan
from tests.servers import DavServer, dav_server

NOW = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
OWNER_EMAIL = "erika@example.org"


def ics(uid: str, start: datetime, hours: float = 1, summary: str = "Termin", extra: str = "") -> bytes:
    fmt = "%Y%m%dT%H%M%SZ"
    end = start + timedelta(hours=hours)
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Provider//EN", "BEGIN:VEVENT", f"UID:{uid}",
             "DTSTAMP:20261124T080000Z", f"DTSTART:{start.strftime(fmt)}", f"DTEND:{end.strftime(fmt)}",
             f"SUMMARY:{summary}", *([extra] if extra else []), "END:VEVENT", "END:VCALENDAR", ""]
    return "\r\n".join(lines).encode()


def day(n: int, hour: int = 9) -> datetime:
    return datetime(2026, 12, n, hour, tzinfo=UTC)


@pytest.fixture(scope="module", params=["radicale", "xandikos"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DavServer]:
    with dav_server(request.param, tmp_path_factory.mktemp(request.param)) as running:
        yield running


@dataclass
class World:
    """One calendar connected to one fresh remote calendar, and the engine that syncs them."""

    store: Store
    engine: Engine
    server: DavServer
    remote_url: str
    calendar_id: int
    connection_id: int
    http: httpx.Client

    # -- the external side, changed "by the provider" -----------------------------------------
    def put_remote(self, name: str, body: bytes) -> None:
        response = self.http.put(self.remote_url + name, content=body, headers={"Content-Type": "text/calendar"})
        assert response.status_code in (201, 204), response.status_code

    def delete_remote(self, name_or_href: str) -> None:
        url = name_or_href if name_or_href.startswith("http") else httpx.URL(self.remote_url).join(name_or_href)
        assert self.http.delete(url).status_code in (200, 204)

    def remote_events(self) -> dict[str, icalendar.Calendar]:
        """href -> content of every event in the remote calendar (a PROPFIND and GETs)."""
        body = ('<?xml version="1.0"?><d:propfind xmlns:d="DAV:"><d:prop><d:getetag/></d:prop></d:propfind>')
        headers = {"Depth": "1", "Content-Type": "application/xml"}
        answer = self.http.request("PROPFIND", self.remote_url, headers=headers, content=body)
        assert answer.status_code == 207
        hrefs = [h.text or "" for h in ET.fromstring(answer.content).iter("{DAV:}href")]
        events: dict[str, icalendar.Calendar] = {}
        for href in hrefs:
            if href.endswith(".ics"):
                got = self.http.get(httpx.URL(self.remote_url).join(href))
                if got.status_code == 200:
                    events[href] = icalendar.Calendar.from_ical(got.content)
        return events

    # -- the internal side ----------------------------------------------------------------------
    def sync(self, **kwargs: Any) -> RunOutcome:
        return self.engine.run(self.connection_id, **kwargs)

    def items(self, origin: str | None = None) -> list[Item]:
        with self.store.read() as session:
            query = select(Item).where(Item.calendar_id == self.calendar_id).order_by(Item.href)
            if origin is not None:
                query = query.where(Item.origin == origin)
            return list(session.scalars(query))

    def mirrored(self) -> list[Item]:
        return self.items(f"connection:{self.connection_id}")

    def summaries(self) -> list[str]:
        events = (icalendar.Calendar.from_ical(item.text).walk("VEVENT")[0] for item in self.mirrored())
        return sorted(str(event.get("SUMMARY")) for event in events)

    def change_count(self) -> int:
        with self.store.read() as session:
            return int(session.scalar(select(func.count()).select_from(Change)
                                      .where(Change.calendar_id == self.calendar_id)) or 0)

    def book(self, start: datetime, name: str = "Max Muster", key: str = "k1") -> Booking:
        with self.store.write() as session:
            calendar = session.get(Calendar, self.calendar_id)
            assert calendar is not None
            booking, _ = bookings.create(session, calendar, bookings.BookingRequest(
                start, start + timedelta(minutes=30), name, "max@example.com"), key, NOW)
            return booking

    def booking(self, public_id: str) -> Booking:
        with self.store.read() as session:
            found = booking_rows.by_public_id(session, self.tenant_id, public_id)
            assert found is not None
            return found

    @property
    def tenant_id(self) -> int:
        with self.store.read() as session:
            connection = session.get(Connection, self.connection_id)
            assert connection is not None
            return connection.tenant_id

    def connection(self) -> Connection:
        with self.store.read() as session:
            connection = session.get(Connection, self.connection_id)
            assert connection is not None
            return connection

    def set(self, **values: Any) -> None:
        with self.store.write() as session:
            connection = session.get(Connection, self.connection_id)
            assert connection is not None
            for key, value in values.items():
                setattr(connection, key, value)

    def last_run(self) -> SyncRun:
        with self.store.read() as session:
            run = session.scalar(select(SyncRun).where(SyncRun.connection_id == self.connection_id)
                                 .order_by(SyncRun.id.desc()).limit(1))
            assert run is not None
            return run

    def counts(self) -> dict[str, Any]:
        return dict(json.loads(self.last_run().counts))

    def mappings(self) -> int:
        with self.store.read() as session:
            return int(session.scalar(select(func.count()).select_from(Mapping)
                                      .where(Mapping.connection_id == self.connection_id)) or 0)


@pytest.fixture
def world(store: Store, server: DavServer, tmp_path: Path) -> Iterator[World]:
    secrets = Secrets([new_key()])
    remote_url = server.new_calendar()
    credentials = {"username": server.auth[0], "password": server.auth[1]} if server.auth else {}
    with store.write() as session:
        tenant = users.create_tenant(session, "Praxis am Markt")
        owner = users.create_user(session, tenant, login="erika", email=OWNER_EMAIL, password_hash="-")
        calendar = calendars.create_calendar(session, owner, "work", timezone="Europe/Berlin")
        connection = connections.create_connection(session, calendar, "caldav")
        connections.set_account(session, connection, server_url=server.url, remote_calendar=remote_url,
                                credentials=secrets.encrypt(json.dumps(credentials)))
        ids = calendar.id, connection.id
    engine = Engine(store, Settings(data_dir=tmp_path), secrets, clock=lambda: NOW)
    with server.client() as http:
        yield World(store, engine, server, remote_url, ids[0], ids[1], http)


# -- inbound --------------------------------------------------------------------------------------

def test_first_sync_mirrors_remote_events_once_and_a_quiet_run_writes_nothing(world: World) -> None:
    world.put_remote("a.ics", ics("a@provider", day(7), summary="Zahnarzt"))
    world.put_remote("b.ics", ics("b@provider", day(8), summary="Friseur"))
    outcome = world.sync()
    assert outcome.status == "ok"
    assert world.summaries() == ["Friseur", "Zahnarzt"]
    assert world.last_run().baseline and world.counts()["in"] == {"created": 2}
    changes = world.change_count()
    again = world.sync()
    assert again.status == "ok" and not world.last_run().baseline
    assert len(world.mirrored()) == 2 and world.change_count() == changes
    assert world.last_run().requests <= 2


def test_remote_changes_and_deletions_reach_the_calendar(world: World) -> None:
    world.put_remote("a.ics", ics("a@provider", day(7), summary="Zahnarzt"))
    world.put_remote("b.ics", ics("b@provider", day(8), summary="Friseur"))
    world.sync()
    world.put_remote("a.ics", ics("a@provider", day(7, 11), summary="Zahnarzt verschoben"))
    world.delete_remote("b.ics")
    assert world.sync().status == "ok"
    assert world.summaries() == ["Zahnarzt verschoben"]
    assert world.counts()["in"] == {"deleted": 1, "updated": 1}


def test_rules_apply_before_anything_is_stored(world: World) -> None:
    world.put_remote("free.ics", ics("free@provider", day(7), summary="Mittagspause", extra="TRANSP:TRANSPARENT"))
    world.put_remote("private.ics", ics("p@provider", day(8), summary="Psychotherapie", extra="CLASS:PRIVATE"))
    world.sync()
    (stored,) = world.mirrored()
    assert "Psychotherapie" not in stored.text and "SUMMARY:n/a" in stored.text
    assert world.counts()["in"] == {"created": 1, "dropped": 1}


def test_events_outside_the_window_are_neither_mirrored_nor_deleted_when_they_leave_it(world: World) -> None:
    world.put_remote("old.ics", ics("old@provider", NOW - timedelta(days=90)))
    world.put_remote("soon.ics", ics("soon@provider", day(7)))
    world.sync()
    assert len(world.mirrored()) == 1
    world.engine = Engine(world.engine.store, world.engine.settings, world.engine.secrets,
                          clock=lambda: NOW + timedelta(days=60))
    world.set(sync_state=None)  # a full listing: the event now lies before the window
    world.sync()
    assert len(world.mirrored()) == 1
    assert "deleted" not in world.counts().get("in", {})


# -- outbound and bookings ------------------------------------------------------------------------------

def test_a_booking_is_pushed_once_and_follows_a_move_made_here(world: World) -> None:
    booking = world.book(day(9))
    world.sync()
    (pushed,) = world.remote_events().values()
    assert str(pushed.walk("VEVENT")[0]["SUMMARY"]) == "Max Muster"
    world.sync()
    assert len(world.remote_events()) == 1 and world.mappings() == 1
    with world.store.write() as session:
        row = session.get(Booking, booking.id)
        calendar = session.get(Calendar, world.calendar_id)
        assert row is not None and calendar is not None
        bookings.reschedule(session, calendar, row, day(9, 14), day(9, 15), NOW)
    world.sync()
    (moved,) = world.remote_events().values()
    assert moved.walk("VEVENT")[0].decoded("DTSTART") == day(9, 14)
    assert world.counts()["out"] == {"updated": 1}


def test_a_booking_moved_or_deleted_in_the_external_calendar_moves_or_cancels_here(world: World) -> None:
    booking = world.book(day(9))
    world.sync()
    ((href, pushed),) = world.remote_events().items()
    event = pushed.walk("VEVENT")[0]
    event.pop("DTSTART")
    event.pop("DTEND")
    event.add("DTSTART", day(10, 16))
    event.add("DTEND", day(10, 17))
    event.pop("SUMMARY")
    event.add("SUMMARY", "renamed by the provider")
    world.put_remote(href.rsplit("/", 1)[-1], pushed.to_ical())
    world.sync()
    moved = world.booking(booking.public_id)
    assert (moved.start, moved.end, moved.customer_name) == (day(10, 16), day(10, 17), "Max Muster")
    assert world.counts()["bookings"] == {"moved": 1}
    world.delete_remote(href)
    world.sync()
    assert world.booking(booking.public_id).status == "cancelled"
    assert world.items("booking") == [] and world.mappings() == 0
    world.sync()
    assert world.remote_events() == {}  # a cancelled booking is not pushed again


def test_both_sides_changed_the_owner_wins_and_the_log_says_so(world: World) -> None:
    booking = world.book(day(9))
    world.sync()
    ((href, pushed),) = world.remote_events().items()
    event = pushed.walk("VEVENT")[0]
    event.pop("SUMMARY")
    event.add("SUMMARY", "changed over there")
    world.put_remote(href.rsplit("/", 1)[-1], pushed.to_ical())
    with world.store.write() as session:
        row = session.get(Booking, booking.id)
        calendar = session.get(Calendar, world.calendar_id)
        assert row is not None and calendar is not None
        bookings.reschedule(session, calendar, row, day(9, 12), day(9, 13), NOW)
    world.sync()
    assert world.counts()["conflicts"] == 1
    (now_remote,) = world.remote_events().values()
    assert str(now_remote.walk("VEVENT")[0]["SUMMARY"]) == "Max Muster"
    assert now_remote.walk("VEVENT")[0].decoded("DTSTART") == day(9, 12)


def test_mirrored_events_never_go_back_and_inbound_pushes_nothing(world: World) -> None:
    world.put_remote("a.ics", ics("a@provider", day(7)))
    world.set(direction="inbound")
    world.book(day(9))
    world.sync()
    world.sync()
    assert list(world.remote_events()) == [httpx.URL(world.remote_url).join("a.ics").path]
    assert len(world.mirrored()) == 1


# -- resets, expiry, crashes, fail closed ---------------------------------------------------------------------

def test_reset_of_the_sync_token_resyncs_without_duplicates_or_rewrites(world: World) -> None:
    world.put_remote("a.ics", ics("a@provider", day(7)))
    world.book(day(9))
    world.sync()
    changes = world.change_count()
    outcome = world.sync(trigger="reset")
    assert outcome.status == "ok" and world.last_run().baseline
    assert len(world.mirrored()) == 1 and len(world.remote_events()) == 2
    assert world.change_count() == changes


def test_an_expired_token_becomes_a_baseline(world: World) -> None:
    world.put_remote("a.ics", ics("a@provider", day(7)))
    world.sync()
    world.set(sync_state='{"v":1,"t":"http://radicale.org/ns/sync/unknown"}')
    assert world.sync().status == "ok"
    assert world.counts().get("token_invalid") is True and world.last_run().baseline
    assert len(world.mirrored()) == 1


class _CrashAfterCreate:
    """An adapter that loses the process right after the provider accepted a create."""

    def __init__(self, inner: Adapter) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def create(self, event: icalendar.Calendar, key: str) -> RemoteEvent:
        self.inner.create(event, key)
        raise KeyboardInterrupt  # stands for a killed worker: nothing after the remote write runs


def test_a_crash_between_the_remote_create_and_the_mapping_leaves_no_duplicate(world: World) -> None:
    world.book(day(9))

    @contextmanager
    def crashing(account: adapters.Account) -> Iterator[Adapter]:
        with adapters.open_adapter(account) as adapter:
            yield _CrashAfterCreate(adapter)  # type: ignore[misc]

    crashy = Engine(world.engine.store, world.engine.settings, world.engine.secrets,
                    open_adapter=crashing, clock=lambda: NOW)
    with pytest.raises(KeyboardInterrupt):
        crashy.run(world.connection_id)
    assert len(world.remote_events()) == 1 and world.mappings() == 0
    world.sync()
    assert len(world.remote_events()) == 1 and world.mappings() == 1
    assert world.counts()["out"] == {"linked": 1}
    with world.store.read() as session:
        statuses = list(session.scalars(select(SyncRun.status).order_by(SyncRun.id)))
    assert statuses == ["failed", "ok"]


def test_an_emptied_remote_calendar_is_held_until_confirmed(world: World) -> None:
    for n in range(3):
        world.put_remote(f"e{n}.ics", ics(f"e{n}@provider", day(7 + n)))
    world.sync()
    for n in range(3):
        world.delete_remote(f"e{n}.ics")
    world.set(sync_state=None)  # a full listing that comes back empty
    outcome = world.sync()
    assert outcome.status == "held"
    assert len(world.mirrored()) == 3 and world.counts()["held"] == 3
    assert world.connection().sync_state is None
    assert world.sync(confirm_deletions=True).status == "ok"
    assert world.mirrored() == []


def test_a_refused_password_marks_the_connection_and_stops_retries(world: World) -> None:
    if world.server.auth is None:
        pytest.skip("Xandikos serves without authentication")
    secrets = world.engine.secrets
    world.set(credentials=secrets.encrypt(json.dumps({"username": world.server.auth[0], "password": "wrong"})))
    outcome = world.sync()
    assert outcome.status == "failed" and outcome.auth_failed
    connection = world.connection()
    assert connection.needs_attention and connection.failures == 1
    run = world.last_run()
    assert run.error_class == "AuthExpired" and "wrong" not in (run.error_message or "")


def test_a_disabled_connection_is_not_synced_even_on_request_and_keeps_its_events(world: World) -> None:
    world.put_remote("a.ics", ics("a@provider", day(7)))
    world.sync()
    world.set(enabled=False)
    world.put_remote("b.ics", ics("b@provider", day(8)))
    with pytest.raises(ConnectionDisabled):
        world.sync(trigger="manual")
    assert len(world.mirrored()) == 1


def test_the_sync_log_forgets_old_runs_but_never_the_newest(world: World) -> None:
    world.sync()
    later = NOW + timedelta(days=world.engine.settings.sync_log_days + 1)
    world.engine = Engine(world.engine.store, world.engine.settings, world.engine.secrets, clock=lambda: later)
    world.sync()
    with world.store.read() as session:
        started = list(session.scalars(select(SyncRun.started_at).where(SyncRun.connection_id == world.connection_id)))
    assert started == [later]


def test_credentials_under_a_key_no_longer_configured_fail_the_run_in_plain_words(world: World) -> None:
    world.set(credentials=Secrets([new_key()]).encrypt('{"username": "x", "password": "y"}'))
    outcome = world.sync()
    assert outcome.status == "failed" and outcome.error_class == "SecretError"
    assert "configured keys" in (world.last_run().error_message or "")


def test_a_quiet_run_skips_planning_but_never_misses_a_change_made_here(world: World) -> None:
    world.put_remote("a.ics", ics("a@provider", day(7)))
    world.sync()
    world.sync()  # plans once more: the first run's own writes moved the calendar's counter
    world.sync()
    assert world.counts().get("plan_skipped") == 1 and world.last_run().requests == 1
    world.book(day(9))
    world.sync()
    assert "plan_skipped" not in world.counts() and world.counts()["out"] == {"created": 1}
    world.sync()
    world.sync()
    world.set(direction="inbound")
    world.sync()
    assert "plan_skipped" not in world.counts()


def test_the_window_rolls_even_when_nothing_changes(world: World) -> None:
    far = NOW + timedelta(days=600)  # beyond the 548 days ahead the window reaches
    world.book(far)
    world.sync()
    world.sync()
    world.sync()
    assert world.remote_events() == {}
    world.engine = Engine(world.engine.store, world.engine.settings, world.engine.secrets,
                          clock=lambda: NOW + timedelta(days=60))
    world.sync()
    assert len(world.remote_events()) == 1


# -- versions: a change made here while a run is in flight ------------------------------------------------

@pytest.mark.parametrize("over_there", ["moved", "deleted"])
def test_a_booking_changed_here_while_the_run_is_in_flight_is_neither_overwritten_nor_mailed(
        world: World, over_there: str) -> None:
    mail = replace(world.engine.settings, smtp_host="127.0.0.1", mail_from="Kalender <calendar@praxis.example>")
    world.engine = replace(world.engine, settings=mail)
    with world.store.write() as session:
        connection = session.get(Connection, world.connection_id)
        assert connection is not None
        connection_admin.change_options(session, connection, {"notify_customers": True}, NOW, token_max_age_days=30)
    booking = world.book(day(9))
    world.sync()
    ((href, pushed),) = world.remote_events().items()
    if over_there == "moved":  # the practitioner moves it in their own calendar ...
        event = pushed.walk("VEVENT")[0]
        for name in ("DTSTART", "DTEND"):
            event.pop(name)
        event.add("DTSTART", day(10, 16))
        event.add("DTEND", day(10, 17))
        world.put_remote(href.rsplit("/", 1)[-1], pushed.to_ical())
    else:  # ... or deletes it there
        world.delete_remote(href)
    state = world.connection().sync_state
    planned: list[type] = []

    def booking_engine_moves_it_meanwhile(decided: Plan) -> None:
        """Runs between the plan and its application: the API reschedules the booking, committed."""
        if planned:
            return
        planned.extend(type(action) for action in decided.actions)
        with world.store.write() as session:
            row = session.get(Booking, booking.id)
            calendar = session.get(Calendar, world.calendar_id)
            assert row is not None and calendar is not None
            bookings.reschedule(session, calendar, row, day(9, 12), day(9, 13), NOW)

    world.engine = replace(world.engine, on_planned=booking_engine_moves_it_meanwhile)
    outbox_before = outbox_rows(world)
    outcome = world.sync()
    assert planned == [ApplyRemoteToOwned if over_there == "moved" else CancelOwned]
    assert outcome.status == "partial"
    assert world.counts()["skipped_stale"] == 1 and "bookings" not in world.counts()
    assert world.counts()["stale_actions"] == [{"action": planned[0].__name__}]
    kept = world.booking(booking.public_id)
    assert (kept.status, kept.start) == ("confirmed", day(9, 12))  # the change made here stands
    assert outbox_rows(world) == outbox_before  # the customer is told of nothing that no longer holds
    assert world.connection().sync_state == state  # the next run sees the change over there again

    world.engine = replace(world.engine, on_planned=None)
    assert world.sync().status == "ok"
    assert world.counts()["conflicts"] == 1  # both sides changed: the booking, owned here, wins
    (now_remote,) = world.remote_events().values()
    assert now_remote.walk("VEVENT")[0].decoded("DTSTART") == day(9, 12)
    assert world.booking(booking.public_id).status == "confirmed"


def outbox_rows(world: World) -> int:
    with world.store.read() as session:
        return int(session.scalar(select(func.count()).select_from(Outbox)) or 0)
