"""What issue 5 requires the sync engine to show, written against a :class:`RemoteDriver` and the engine only,
so that every provider's driver runs the same scenarios (tests/scenarios/conftest.py ``PROVIDERS``).

Covered: events made, changed and deleted on either side (remote events mirrored here; bookings and client
items pushed there, and following changes made there); weekly series with a moved, an excluded and a
cancelled instance, both ways; a booking moved on either side (customer data kept) and deleted there;
conflicts (the owner wins, the log counts them); a token reset over 500 remote events and an expired or
unreadable sync state (a baseline without duplicates, losses or rewrites); a worker killed at every write of
an incremental run and of a baseline, after the fetch, after each kind of remote write and while the token is
saved (the next run converges); and fail-closed answers to an upstream failing with 500 or 401, an emptied
calendar and a 90 % deletion (nothing mirrored or busy goes away until confirmed).

Matrix: every scenario runs per provider (Radicale and Xandikos today) and per store (SQLite and
PostgreSQL), except the 500-event reset, which runs on Radicale only (on both stores): creating 500 events
costs a Xandikos git commit each, and the scenario checks the engine, not the server.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import icalendar
import pytest

from bridge.store.db import Store
from bridge.store.models import Connection, Item
from bridge.sync import checkpoint
from bridge.sync.engine import Engine
from bridge.sync.plan import Plan
from tests.scenarios.driver import Provider, RemoteDriver
from tests.scenarios.faults import Crash, CrashingStore, CrashPoint, FaultProxy, crashing_opener, fault_proxy
from tests.scenarios.world import NOW, World, instances, make_world, single, vcalendar


def at(day: int, hour: int, minute: int = 0, month: int = 12) -> datetime:
    """A UTC instant in December 2026 (January 2027 with month=1), in the window of NOW."""
    return datetime(2026 if month == 12 else 2027, month, day, hour, minute, tzinfo=UTC)


# -- reading the two sides ---------------------------------------------------------------------------

def master(calendar: icalendar.Calendar) -> icalendar.Event:
    events = calendar.walk("VEVENT")
    return next((e for e in events if "RECURRENCE-ID" not in e), events[0])


def when(calendar: icalendar.Calendar) -> tuple[datetime, datetime]:
    event = master(calendar)
    return event.decoded("DTSTART").astimezone(UTC), event.decoded("DTEND").astimezone(UTC)


def summary(calendar: icalendar.Calendar) -> str:
    return str(master(calendar).get("SUMMARY", ""))


def remote_by_uid(driver: RemoteDriver) -> dict[str, tuple[str, icalendar.Calendar]]:
    """UID -> (handle, content) of every remote event; a UID on two events is a duplicate and fails."""
    found: dict[str, tuple[str, icalendar.Calendar]] = {}
    for handle, calendar in driver.events().items():
        for uid in {str(event["UID"]) for event in calendar.walk("VEVENT")}:
            assert uid not in found, f"{uid} is twice in the remote calendar: {found[uid][0]} and {handle}"
            found[uid] = (handle, calendar)
    return found


def owned(world: World) -> dict[str, Item]:
    """UID -> item of every booking and client item of the calendar (what is pushed out)."""
    return {item.uid: item for item in world.items() if item.origin in ("booking", "client")}


def assert_in_step(world: World) -> None:
    """Both sides show the same events: every remote event not pushed from here is mirrored once, with its
    instances and title; every booking and client item is out there once, with its instances; each pair
    has one mapping."""
    remote = remote_by_uid(world.driver)
    mine = owned(world)
    mirrored = world.mirrored()
    assert sorted(mirrored) == sorted(uid for uid in remote if uid not in mine)
    for uid, copy in mirrored.items():
        assert instances(copy) == instances(remote[uid][1]), uid
        assert summary(copy) == summary(remote[uid][1]), uid
    assert sorted(uid for uid in mine) == sorted(uid for uid in remote if uid in mine)
    for uid, item in mine.items():
        assert instances(icalendar.Calendar.from_ical(item.text)) == instances(remote[uid][1]), uid
    assert world.mapping_count() == len(remote)


def remote_snapshot(driver: RemoteDriver) -> dict[str, bytes]:
    return {handle: calendar.to_ical() for handle, calendar in driver.events().items()}


def assert_quiet(world: World) -> None:
    """A run with nothing new to do succeeds and writes nothing on either side."""
    rows, remote = world.change_rows(), remote_snapshot(world.driver)
    outcome = world.sync()
    assert outcome.status == "ok", world.last_run().error_message
    assert world.change_rows() == rows
    assert remote_snapshot(world.driver) == remote
    counts = world.counts()
    assert not counts.get("in") and not counts.get("out") and not counts.get("bookings"), counts


def sync_ok(world: World, **kwargs: Any) -> None:
    outcome = world.sync(**kwargs)
    assert outcome.status == "ok", (outcome, world.last_run().error_message, world.counts())


def moved(calendar: icalendar.Calendar, start: datetime, minutes: int, title: str | None = None) -> str:
    """The event as a person moving it in the provider's app leaves it: new times (and title), the rest kept."""
    copy = icalendar.Calendar.from_ical(calendar.to_ical())
    event = master(copy)
    for name in ("DTSTART", "DTEND", "DURATION"):
        event.pop(name, None)
    event.add("DTSTART", start)
    event.add("DTEND", start + timedelta(minutes=minutes))
    if title is not None:
        event.pop("SUMMARY", None)
        event.add("SUMMARY", title)
    return copy.to_ical().decode()


