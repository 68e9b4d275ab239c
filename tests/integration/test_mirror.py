"""Mirrored items: each option and iCalendar marker, read back from the database rows store_remote wrote;
option changes (tightening at once, loosening by baseline); the UID rule; no write for unchanged text."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import pytest
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from bridge import rules
from bridge.store import calendars, connections, items, users, writers
from bridge.store.db import Store
from bridge.store.index import facts_of
from bridge.store.models import Calendar, Change, Connection, Item, Occurrence, User
from bridge.sync import mirror

NOW = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
OWNER_EMAIL = "erika@example.org"
UID = "evt-1@google.com"
TIMED = "DTSTART;TZID=Europe/Berlin:20261207T090000\nDTEND;TZID=Europe/Berlin:20261207T100000"
ALL_DAY = "DTSTART;VALUE=DATE:20261207\nDTEND;VALUE=DATE:20261208"
DETAILS = ("SUMMARY:Arzt Dr. Geheim\nDESCRIPTION:Blutabnahme\nLOCATION:Praxis Geheim\\, Hauptstr. 1\n"
           "GEO:52.5;13.4\nX-MICROSOFT-LOCATIONDISPLAYNAME:Praxis Geheim")


def vevent(body: str, uid: str = UID) -> str:
    return f"BEGIN:VEVENT\nUID:{uid}\nDTSTAMP:20261124T080000Z\n{body.strip()}\nEND:VEVENT"


def remote(*events: str) -> icalendar.Calendar:
    """An item as an adapter hands it over (Google's PRODID, METHOD and a calendar name included)."""
    text = "\n".join(["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Google Inc//Google Calendar 70.9054//EN",
                      "METHOD:PUBLISH", "X-WR-CALNAME:erika@example.org", *events, "END:VCALENDAR", ""])
    return icalendar.Calendar.from_ical(text.replace("\n", "\r\n"))


def event(body: str, uid: str = UID) -> icalendar.Calendar:
    return remote(vevent(body, uid))


def unfold(text: str) -> str:
    """Stored text with folded lines joined and LF line ends, so that a check cannot miss a folded match."""
    return text.replace("\r\n ", "").replace("\r\n", "\n")


def at(hour: int, minute: int = 0, day: int = 7) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=UTC)


@dataclass
class World:
    """One tenant, its owner erika, her calendar in Europe/Berlin and two connections to it."""

    store: Store
    calendar_id: int
    connection_ids: tuple[int, int]

    @contextmanager
    def write(self, which: int = 0) -> Iterator[tuple[Session, Connection, Calendar, User]]:
        with self.store.write() as session:
            connection = session.get(Connection, self.connection_ids[which])
            calendar = session.get(Calendar, self.calendar_id)
            assert connection is not None and calendar is not None
            owner = session.get(User, calendar.owner_id)
            assert owner is not None
            yield session, connection, calendar, owner

    def configure(self, which: int = 0, **options: Any) -> None:
        """Set a connection's options directly, as if it had been created with them."""
        with self.write(which) as (session, connection, _calendar, _owner):
            connections.save_options(session, connection, options)

    def mirror(self, ics: icalendar.Calendar, remote_id: str = "r1", which: int = 0) -> Item | None:
        with self.write(which) as (session, connection, calendar, owner):
            return mirror.store_remote(session, connection, calendar, owner, ics, remote_id, NOW)

    def change(self, options: Any, which: int = 0) -> mirror.OptionChange:
        with self.write(which) as (session, connection, calendar, owner):
            return mirror.change_options(session, connection, calendar, owner, options, NOW)

    def rows(self, which: int | None = None) -> list[Item]:
        """The item rows, read back in a transaction of their own."""
        with self.store.read() as session:
            query = select(Item).where(Item.calendar_id == self.calendar_id).order_by(Item.href)
            if which is not None:
                query = query.where(Item.origin == f"connection:{self.connection_ids[which]}")
            return list(session.scalars(query))

    def row(self, remote_id: str = "r1", which: int = 0) -> Item | None:
        with self.store.read() as session:
            connection = session.get(Connection, self.connection_ids[which])
            assert connection is not None
            return items.by_href(session, self.calendar_id, mirror.href_for(connection, remote_id))

    def occurrences(self, item_id: int) -> list[tuple[datetime, datetime, str | None]]:
        with self.store.read() as session:
            return [(o.start, o.end, o.busy) for o in session.scalars(
                select(Occurrence).where(Occurrence.item_id == item_id).order_by(Occurrence.start))]

    def change_rows(self) -> list[tuple[int, str, bool]]:
        with self.store.read() as session:
            return [(number, href, deleted) for number, href, deleted in session.execute(
                select(Change.number, Change.href, Change.deleted)
                .where(Change.calendar_id == self.calendar_id).order_by(Change.number))]

    def connection(self, which: int = 0) -> Connection:
        with self.store.read() as session:
            connection = session.get(Connection, self.connection_ids[which])
            assert connection is not None
            return connection

    def salt(self, which: int = 0) -> bytes:
        return bytes.fromhex(self.connection(which).uid_salt)

    def put_client_item(self, href: str, uid: str, body: str) -> None:
        """An item a CalDAV client wrote, through the store as the storage plugin writes it."""
        text = event(body, uid).to_ical().decode()
        with self.write() as (session, _connection, calendar, _owner):
            facts = facts_of(icalendar.Calendar.from_ical(text), ZoneInfo(calendar.timezone), NOW)
            items.write(session, calendar, items.NewItem(href=href, uid=uid, etag=items.etag_of(text), text=text,
                                                         facts=facts.facts), writers.CLIENT)


