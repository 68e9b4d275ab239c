"""The internal side of a scenario: a tenant, its owner's calendar connected to a driver's remote calendar,
the sync engine on a fixed clock, and what a user of the bridge sees (bookings, items, free/busy, the log)."""

from __future__ import annotations

import itertools
import json
import zoneinfo
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import icalendar
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bridge import bookings, expand, freebusy
from bridge.secrets import Secrets, new_key
from bridge.settings import Settings
from bridge.store import bookings as booking_rows
from bridge.store import calendars, connections, items, users
from bridge.store.db import Store
from bridge.store.index import facts_of
from bridge.store.models import Booking, Calendar, Change, Connection, Item, Mapping, SyncRun, User
from bridge.store.objects import parse_object
from bridge.sync.engine import Engine
from bridge.sync.outcome import RunOutcome
from tests.scenarios.driver import RemoteDriver

NOW = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
ZONE = "Europe/Berlin"
WINDOW = (NOW - timedelta(days=30), NOW + timedelta(days=540))
"""The default sync window at NOW (30 days back, 18 months ahead): where free/busy is compared."""

_names = itertools.count(1)


def vcalendar(*vevents: str, timezone: bool = False) -> str:
    """A VCALENDAR around VEVENT bodies (lines joined by LF, written with CRLF)."""
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Phone//Calendar 1.0//EN"]
    if timezone:
        lines += BERLIN.splitlines()
    for body in vevents:
        lines += ["BEGIN:VEVENT", *body.strip().splitlines(), "END:VEVENT"]
    lines += ["END:VCALENDAR", ""]
    return "\r\n".join(lines)


def single(uid: str, start: datetime, *, minutes: int = 60, summary: str = "Termin", extra: str = "") -> str:
    """One timed event in UTC, as a phone writes it."""
    fmt = "%Y%m%dT%H%M%SZ"
    end = start + timedelta(minutes=minutes)
    return vcalendar(f"UID:{uid}\nDTSTAMP:20261124T080000Z\nDTSTART:{start.strftime(fmt)}\n"
                     f"DTEND:{end.strftime(fmt)}\nSUMMARY:{summary}\n{extra}")


BERLIN = """BEGIN:VTIMEZONE
TZID:Europe/Berlin
BEGIN:STANDARD
DTSTART:19701025T030000
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
TZNAME:CET
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:19700329T020000
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
TZNAME:CEST
END:DAYLIGHT
END:VTIMEZONE"""


def instances(calendar: icalendar.Calendar, start: datetime = WINDOW[0],
              end: datetime = WINDOW[1]) -> list[tuple[datetime, datetime]]:
    """The busy instances an event's text describes, in UTC (the engine's own expander, on any text)."""
    return sorted((i.start, i.end) for i in expand.instances(calendar, zoneinfo.ZoneInfo(ZONE), start, end)
                  if i.busy is not None)