def renamed(calendar: icalendar.Calendar, title: str) -> str:
    copy = icalendar.Calendar.from_ical(calendar.to_ical())
    event = master(copy)
    event.pop("SUMMARY", None)
    event.add("SUMMARY", title)
    return copy.to_ical().decode()


# -- create, change, delete in both directions -----------------------------------------------------------

def test_events_made_changed_and_deleted_remotely_are_mirrored(world: World) -> None:
    dentist = world.driver.create("dentist@phone", single("dentist@phone", at(7, 9), summary="Zahnarzt"))
    hair = world.driver.create("hair@phone", single("hair@phone", at(8, 9), summary="Friseur"))
    sync_ok(world)
    assert {uid: (summary(c), when(c)) for uid, c in world.mirrored().items()} == {
        "dentist@phone": ("Zahnarzt", (at(7, 9), at(7, 10))), "hair@phone": ("Friseur", (at(8, 9), at(8, 10)))}
    assert world.busy() == [(at(7, 9), at(7, 10), "connection"), (at(8, 9), at(8, 10), "connection")]
    assert world.counts()["in"] == {"created": 2}
    assert_quiet(world)

    world.driver.update(dentist, single("dentist@phone", at(7, 14), summary="Zahnarzt verschoben"))
    world.driver.delete(hair)
    sync_ok(world)
    assert world.counts()["in"] == {"deleted": 1, "updated": 1}
    assert {uid: summary(c) for uid, c in world.mirrored().items()} == {"dentist@phone": "Zahnarzt verschoben"}
    assert world.busy() == [(at(7, 14), at(7, 15), "connection")]
    assert_in_step(world)
    assert_quiet(world)


def test_a_booking_made_moved_and_cancelled_here_is_made_moved_and_deleted_remotely(world: World) -> None:
    public_id = world.book(at(9, 10), name="Max Muster", notes="Erstgespräch")
    sync_ok(world)
    (uid,) = owned(world)
    handle, pushed = remote_by_uid(world.driver)[uid]
    assert (summary(pushed), when(pushed)) == ("Max Muster", (at(9, 10), at(9, 10, 30)))
    assert world.counts()["out"] == {"created": 1}
    assert world.mirrored() == {}  # never mirrored back
    assert_quiet(world)

    world.reschedule(public_id, at(9, 15))
    sync_ok(world)
    assert world.counts()["out"] == {"updated": 1}
    assert remote_by_uid(world.driver)[uid][0] == handle
    assert when(remote_by_uid(world.driver)[uid][1]) == (at(9, 15), at(9, 15, 30))
    assert_in_step(world)

    world.cancel(public_id)
    sync_ok(world)
    assert world.counts()["out"] == {"deleted": 1}
    assert world.driver.events() == {} and world.mapping_count() == 0
    assert_quiet(world)


def test_a_client_item_made_changed_and_deleted_here_is_made_changed_and_deleted_remotely(world: World) -> None:
    world.put_client("thunderbird-1.ics", single("team@thunderbird", at(10, 8), summary="Teamrunde"))
    sync_ok(world)
    handle, pushed = remote_by_uid(world.driver)["team@thunderbird"]
    assert (summary(pushed), when(pushed)) == ("Teamrunde", (at(10, 8), at(10, 9)))
    assert world.mirrored() == {}
    assert_quiet(world)

    world.put_client("thunderbird-1.ics", single("team@thunderbird", at(10, 11), minutes=90, summary="Teamrunde lang"))
    sync_ok(world)
    assert world.counts()["out"] == {"updated": 1}
    assert remote_by_uid(world.driver)["team@thunderbird"][0] == handle
    assert (summary(world.driver.events()[handle]), when(world.driver.events()[handle])) == (
        "Teamrunde lang", (at(10, 11), at(10, 12, 30)))
    assert_in_step(world)

    world.delete_client("thunderbird-1.ics")
    sync_ok(world)
    assert world.counts()["out"] == {"deleted": 1}
    assert world.driver.events() == {} and world.mapping_count() == 0
    assert_quiet(world)