@pytest.fixture
def world(store: Store) -> World:
    with store.write() as session:
        tenant = users.create_tenant(session, "Praxis am Markt")
        owner = users.create_user(session, tenant, login="erika", email=OWNER_EMAIL, password_hash="-")
        calendar = calendars.create_calendar(session, owner, "work", timezone="Europe/Berlin")
        first = connections.create_connection(session, calendar, "google")
        second = connections.create_connection(session, calendar, "microsoft")
        return World(store, calendar.id, (first.id, second.id))


# -- markers: TRANSP, X-MICROSOFT-CDO-BUSYSTATUS, CLASS, STATUS, the owner's PARTSTAT -----------------------

def test_transp_opaque_is_stored_transparent_leaves_no_row_and_becoming_transparent_removes(world: World) -> None:
    item = world.mirror(event(f"{TIMED}\nSUMMARY:Team meeting"))
    assert item is not None
    (row,) = world.rows()
    assert row.href == mirror.href_for(world.connection(), "r1")
    assert re.fullmatch(rf"c{world.connection_ids[0]}-[0-9a-f]{{40}}\.ics", row.href)
    assert (row.origin, row.uid, row.busy, row.transparency, row.dtstart, row.dtend) == (
        f"connection:{world.connection_ids[0]}", UID, "BUSY", None, at(8), at(9))
    text = unfold(row.text)
    assert "SUMMARY:Team meeting" in text and "METHOD" not in text and "X-WR-CALNAME" not in text
    assert "BEGIN:VTIMEZONE" in text and row.etag == items.etag_of(row.text)

    assert world.mirror(event(f"{TIMED}\nTRANSP:TRANSPARENT\nSUMMARY:Focus time", uid="focus"), "r2") is None
    assert world.row("r2") is None

    assert world.mirror(event(f"{TIMED}\nSUMMARY:Team meeting\nTRANSP:TRANSPARENT\nSEQUENCE:1")) is None
    assert world.rows() == []
    assert [(href, deleted) for _, href, deleted in world.change_rows()] == [(row.href, False), (row.href, True)]


def test_busy_status_decides_what_is_stored_and_how_busy(world: World) -> None:
    for status in ("FREE", "WORKINGELSEWHERE", "TENTATIVE", "OOF", "BUSY"):
        world.mirror(event(f"{TIMED}\nX-MICROSOFT-CDO-BUSYSTATUS:{status}", uid=status), remote_id=status)
    assert world.row("FREE") is None and world.row("WORKINGELSEWHERE") is None
    assert {row.uid: row.busy for row in world.rows()} == {
        "TENTATIVE": "BUSY-TENTATIVE", "OOF": "BUSY-UNAVAILABLE", "BUSY": "BUSY"}