@dataclass
class World:
    """One calendar (Europe/Berlin) connected to one remote calendar, and the engine that syncs them."""

    store: Store
    driver: RemoteDriver
    engine: Engine
    tenant_id: int
    calendar_id: int
    connection_id: int

    # -- running the engine ----------------------------------------------------------------------
    def sync(self, **kwargs: Any) -> RunOutcome:
        return self.engine.run(self.connection_id, **kwargs)

    def engine_with(self, **changes: Any) -> Engine:
        """The same engine with another store or adapter opener (fault injection)."""
        return replace(self.engine, **changes)

    # -- bookings (the booking engine's side) ----------------------------------------------------
    @contextmanager
    def _calendar(self) -> Iterator[tuple[Session, Calendar]]:
        with self.store.write() as session:
            calendar = session.get(Calendar, self.calendar_id)
            assert calendar is not None
            yield session, calendar

    def book(self, start: datetime, *, minutes: int = 30, name: str = "Max Muster", email: str = "max@example.com",
             notes: str = "") -> str:
        """A booking made through the booking engine; its public id."""
        with self._calendar() as (session, calendar):
            booking, _ = bookings.create(session, calendar, bookings.BookingRequest(
                start, start + timedelta(minutes=minutes), name, email, notes=notes), f"key-{next(_names)}", NOW)
            return booking.public_id

    def reschedule(self, public_id: str, start: datetime, minutes: int = 30) -> None:
        with self._calendar() as (session, calendar):
            booking = booking_rows.by_public_id(session, self.tenant_id, public_id)
            assert booking is not None
            bookings.reschedule(session, calendar, booking, start, start + timedelta(minutes=minutes), NOW)

    def cancel(self, public_id: str) -> None:
        with self._calendar() as (session, calendar):
            booking = booking_rows.by_public_id(session, self.tenant_id, public_id)
            assert booking is not None
            bookings.cancel(session, calendar, booking, NOW)

    def booking(self, public_id: str) -> Booking:
        with self.store.read() as session:
            found = booking_rows.by_public_id(session, self.tenant_id, public_id)
            assert found is not None
            return found

    # -- client items (what a CalDAV client PUTs to /dav) ----------------------------------------
    def put_client(self, href: str, text: str) -> None:
        """Create or replace a client item, written the way the /dav PUT writes it."""
        parsed = parse_object(text)
        assert parsed is not None, "not a clean calendar object"
        with self._calendar() as (session, calendar):
            owner = session.get(User, calendar.owner_id)
            assert owner is not None
            calendars.lock_for_write(session, [(owner.login, calendar.slug)])
            described = facts_of(parsed.calendar, zoneinfo.ZoneInfo(calendar.timezone), NOW)
            items.put_checked(session, calendar, items.NewItem(
                href=href, uid=parsed.uid, etag=items.etag_of(parsed.text), text=parsed.text, facts=described.facts,
                origin="client", occurrences=described.instances, occurrences_until=described.instances_until),
                items.by_href(session, calendar.id, href))

    def delete_client(self, href: str) -> None:
        with self._calendar() as (session, calendar):
            items.remove(session, calendar, href)

    # -- what the calendar holds -----------------------------------------------------------------
    def items(self, origin: str | None = None) -> list[Item]:
        with self.store.read() as session:
            query = select(Item).where(Item.calendar_id == self.calendar_id).order_by(Item.href)
            if origin is not None:
                query = query.where(Item.origin == origin)
            return list(session.scalars(query))

    def mirrored(self) -> dict[str, icalendar.Calendar]:
        """UID -> content of every item mirrored from the connection (a UID twice fails the test)."""
        found: dict[str, icalendar.Calendar] = {}
        for item in self.items(f"connection:{self.connection_id}"):
            assert item.uid not in found, f"UID {item.uid} mirrored twice"
            found[item.uid] = icalendar.Calendar.from_ical(item.text)
        return found

    def item(self, href: str) -> Item | None:
        with self.store.read() as session:
            return items.by_href(session, self.calendar_id, href)

    def busy(self, start: datetime = WINDOW[0], end: datetime = WINDOW[1]) -> list[tuple[datetime, datetime, str]]:
        """The calendar's busy periods as the booking engine's free/busy sees them (start, end, origin kind)."""
        with self.store.read() as session:
            calendar = session.get(Calendar, self.calendar_id)
            assert calendar is not None
            periods = freebusy.busy_periods(session, [calendar], start, end)[self.calendar_id]
        return sorted((p.start, p.end, p.origin.split(":")[0]) for p in periods)

    def change_rows(self) -> list[tuple[int, str, bool]]:
        """Every change row of the calendar: what CalDAV clients and the booking engine are told changed."""
        with self.store.read() as session:
            return [tuple(row) for row in session.execute(  # type: ignore[misc]
                select(Change.number, Change.href, Change.deleted)
                .where(Change.calendar_id == self.calendar_id).order_by(Change.number))]

    # -- the connection and its log ------------------------------------------------------------------
    def mapping_count(self) -> int:
        with self.store.read() as session:
            return int(session.scalar(select(func.count()).select_from(Mapping)
                                      .where(Mapping.connection_id == self.connection_id)) or 0)

    def connection(self) -> Connection:
        with self.store.read() as session:
            connection = session.get(Connection, self.connection_id)
            assert connection is not None
            return connection

    def set_state(self, state: str | None) -> None:
        with self.store.write() as session:
            connection = session.get(Connection, self.connection_id)
            assert connection is not None
            connection.sync_state = state

    def runs(self) -> list[SyncRun]:
        with self.store.read() as session:
            return list(session.scalars(select(SyncRun).where(SyncRun.connection_id == self.connection_id)
                                        .order_by(SyncRun.id)))

    def last_run(self) -> SyncRun:
        return self.runs()[-1]

    def counts(self) -> dict[str, Any]:
        return dict(json.loads(self.last_run().counts or "{}"))


def make_world(store: Store, driver: RemoteDriver, data_dir: Path, *, via: str | None = None) -> World:
    """A new tenant with its owner, a calendar and a connection to ``driver``'s calendar; several worlds
    may share one store (their names are unique)."""
    secrets = Secrets([new_key()])
    account = driver.account(via)
    n = next(_names)
    with store.write() as session:
        tenant = users.create_tenant(session, f"Praxis {n}")
        owner = users.create_user(session, tenant, login=f"erika{n}", email=f"erika{n}@example.org", password_hash="-")
        calendar = calendars.create_calendar(session, owner, "work", timezone=ZONE)
        connection = connections.create_connection(session, calendar, account.provider)
        connections.set_account(session, connection, server_url=account.server_url,
                                remote_calendar=account.remote_calendar,
                                credentials=secrets.encrypt(json.dumps(dict(account.credentials))))
        ids = tenant.id, calendar.id, connection.id
    engine = Engine(store, Settings(data_dir=data_dir, provider_ca_file=account.ca_file or ""), secrets,
                    clock=lambda: NOW)
    return World(store, driver, engine, *ids)