# -- recurring series ---------------------------------------------------------------------------------

SERIES = vcalendar(
    # Mondays 09:00 Berlin from 7 December, six times: the 14th moved to Wednesday 16th 14:00, the 21st
    # excluded, the 28th cancelled (an override with STATUS:CANCELLED, as Google and Outlook write it).
    "UID:standup@phone\nDTSTAMP:20261124T080000Z\nDTSTART;TZID=Europe/Berlin:20261207T090000\n"
    "DTEND;TZID=Europe/Berlin:20261207T093000\nRRULE:FREQ=WEEKLY;COUNT=6\n"
    "EXDATE;TZID=Europe/Berlin:20261221T090000\nSUMMARY:Stand-up",
    "UID:standup@phone\nDTSTAMP:20261124T080000Z\nRECURRENCE-ID;TZID=Europe/Berlin:20261214T090000\n"
    "DTSTART;TZID=Europe/Berlin:20261216T140000\nDTEND;TZID=Europe/Berlin:20261216T143000\n"
    "SUMMARY:Stand-up (verlegt)",
    "UID:standup@phone\nDTSTAMP:20261124T080000Z\nRECURRENCE-ID;TZID=Europe/Berlin:20261228T090000\n"
    "DTSTART;TZID=Europe/Berlin:20261228T090000\nDTEND;TZID=Europe/Berlin:20261228T093000\n"
    "STATUS:CANCELLED\nSUMMARY:Stand-up",
    timezone=True)
SERIES_BUSY = [(at(7, 8), at(7, 8, 30)), (at(16, 13), at(16, 13, 30)), (at(4, 8, month=1), at(4, 8, 30, month=1)),
               (at(11, 8, month=1), at(11, 8, 30, month=1))]


def test_a_weekly_series_made_remotely_is_mirrored_with_its_moved_excluded_and_cancelled_instances(
        world: World) -> None:
    handle = world.driver.create("standup@phone", SERIES)
    sync_ok(world)
    assert [(start, end) for start, end, _ in world.busy()] == SERIES_BUSY
    stored = world.mirrored()["standup@phone"]
    assert "RRULE" in master(stored)  # one series, not six events
    assert [(s, e) for s, e in instances(stored)] == SERIES_BUSY
    assert_in_step(world)
    assert_quiet(world)

    # The phone cancels one more instance (4 January) by excluding it from the series.
    text = SERIES.replace("EXDATE;TZID=Europe/Berlin:20261221T090000",
                          "EXDATE;TZID=Europe/Berlin:20261221T090000,20270104T090000")
    world.driver.update(handle, text)
    sync_ok(world)
    assert [(start, end) for start, end, _ in world.busy()] == [SERIES_BUSY[0], SERIES_BUSY[1], SERIES_BUSY[3]]
    assert_in_step(world)


def test_a_weekly_series_written_here_is_pushed_out_intact(world: World) -> None:
    text = SERIES.replace("standup@phone", "standup@thunderbird")
    world.put_client("standup.ics", text)
    sync_ok(world)
    _, pushed = remote_by_uid(world.driver)["standup@thunderbird"]
    assert "RRULE" in master(pushed)
    assert [(s, e) for s, e in instances(pushed)] == SERIES_BUSY
    assert summary(pushed) == "Stand-up"
    overrides = {str(e.get("SUMMARY")) for e in pushed.walk("VEVENT") if "RECURRENCE-ID" in e}
    assert "Stand-up (verlegt)" in overrides
    assert world.mirrored() == {}
    assert_in_step(world)
    assert_quiet(world)


# -- moved bookings and conflicts ----------------------------------------------------------------------