def test_class_private_and_confidential_keep_only_their_times_under_a_hashed_uid(world: World) -> None:
    for klass in ("PRIVATE", "CONFIDENTIAL"):
        world.mirror(event(f"{TIMED}\nCLASS:{klass}\n{DETAILS}", uid=f"{klass}@google.com"), remote_id=klass)
    for klass in ("PRIVATE", "CONFIDENTIAL"):
        row = world.row(klass)
        assert row is not None
        text = unfold(row.text)
        assert "SUMMARY:n/a" in text and "DESCRIPTION" not in text and "Geheim" not in text
        assert "\nLOCATION" not in text and "GEO" not in text
        assert row.uid == rules.hashed_uid(f"{klass}@google.com", world.salt()) and klass not in row.uid
        assert (row.busy, row.klass, row.dtstart, row.dtend) == ("BUSY", klass, at(8), at(9))


def test_status_cancelled_leaves_no_row_or_no_instance_and_tentative_is_tentatively_busy(world: World) -> None:
    assert world.mirror(event(f"{TIMED}\nSTATUS:CANCELLED", uid="cancelled"), "cancelled") is None
    world.mirror(event(f"{TIMED}\nSTATUS:TENTATIVE", uid="tentative"), "tentative")
    world.mirror(remote(
        vevent(f"{TIMED}\nRRULE:FREQ=WEEKLY;COUNT=4\nSUMMARY:Weekly", "series"),
        vevent("RECURRENCE-ID;TZID=Europe/Berlin:20261214T090000\nDTSTART;TZID=Europe/Berlin:20261214T090000\n"
               "DTEND;TZID=Europe/Berlin:20261214T100000\nSTATUS:CANCELLED", "series")), "series")
    assert world.row("cancelled") is None
    tentative, series = world.row("tentative"), world.row("series")
    assert tentative is not None and series is not None
    assert (tentative.status, tentative.busy) == ("TENTATIVE", "BUSY-TENTATIVE")
    assert series.recurring and "EXDATE;TZID=Europe/Berlin:20261214T090000" in unfold(series.text)
    assert "RECURRENCE-ID" not in series.text
    assert world.occurrences(series.id) == [
        (at(8), at(9), "BUSY"), (at(8, day=21), at(9, day=21), "BUSY"), (at(8, day=28), at(9, day=28), "BUSY")]


def test_invitation_the_owner_declined_leaves_no_row(world: World) -> None:
    declined = "ATTENDEE;PARTSTAT=DECLINED:mailto:Erika@Example.org"
    others = "ATTENDEE;PARTSTAT=DECLINED:mailto:max@example.org\nATTENDEE;PARTSTAT=ACCEPTED:mailto:erika@example.org"
    assert world.mirror(event(f"{TIMED}\nORGANIZER:mailto:boss@example.org\n{declined}"), "declined") is None
    world.mirror(event(f"{TIMED}\nORGANIZER:mailto:boss@example.org\n{others}", uid="other"), "accepted")
    assert [row.uid for row in world.rows()] == ["other"]
    assert world.row("accepted") is not None and world.row("declined") is None


# -- options --------------------------------------------------------------------------------------------------

def test_transparent_as_busy_stores_free_marked_events_busy(world: World) -> None:
    world.configure(transparent_as_busy=True)
    world.mirror(event(f"{TIMED}\nTRANSP:TRANSPARENT\nSUMMARY:Focus time", uid="transp"), "transp")
    world.mirror(event(f"{TIMED}\nX-MICROSOFT-CDO-BUSYSTATUS:FREE", uid="free"), "free")
    for remote_id in ("transp", "free"):
        row = world.row(remote_id)
        assert row is not None
        assert (row.busy, row.transparency, row.dtstart, row.dtend) == ("BUSY", "OPAQUE", at(8), at(9))
        text = unfold(row.text)
        assert "X-CALBRIDGE-MADE-BUSY:TRUE" in text and "TRANSPARENT" not in text
        assert "X-MICROSOFT-CDO-BUSYSTATUS" not in text


def test_private_without_details_off_keeps_a_private_event_as_it_is(world: World) -> None:
    world.configure(private_without_details=False)
    world.mirror(event(f"{TIMED}\nCLASS:PRIVATE\n{DETAILS}"))
    (row,) = world.rows()
    assert row.uid == UID and "DESCRIPTION:Blutabnahme" in unfold(row.text) and "LOCATION:Praxis" in unfold(row.text)