def test_a_booking_moved_remotely_moves_here_with_its_customer_and_a_move_here_reaches_the_remote(
        world: World) -> None:
    public_id = world.book(at(9, 10), name="Erika Kundin", email="kundin@example.com", notes="Bitte Befund mitbringen")
    sync_ok(world)
    ((uid, _),) = owned(world).items()
    handle, pushed = remote_by_uid(world.driver)[uid]

    # The provider drags it to another day in their own calendar and notes the room in its title.
    world.driver.update(handle, moved(pushed, at(10, 16), 45, title="Erika Kundin (Raum 2)"))
    sync_ok(world)
    booking = world.booking(public_id)
    assert (booking.start, booking.end, booking.status) == (at(10, 16), at(10, 16, 45), "confirmed")
    assert (booking.customer_name, booking.customer_email, booking.notes) == (
        "Erika Kundin", "kundin@example.com", "Bitte Befund mitbringen")
    assert world.counts()["bookings"] == {"moved": 1}
    assert world.busy(at(9, 0), at(11, 0)) == [(at(10, 16), at(10, 16, 45), "booking")]
    assert world.mirrored() == {}
    assert_in_step(world)
    assert_quiet(world)

    world.reschedule(public_id, at(11, 9))
    sync_ok(world)
    assert world.counts()["out"] == {"updated": 1}
    assert when(remote_by_uid(world.driver)[uid][1]) == (at(11, 9), at(11, 9, 30))
    assert_in_step(world)

    # The provider deletes it: the booking is cancelled here, its slot free again, and it stays deleted.
    world.driver.delete(remote_by_uid(world.driver)[uid][0])
    sync_ok(world)
    assert world.booking(public_id).status == "cancelled"
    assert world.counts()["bookings"] == {"cancelled": 1}
    assert world.busy() == [] and world.mapping_count() == 0
    assert_quiet(world)
    assert world.driver.events() == {}


def test_an_event_written_here_follows_a_change_and_a_deletion_made_remotely(world: World) -> None:
    world.put_client("tb.ics", single("team@thunderbird", at(10, 8), summary="Teamrunde"))
    sync_ok(world)
    handle, pushed = remote_by_uid(world.driver)["team@thunderbird"]
    world.driver.update(handle, moved(pushed, at(10, 13), 30, title="Teamrunde (verlegt)"))
    sync_ok(world)
    item = world.item("tb.ics")
    assert item is not None and item.uid == "team@thunderbird"
    stored = icalendar.Calendar.from_ical(item.text)
    assert (summary(stored), when(stored)) == ("Teamrunde (verlegt)", (at(10, 13), at(10, 13, 30)))
    assert world.busy() == [(at(10, 13), at(10, 13, 30), "client")]
    assert world.mirrored() == {}
    assert_in_step(world)
    assert_quiet(world)

    world.driver.delete(handle)
    sync_ok(world)
    assert world.item("tb.ics") is None and world.busy() == [] and world.mapping_count() == 0
    assert_quiet(world)


def test_both_sides_changed_the_owner_wins_and_the_log_counts_the_conflicts(world: World) -> None:
    public_id = world.book(at(9, 10))
    world.put_client("tb.ics", single("team@thunderbird", at(10, 8), summary="Teamrunde"))
    world.put_client("gone-there.ics", single("gone-there@thunderbird", at(11, 8), summary="Planung"))
    world.put_client("gone-here.ics", single("gone-here@thunderbird", at(12, 8), summary="Review"))
    sync_ok(world)
    sync_ok(world)  # the next scheduled run (see the test below for changes made before it)
    remote = remote_by_uid(world.driver)
    booking_uid = next(uid for uid, item in owned(world).items() if item.origin == "booking")
    # There: the booking moved and renamed, the team meeting renamed, the planning deleted, the review renamed.
    handle, pushed = remote[booking_uid]
    world.driver.update(handle, moved(pushed, at(9, 17), 30, title="dort geändert"))
    handle, pushed = remote["team@thunderbird"]
    world.driver.update(handle, renamed(pushed, "dort umbenannt"))
    world.driver.delete(remote["gone-there@thunderbird"][0])
    handle, pushed = remote["gone-here@thunderbird"]
    world.driver.update(handle, renamed(pushed, "Review (dort)"))
    # Here: the booking moved, the team meeting moved and renamed, the planning changed, the review deleted.
    world.reschedule(public_id, at(9, 12))
    world.put_client("tb.ics", single("team@thunderbird", at(10, 13), summary="hier verschoben"))
    world.put_client("gone-there.ics", single("gone-there@thunderbird", at(11, 9), summary="Planung (hier)"))
    world.delete_client("gone-here.ics")

    sync_ok(world)
    counts = world.counts()
    assert counts["conflicts"] == 4 and counts["conflicts_won"] == {"local": 4}
    booking = world.booking(public_id)
    assert (booking.start, booking.customer_name, booking.status) == (at(9, 12), "Max Muster", "confirmed")
    remote = remote_by_uid(world.driver)
    assert {uid: (summary(c), when(c)[0]) for uid, (_, c) in remote.items()} == {
        booking_uid: ("Max Muster", at(9, 12)), "team@thunderbird": ("hier verschoben", at(10, 13)),
        "gone-there@thunderbird": ("Planung (hier)", at(11, 9))}
    assert [(s, e) for s, e, _ in world.busy()] == [
        (at(9, 12), at(9, 12, 30)), (at(10, 13), at(10, 14)), (at(11, 9), at(11, 10))]
    assert_in_step(world)
    assert_quiet(world)