def test_all_day_events_leave_no_row_unless_allday_as_busy_makes_them_busy_in_the_calendars_zone(
        world: World) -> None:
    assert world.mirror(event(f"{ALL_DAY}\nSUMMARY:Urlaub\nTRANSP:TRANSPARENT")) is None
    assert world.rows() == []
    world.configure(allday_as_busy=True)
    world.mirror(event(f"{ALL_DAY}\nSUMMARY:Urlaub\nTRANSP:TRANSPARENT"))
    (row,) = world.rows()
    assert (row.busy, row.transparency) == ("BUSY", "OPAQUE")
    assert (row.dtstart, row.dtend) == (at(23, day=6), at(23, day=7))  # Berlin is UTC+1 in December
    assert "DTSTART;VALUE=DATE:20261207" in unfold(row.text)


def test_anonymize_location_leaves_no_location_in_the_row(world: World) -> None:
    world.configure(anonymize_location=True)
    world.mirror(event(f"{TIMED}\n{DETAILS}\nCONFERENCE;VALUE=URI:https://meet.example/abc-defg"))
    (row,) = world.rows()
    text = unfold(row.text)
    assert "\nLOCATION" not in text and "GEO" not in text and "X-MICROSOFT-LOCATION" not in text
    assert "meet.example" not in text and "Praxis" not in text
    assert "SUMMARY:Arzt Dr. Geheim" in text and "DESCRIPTION:Blutabnahme" in text


def test_no_personal_data_keeps_only_the_times(world: World) -> None:
    world.configure(no_personal_data=True)
    body = (f"{TIMED}\n{DETAILS}\nORGANIZER;CN=Boss:mailto:boss@example.org\n"
            "ATTENDEE;CN=Erika:mailto:erika@example.org\nBEGIN:VALARM\nACTION:DISPLAY\nDESCRIPTION:Reminder\n"
            "TRIGGER:-PT10M\nEND:VALARM")
    world.mirror(event(body))
    (row,) = world.rows()
    text = unfold(row.text)
    assert "SUMMARY:n/a" in text
    for gone in ("DESCRIPTION", "\nLOCATION", "ORGANIZER", "ATTENDEE", "VALARM", "Geheim", "erika", UID):
        assert gone not in text
    assert row.uid == rules.hashed_uid(UID, world.salt()) and (row.dtstart, row.busy) == (at(8), "BUSY")


def test_floating_time_is_read_in_the_sync_timezone(world: World) -> None:
    world.mirror(event("DTSTART:20261207T090000\nDTEND:20261207T100000", uid="calendar-zone"), "berlin")
    world.configure(sync_timezone="UTC")
    world.mirror(event("DTSTART:20261207T090000\nDTEND:20261207T100000", uid="utc"), "utc")
    berlin, utc = world.row("berlin"), world.row("utc")
    assert berlin is not None and utc is not None
    assert (berlin.dtstart, berlin.dtend) == (at(8), at(9))  # no sync zone: the calendar's
    assert "DTSTART;TZID=Europe/Berlin:20261207T090000" in unfold(berlin.text)
    assert (utc.dtstart, utc.dtend) == (at(9), at(10)) and "DTSTART:20261207T090000Z" in unfold(utc.text)


# -- unchanged text, removal, the UID rule ---------------------------------------------------------------------

def test_unchanged_remote_item_writes_no_change_row(world: World) -> None:
    series = f"{TIMED}\nSUMMARY:Team meeting\nRRULE:FREQ=DAILY;COUNT=3"
    world.mirror(event(series))
    (before,) = world.rows()
    changes_before = world.change_rows()
    again = world.mirror(event(series))  # a fresh object with the same content, as the next sync run brings
    assert again is not None and again.id == before.id
    (after,) = world.rows()
    assert world.change_rows() == changes_before
    assert (after.etag, after.modified_at, after.text) == (before.etag, before.modified_at, before.text)
    assert len(world.occurrences(after.id)) == 3
    world.mirror(event(series.replace("Team meeting", "Team meeting (room 2)")))
    assert len(world.change_rows()) == 2 and world.rows()[0].etag != before.etag