def test_events_pushed_in_one_run_and_deleted_remotely_before_the_next_are_seen_as_deleted(world: World) -> None:
    """Xandikos reports only the net difference since a token: the engine must save a token that
    postdates its own pushes, or this deletion is never reported."""
    public_id = world.book(at(9, 10))
    world.put_client("tb.ics", single("team@thunderbird", at(10, 8), summary="Teamrunde"))
    sync_ok(world)
    for handle in world.driver.events():  # the provider deletes both at once, before the next run
        world.driver.delete(handle)
    sync_ok(world)
    assert world.booking(public_id).status == "cancelled"
    assert world.item("tb.ics") is None
    assert world.busy() == [] and world.mapping_count() == 0
    assert_quiet(world)
    assert world.driver.events() == {}


# -- baselines: token reset, expired or unreadable state ---------------------------------------------------

@pytest.mark.parametrize("provider", ["radicale"], indirect=True)
def test_a_token_reset_over_500_remote_events_duplicates_loses_and_rewrites_nothing(world: World) -> None:
    handles = world.driver.create_many(
        (f"e{n:03}@phone", single(f"e{n:03}@phone", NOW + timedelta(days=1 + n // 8, hours=n % 8), summary=f"T{n}"))
        for n in range(500))
    assert len(handles) == 500
    for n in range(3):
        world.book(at(20 + n, 10))
    sync_ok(world)
    assert len(world.mirrored()) == 500 and len(world.driver.events()) == 503
    rows, busy, remote = world.change_rows(), world.busy(), remote_snapshot(world.driver)

    sync_ok(world, trigger="reset")
    assert world.last_run().baseline
    assert world.change_rows() == rows  # no item rewritten: CalDAV clients and the booking engine see no change
    counts = world.counts()  # and the sync log does not claim otherwise
    assert counts["fetched"] == 503 and not counts.get("in") and not counts.get("out"), counts
    assert remote_snapshot(world.driver) == remote  # nothing pushed again
    assert world.busy() == busy
    assert len(world.mirrored()) == 500 and world.mapping_count() == 503
    assert_in_step(world)
    assert_quiet(world)


@pytest.mark.parametrize("damage", ["expired", "unreadable"])
def test_an_expired_or_unreadable_sync_state_becomes_a_full_resync_without_duplicates(
        world: World, damage: str) -> None:
    keep = world.driver.create("keep@phone", single("keep@phone", at(7, 9)))
    change = world.driver.create("change@phone", single("change@phone", at(8, 9)))
    gone = world.driver.create("gone@phone", single("gone@phone", at(8, 12)))
    world.book(at(9, 10))
    sync_ok(world)
    saved = checkpoint.decode(world.connection().sync_state)
    assert saved.adapter_state is not None
    # Meanwhile the provider forgets the token (or the saved state is damaged), and both sides change.
    damaged = world.driver.expire_token(saved.adapter_state) if damage == "expired" else "not a state {"
    world.set_state(checkpoint.encode(replace(saved, adapter_state=damaged)))
    world.driver.update(change, single("change@phone", at(8, 15), summary="verschoben"))
    world.driver.delete(gone)
    world.driver.create("new@phone", single("new@phone", at(9, 14)))
    world.book(at(11, 10))
    hrefs = {item.uid: item.href for item in world.items()}
    rows = world.change_rows()

    sync_ok(world)
    assert world.last_run().baseline
    counts = world.counts()
    assert counts.get("token_invalid") is True
    assert counts["in"] == {"created": 1, "deleted": 1, "updated": 1} and counts["out"] == {"created": 1}, counts
    assert sorted(world.mirrored()) == ["change@phone", "keep@phone", "new@phone"]
    assert_in_step(world)
    hrefs.update({item.uid: item.href for item in world.items()})
    written = sorted(href for _, href, _ in world.change_rows()[len(rows):])
    assert written == sorted(hrefs[uid] for uid in ("change@phone", "gone@phone", "new@phone"))  # nothing else
    assert keep in world.driver.events()
    assert_quiet(world)


# -- crash safety --------------------------------------------------------------------------------------------

class Pending:
    """A calendar synced once, then changed on both sides, so that the next run has every kind of action:
    a remote event created, changed and deleted; a booking made, moved and cancelled here; a client item
    changed and another one made here. ``synced_first=False``: the same changes before the first sync, so
    that the next run is the baseline; the outcome is the same."""

    def __init__(self, world: World, *, synced_first: bool = True) -> None:
        self.world = world
        driver = world.driver
        self.keep = driver.create("keep@phone", single("keep@phone", at(7, 9), summary="bleibt"))
        self.change = driver.create("change@phone", single("change@phone", at(7, 11), summary="alt"))
        self.gone = driver.create("gone@phone", single("gone@phone", at(7, 13), summary="weg"))
        self.b_same = world.book(at(8, 9), name="Anna")
        self.b_move = world.book(at(8, 10), name="Bert")
        self.b_cancel = world.book(at(8, 11), name="Cleo")
        world.put_client("edit.ics", single("edit@thunderbird", at(9, 9), summary="Entwurf"))
        if synced_first:
            sync_ok(world)

        driver.create("new@phone", single("new@phone", at(7, 15), summary="neu"))
        driver.update(self.change, single("change@phone", at(7, 16), summary="neu gesetzt"))
        driver.delete(self.gone)
        self.b_new = world.book(at(8, 12), name="Dora")
        world.reschedule(self.b_move, at(8, 14))
        world.cancel(self.b_cancel)
        world.put_client("edit.ics", single("edit@thunderbird", at(9, 11), summary="Endfassung"))
        world.put_client("fresh.ics", single("fresh@thunderbird", at(9, 13), summary="Neu hier"))

    def assert_converged(self) -> None:
        world = self.world
        assert_in_step(world)
        remote = {uid: (summary(c), when(c)[0]) for uid, (_, c) in remote_by_uid(world.driver).items()}
        bookings = {world.booking(p).customer_name: (world.booking(p).status, world.booking(p).start)
                    for p in (self.b_same, self.b_move, self.b_cancel, self.b_new)}
        assert bookings == {"Anna": ("confirmed", at(8, 9)), "Bert": ("confirmed", at(8, 14)),
                            "Cleo": ("cancelled", at(8, 11)), "Dora": ("confirmed", at(8, 12))}
        assert sorted(remote.values()) == sorted([
            ("bleibt", at(7, 9)), ("neu gesetzt", at(7, 16)), ("neu", at(7, 15)), ("Anna", at(8, 9)),
            ("Bert", at(8, 14)), ("Dora", at(8, 12)), ("Endfassung", at(9, 11)), ("Neu hier", at(9, 13))])
        assert sorted(world.mirrored()) == ["change@phone", "keep@phone", "new@phone"]
        assert [run.status for run in world.runs()].count("running") == 0
        assert_quiet(world)


@contextmanager
def fresh_world(store: Store, provider: Provider, tmp_path: Path) -> Iterator[World]:
    with provider.new_driver() as driver:
        yield make_world(store, driver, tmp_path)


def crash_then_recover(world: World, crashing: Engine) -> None:
    with pytest.raises(Crash):
        crashing.run(world.connection_id)
    assert world.last_run().status == "running"  # the dead worker never finished its log row
    sync_ok(world)
    crashed = world.runs()[-2]
    assert (crashed.status, crashed.error_class) == ("failed", "Interrupted")


@pytest.mark.parametrize("inside", [False, True], ids=["after-commit", "rolled-back"])
@pytest.mark.parametrize("synced_first", [True, False], ids=["incremental", "baseline"])
def test_a_worker_killed_at_any_write_of_a_run_converges_on_the_next_run(
        store: Store, provider: Provider, tmp_path: Path, inside: bool, synced_first: bool) -> None:
    """The k-th write transaction of the run (its log row, each action's item and mapping, the token, the
    log's end), for every k: committed and then the worker dies, or the worker dies before it commits."""
    for at_write in itertools.count(1):
        with fresh_world(store, provider, tmp_path) as world:
            pending = Pending(world, synced_first=synced_first)
            crashing_store = CrashingStore(store, at_write, inside=inside)
            with suppress(Crash):
                world.engine_with(store=crashing_store).run(world.connection_id)
            if not crashing_store.fired:
                assert at_write > 8, "a run with every kind of action writes more than eight times"
                return
            sync_ok(world)
            try:
                pending.assert_converged()
            except AssertionError as error:
                raise AssertionError(f"after a crash {'inside' if inside else 'after'} write {at_write}") from error


@pytest.mark.parametrize("after", ["fetch", "create", "update", "delete"])
def test_a_worker_killed_right_after_an_upstream_call_converges_on_the_next_run(
        world: World, after: CrashPoint) -> None:
    """After the fetch (nothing applied); after the provider accepted a create, an update or a delete and
    before the mapping that records it was saved."""
    pending = Pending(world)
    crash_then_recover(world, world.engine_with(open_adapter=crashing_opener(after)))
    pending.assert_converged()


def test_a_worker_killed_while_saving_the_sync_token_converges_on_the_next_run(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    pending = Pending(world)
    state = world.connection().sync_state

    def dying(self: Engine, job: Any, delta: Any, *_: Any) -> None:
        with self.store.write() as session:
            connection = session.get(Connection, job.connection_id)
            assert connection is not None
            connection.sync_state = delta.state
            session.flush()
            raise Crash("while saving the token")  # the transaction never commits

    with monkeypatch.context() as patched:
        patched.setattr(Engine, "_save_state", dying)
        with pytest.raises(Crash):
            world.sync()
    assert world.connection().sync_state == state  # the token of the last finished run
    sync_ok(world)
    pending.assert_converged()


# -- fail closed -------------------------------------------------------------------------------------------

@pytest.fixture
def proxy(driver: RemoteDriver) -> Iterator[FaultProxy]:
    with fault_proxy(driver.origin) as running:
        yield running


@pytest.fixture
def proxied(store: Store, driver: RemoteDriver, proxy: FaultProxy, tmp_path: Path) -> World:
    """A world whose connection reaches the provider through the fault proxy."""
    return make_world(store, driver, tmp_path, via=proxy.url)


def snapshot_here(world: World) -> tuple[dict[str, bytes], list[tuple[datetime, datetime, str]], list[Any]]:
    """What a user of the bridge sees: mirrored items' texts, busy time, and the change feed."""
    return ({uid: c.to_ical() for uid, c in world.mirrored().items()}, world.busy(), world.change_rows())


@pytest.mark.parametrize("status", [500, 401])
def test_an_upstream_answering_an_error_changes_nothing_here(proxied: World, proxy: FaultProxy, status: int) -> None:
    world = proxied
    handles = [world.driver.create(f"e{n}@phone", single(f"e{n}@phone", at(7 + n, 9))) for n in range(3)]
    public_id = world.book(at(14, 10))
    sync_ok(world)
    world.driver.delete(handles[0])
    world.driver.update(handles[1], single("e1@phone", at(8, 15), summary="verschoben"))
    new_booking = world.book(at(15, 10))
    before = snapshot_here(world)
    state = world.connection().sync_state

    proxy.fail(status)
    outcome = world.sync()
    assert outcome.status == "failed" and outcome.auth_failed == (status == 401)
    assert world.connection().needs_attention == (status == 401)  # a refused login waits for its owner
    assert proxy.answered >= 1
    assert snapshot_here(world) == before  # every mirrored item and busy slot as it was
    assert world.connection().sync_state == state
    assert world.booking(public_id).status == world.booking(new_booking).status == "confirmed"

    proxy.fail(None)
    sync_ok(world)
    assert sorted(world.mirrored()) == ["e1@phone", "e2@phone"]
    assert_in_step(world)


def test_a_push_the_upstream_refuses_is_retried_once_it_answers_again(proxied: World, proxy: FaultProxy) -> None:
    world = proxied
    world.driver.create("e@phone", single("e@phone", at(7, 9)))
    sync_ok(world)
    world.book(at(9, 10))
    before = snapshot_here(world)
    proxy.fail(500, *getattr(proxied.driver, "write_methods", ("PUT",)))  # Graph writes with POST/PATCH
    assert world.sync().status == "failed"
    assert snapshot_here(world) == before
    proxy.fail(None)
    sync_ok(world)
    assert len(world.driver.events()) == 2
    assert_in_step(world)
    assert_quiet(world)


def test_an_emptied_remote_calendar_holds_every_deletion_until_confirmed(world: World) -> None:
    for n in range(3):
        world.driver.create(f"e{n}@phone", single(f"e{n}@phone", at(7 + n, 9)))
    public_id = world.book(at(14, 10))
    sync_ok(world)
    before = snapshot_here(world)
    for handle in world.driver.events():  # the three events and the pushed booking
        world.driver.delete(handle)
    assert world.driver.events() == {}

    for _ in range(2):  # a full listing comes back empty, and again on the next run
        outcome = world.sync(trigger="reset")
        assert outcome.status == "held"
        assert snapshot_here(world) == before
        assert world.booking(public_id).status == "confirmed"
        assert world.counts()["held"] == 4

    sync_ok(world, confirm_deletions=True)
    assert world.mirrored() == {} and world.busy() == []
    assert world.booking(public_id).status == "cancelled"
    assert_in_step(world)


def test_a_ninety_percent_deletion_is_held_while_the_rest_applies_until_confirmed(world: World) -> None:
    handles = world.driver.create_many((f"e{n:02}@phone", single(f"e{n:02}@phone", at(1 + n, 9))) for n in range(20))
    sync_ok(world)
    before_busy = world.busy()
    mirrored_before = {uid: c.to_ical() for uid, c in world.mirrored().items()}
    for handle in handles[2:]:
        world.driver.delete(handle)
    world.driver.create("late@phone", single("late@phone", at(28, 9)))

    for _ in range(2):  # held, and held again by the next scheduled run
        outcome = world.sync()
        assert outcome.status == "held"
        assert world.counts()["held"] == 18
        mirrored = {uid: c.to_ical() for uid, c in world.mirrored().items()}
        assert {uid: text for uid, text in mirrored.items() if uid != "late@phone"} == mirrored_before
        assert "late@phone" in mirrored  # what is not a deletion still applies
        assert set(before_busy) <= set(world.busy())

    sync_ok(world, confirm_deletions=True)
    assert sorted(world.mirrored()) == ["e00@phone", "e01@phone", "late@phone"]
    assert [(s, e) for s, e, _ in world.busy()] == [
        (at(1, 9), at(1, 10)), (at(2, 9), at(2, 10)), (at(28, 9), at(28, 10))]
    assert_in_step(world)
    assert_quiet(world)



def test_a_client_emptying_the_calendar_here_holds_the_deletions_there_until_confirmed(world: World) -> None:
    booked = [world.book(at(1 + n, 10), name=f"Kundin {n:02}") for n in range(12)]
    sync_ok(world)
    remote_before = remote_snapshot(world.driver)
    for item in world.items("booking"):  # a careless client deletes the bookings' events
        world.delete_client(item.href)

    for _ in range(2):  # held, and held again by the next scheduled run
        outcome = world.sync()
        assert outcome.status == "held"
        assert world.counts()["held"] == 12 and "out" not in world.counts()
        assert remote_snapshot(world.driver) == remote_before
        assert world.connection().sync_state is not None  # the state of the last complete run stays

    sync_ok(world, confirm_deletions=True)
    assert world.driver.events() == {} and world.mapping_count() == 0
    assert {world.booking(public_id).status for public_id in booked} == {"confirmed"}  # a client cancels nothing
    assert_quiet(world)


def test_an_edit_made_here_while_a_run_is_in_flight_is_kept_and_reaches_the_remote_next_run(world: World) -> None:
    world.put_client("tb.ics", single("team@thunderbird", at(10, 8), summary="Teamrunde"))
    sync_ok(world)
    handle, pushed = remote_by_uid(world.driver)["team@thunderbird"]
    world.driver.update(handle, moved(pushed, at(10, 13), 30, title="dort verlegt"))
    edited: list[Plan] = []

    def client_edits_meanwhile(decided: Plan) -> None:
        if not edited:
            edited.append(decided)
            world.put_client("tb.ics", single("team@thunderbird", at(10, 9), summary="hier geändert"))

    world.engine = world.engine_with(on_planned=client_edits_meanwhile)
    state = world.connection().sync_state
    outcome = world.sync()
    assert outcome.status == "partial" and world.counts()["skipped_stale"] == 1
    assert [type(action).__name__ for action in edited[0].actions] == ["ApplyRemoteToOwned"]
    item = world.item("tb.ics")
    assert item is not None and summary(icalendar.Calendar.from_ical(item.text)) == "hier geändert"
    assert world.connection().sync_state == state

    world.engine = world.engine_with(on_planned=None)
    sync_ok(world)
    assert world.counts()["conflicts_won"] == {"local": 1}
    (_, now_remote), = remote_by_uid(world.driver).values()
    assert (summary(now_remote), when(now_remote)[0]) == ("hier geändert", at(10, 9))
    assert_in_step(world)
    assert_quiet(world)