def test_same_uid_from_two_connections_or_a_client_is_a_second_item_under_a_hashed_uid(world: World) -> None:
    world.mirror(event(f"{TIMED}\nSUMMARY:Google copy"), "g-1", which=0)
    world.mirror(event(f"{TIMED}\nSUMMARY:Outlook copy"), "AAMkAD=", which=1)
    (first,), (second,) = world.rows(0), world.rows(1)
    assert first.uid == UID and second.uid == rules.hashed_uid(UID, world.salt(1)) and first.href != second.href
    assert f"UID:{second.uid}" in unfold(second.text)
    # stable: with the first one gone the second keeps its UID (a UID changing under one href confuses clients)
    with world.write(0) as (session, connection, calendar, _owner):
        assert mirror.remove_remote(session, connection, calendar, "g-1") is True
    moved = world.mirror(event(f"{TIMED}\nSUMMARY:Outlook copy, moved"), "AAMkAD=", which=1)
    assert moved is not None and moved.uid == second.uid
    # a UID a CalDAV client holds is not taken over either
    world.put_client_item("thunderbird.ics", "client-uid@example.org", TIMED)
    world.mirror(event(f"{TIMED}\nSUMMARY:From Google", uid="client-uid@example.org"), "g-2", which=0)
    client = world.rows()[-1]
    assert (client.href, client.uid, client.origin) == ("thunderbird.ics", "client-uid@example.org", "client")
    mirrored = world.row("g-2")
    assert mirrored is not None and mirrored.uid == rules.hashed_uid("client-uid@example.org", world.salt())


def test_remove_remote_and_writes_touch_only_this_connections_items(world: World) -> None:
    world.mirror(event(TIMED))
    with world.write(1) as (session, connection, calendar, _owner):
        assert mirror.remove_remote(session, connection, calendar, "r1") is False  # another connection's id
    with world.write() as (session, connection, calendar, _owner):
        assert mirror.remove_remote(session, connection, calendar, "r1") is True
        assert mirror.remove_remote(session, connection, calendar, "r1") is False
    assert world.rows() == [] and [deleted for _, _, deleted in world.change_rows()] == [False, True]
    # a client item that happens to sit at the connection's href is neither replaced nor removed
    world.put_client_item(mirror.href_for(world.connection(), "r1"), "client-uid", TIMED)
    with pytest.raises(mirror.HrefTaken):
        world.mirror(event(TIMED))
    assert world.mirror(event(f"{TIMED}\nTRANSP:TRANSPARENT")) is None
    with world.write() as (session, connection, calendar, _owner):
        assert mirror.remove_remote(session, connection, calendar, "r1") is False
    assert [(row.uid, row.origin) for row in world.rows()] == [("client-uid", "client")]


# -- option changes -------------------------------------------------------------------------------------------

def _text_with(world: World, which: int, *needles: str) -> int:
    """How many stored items of the connection still hold any of ``needles``, asked in SQL."""
    with world.store.read() as session:
        return int(session.scalar(select(func.count()).select_from(Item).where(
            Item.origin == f"connection:{world.connection_ids[which]}",
            or_(*(Item.text.like(f"%{needle}%") for needle in needles)))) or 0)


def test_tightening_reapplies_the_rules_to_stored_items_at_once(world: World) -> None:
    for n in range(3):
        world.mirror(event(f"{TIMED}\n{DETAILS}", uid=f"e{n}"), f"r{n}")
    world.mirror(event(f"{TIMED}\n{DETAILS}", uid="e-other"), "r0", which=1)
    world.mirror(event(f"{TIMED}\nCLASS:PRIVATE", uid="already-bare"), "bare")  # nothing left to take
    counter = len(world.change_rows())
    assert _text_with(world, 0, "\nLOCATION", "DESCRIPTION", "Geheim") == 3

    change = world.change({"anonymize_location": True, "no_personal_data": True, "private_without_details": True})

    assert change == mirror.OptionChange(("anonymize_location", "no_personal_data"), (), 3, 0, False)
    assert _text_with(world, 0, "\nLOCATION", "DESCRIPTION", "Geheim", "GEO:") == 0
    assert {row.uid for row in world.rows(0)} == {
        rules.hashed_uid(uid, world.salt()) for uid in ("e0", "e1", "e2", "already-bare")}
    assert _text_with(world, 1, "\nLOCATION", "DESCRIPTION") == 1  # another connection's items are not touched
    assert len(world.change_rows()) == counter + 3  # the bare private item was not rewritten
    assert json.loads(world.connection().options) == {
        "anonymize_location": True, "no_personal_data": True, "private_without_details": True}
    assert world.connection().baseline_due is False


def test_turning_transparent_as_busy_and_allday_as_busy_off_removes_what_they_kept(world: World) -> None:
    world.configure(transparent_as_busy=True, allday_as_busy=True)
    world.mirror(event(f"{TIMED}\nTRANSP:TRANSPARENT", uid="made-busy"), "free")
    world.mirror(event(f"{TIMED}\nX-MICROSOFT-CDO-BUSYSTATUS:FREE", uid="made-busy-too"), "outlook-free")
    world.mirror(event(ALL_DAY, uid="holiday"), "holiday")
    world.mirror(event(f"{TIMED}\nSUMMARY:Really busy", uid="busy"), "busy")
    counter = len(world.change_rows())

    change = world.change({"transparent_as_busy": False, "allday_as_busy": False, "sync_timezone": "UTC"})

    assert change == mirror.OptionChange(("transparent_as_busy", "allday_as_busy"), ("sync_timezone",), 0, 3, True)
    assert [row.uid for row in world.rows()] == ["busy"]
    assert [deleted for _, _, deleted in world.change_rows()[counter:]] == [True, True, True]


def test_loosening_requests_a_baseline_and_leaves_rows_alone(world: World) -> None:
    world.configure(anonymize_location=True, private_without_details=True)
    world.mirror(event(f"{TIMED}\n{DETAILS}"))
    before, changes_before = world.rows(), world.change_rows()

    change = world.change({"anonymize_location": False, "transparent_as_busy": True, "allday_as_busy": True,
                           "private_without_details": False, "sync_timezone": "America/New_York"})

    assert change == mirror.OptionChange((), ("transparent_as_busy", "allday_as_busy", "anonymize_location",
                                              "private_without_details", "sync_timezone"), 0, 0, True)
    assert world.connection().baseline_due is True and world.connection(1).baseline_due is False
    assert [(r.text, r.etag) for r in world.rows()] == [(r.text, r.etag) for r in before]
    assert world.change_rows() == changes_before
    assert json.loads(world.connection().options) == {
        "anonymize_location": False, "transparent_as_busy": True, "allday_as_busy": True,
        "private_without_details": False, "sync_timezone": "America/New_York"}


INVALID_OPTIONS: list[tuple[Any, str]] = [
    ({"anonymise_location": True, "direction": "both"}, "unknown connection options: anonymise_location, direction"),
    ({"uid_salt": "00"}, "unknown connection options: uid_salt"),
    ({"transparent_as_busy": 1}, "transparent_as_busy must be true or false"),
    ({"no_personal_data": "yes"}, "no_personal_data must be true or false"),
    ({"sync_timezone": "W. Europe Standard Time"}, "is not an IANA time zone"),
    ({"sync_timezone": "../etc/passwd"}, "is not an IANA time zone"),
    ({"sync_timezone": 1}, "sync_timezone must be an IANA time zone or null"),
    (["anonymize_location"], "connection options must be an object"),
]


def test_invalid_options_are_refused_and_nothing_changes(world: World) -> None:
    world.mirror(event(f"{TIMED}\n{DETAILS}"))
    for options, message in INVALID_OPTIONS:  # one database for the whole table: the file stays fast
        wanted = {"anonymize_location": True, **options} if isinstance(options, dict) else options
        with pytest.raises(ValueError, match=re.escape(message)):
            world.change(wanted)
    assert json.loads(world.connection().options) == {}
    assert "LOCATION:Praxis" in unfold(world.rows()[0].text)
    assert world.change({"sync_timezone": None}).loosened == ()  # null is valid, and no change
    # options stored without validation (create_connection takes any dict) are refused by name
    world.configure(notify_customer=True)
    with pytest.raises(ValueError, match="unknown connection options: notify_customer "):
        world.mirror(event(TIMED, uid="later"), "later")
    assert world.row("later") is None
