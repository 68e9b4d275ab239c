"""ingest: one item from a connection, all rules together; series with overrides; hypothesis properties."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import recurring_ical_events  # type: ignore[import-untyped]
from hypothesis import given, settings
from icalendar import Calendar, Event

from bridge.rules import ConnectionOptions, hashed_uid, ingest
from tests.unit.rules import _strategies as gen
from tests.unit.rules._ics import OWNER, TIMED, calendar, lines, unfolded, value, vevent

BERLIN = ZoneInfo("Europe/Berlin")
UID = "weekly-1on1@example.com"
SERIES = calendar(
    vevent(f"{TIMED}\nRRULE:FREQ=WEEKLY;COUNT=6\nSUMMARY:1:1 with Erika\nDESCRIPTION:Agenda: salary", UID),
    vevent(  # private instance
        "RECURRENCE-ID;TZID=Europe/Berlin:20261214T090000\nDTSTART;TZID=Europe/Berlin:20261214T130000\n"
        "DTEND;TZID=Europe/Berlin:20261214T140000\nCLASS:PRIVATE\nSUMMARY:1:1 at the doctor's\n"
        "DESCRIPTION:Blood test\nLOCATION:Praxis Dr. Geheim",
        UID,
    ),
    vevent(  # cancelled instance
        "RECURRENCE-ID;TZID=Europe/Berlin:20261221T090000\nDTSTART;TZID=Europe/Berlin:20261221T090000\n"
        "DTEND;TZID=Europe/Berlin:20261221T100000\nSTATUS:CANCELLED\nSUMMARY:1:1 with Erika",
        UID,
    ),
    vevent(  # transparent instance
        "RECURRENCE-ID;TZID=Europe/Berlin:20261228T090000\nDTSTART;TZID=Europe/Berlin:20261228T090000\n"
        "DTEND;TZID=Europe/Berlin:20261228T100000\nTRANSP:TRANSPARENT\nSUMMARY:1:1 (optional)",
        UID,
    ),
)


def busy_starts(stored: Calendar) -> list[datetime]:
    """Instance starts as a free/busy reader that honours EXDATE and STATUS:CANCELLED sees them."""
    window = recurring_ical_events.of(stored).between(datetime(2026, 12, 1), datetime(2027, 2, 1))
    return sorted(e.start for e in window if str(e.get("STATUS", "")).upper() != "CANCELLED")


def test_series_with_private_cancelled_and_transparent_overrides() -> None:
    stored = ingest(SERIES, ConnectionOptions(uid_salt=b"c1"))
    assert stored is not None
    master, private = stored.walk("VEVENT")
    # one shared UID, hashed because one instance is private
    assert {str(c["UID"]) for c in stored.walk("VEVENT")} == {hashed_uid(UID, b"c1")}
    # the series itself keeps its details; the private instance only its times
    assert str(master["SUMMARY"]) == "1:1 with Erika"
    assert value(private, "SUMMARY") == ":n/a"
    assert "Blood test" not in unfolded(stored.to_ical()) and "Geheim" not in unfolded(stored.to_ical())
    assert value(private, "DTSTART") == ";TZID=Europe/Berlin:20261214T130000"
    # the cancelled and the transparent instance are gone, the rest of the series is not
    assert value(master, "RRULE") == ":FREQ=WEEKLY;COUNT=6"
    assert [line for line in lines(master) if line.startswith("EXDATE")] == [
        "EXDATE;TZID=Europe/Berlin:20261221T090000",
        "EXDATE;TZID=Europe/Berlin:20261228T090000",
    ]
    assert busy_starts(stored) == [
        datetime(2026, 12, 7, 9, tzinfo=BERLIN),
        datetime(2026, 12, 14, 13, tzinfo=BERLIN),
        datetime(2027, 1, 4, 9, tzinfo=BERLIN),
        datetime(2027, 1, 11, 9, tzinfo=BERLIN),
    ]


def test_series_with_transparent_as_busy_keeps_the_transparent_instance_as_busy() -> None:
    stored = ingest(SERIES, ConnectionOptions(transparent_as_busy=True))
    assert stored is not None
    master, _private, transparent = stored.walk("VEVENT")
    assert value(transparent, "TRANSP") == ":OPAQUE"
    assert [line for line in lines(master) if line.startswith("EXDATE")] == [
        "EXDATE;TZID=Europe/Berlin:20261221T090000"
    ]
    assert datetime(2026, 12, 28, 9, tzinfo=BERLIN) in busy_starts(stored)
    assert datetime(2026, 12, 21, 9, tzinfo=BERLIN) not in busy_starts(stored)


def test_series_with_no_personal_data() -> None:
    stored = ingest(SERIES, ConnectionOptions(no_personal_data=True, uid_salt=b"c1"))
    assert stored is not None
    text = unfolded(stored.to_ical())
    for secret in ("Erika", "salary", "doctor", "optional", UID):
        assert secret not in text
    assert {str(c["SUMMARY"]) for c in stored.walk("VEVENT")} == {"n/a"}
    assert {str(c["UID"]) for c in stored.walk("VEVENT")} == {hashed_uid(UID, b"c1")}


def test_transparent_master_leaves_its_busy_overrides() -> None:
    item = calendar(
        vevent(f"{TIMED}\nRRULE:FREQ=DAILY;COUNT=3\nTRANSP:TRANSPARENT", UID),
        vevent("RECURRENCE-ID;TZID=Europe/Berlin:20261208T090000\nDTSTART;TZID=Europe/Berlin:20261208T120000\n"
               "DTEND;TZID=Europe/Berlin:20261208T130000\nTRANSP:OPAQUE", UID),
    )
    stored = ingest(item, ConnectionOptions())
    assert stored is not None
    (override,) = stored.walk("VEVENT")
    assert "RECURRENCE-ID" in override
    assert busy_starts(stored) == [datetime(2026, 12, 8, 12, tzinfo=BERLIN)]


def test_input_is_never_changed_and_output_is_new() -> None:
    before = SERIES.to_ical()
    stored = ingest(SERIES, ConnectionOptions(no_personal_data=True, anonymize_location=True))
    assert SERIES.to_ical() == before
    assert stored is not SERIES


def test_only_vevents_and_their_vtimezones_are_stored() -> None:
    item = calendar(
        "BEGIN:VTODO\nUID:todo-1\nDTSTAMP:20261124T080000Z\nSUMMARY:Buy flowers for Erika\nEND:VTODO",
        vevent(TIMED),
    )
    item.add("METHOD", "PUBLISH")
    item.add("X-WR-CALNAME", "Erika's calendar")
    stored = ingest(item, ConnectionOptions())
    assert stored is not None
    text = unfolded(stored.to_ical())
    assert "Erika" not in text and "VTODO" not in text and "METHOD" not in text
    assert [c.name for c in stored.subcomponents] == ["VTIMEZONE", "VEVENT"]


def test_declined_invitation_is_not_stored() -> None:
    item = calendar(vevent(f"{TIMED}\nATTENDEE;PARTSTAT=DECLINED:mailto:{OWNER}"))
    assert ingest(item, ConnectionOptions(owner_addresses=frozenset({OWNER}))) is None
    assert ingest(item, ConnectionOptions()) is not None


def test_nothing_to_store() -> None:
    assert ingest(calendar(), ConnectionOptions()) is None


def _serialized(result: Calendar | None) -> bytes | None:
    return None if result is None else result.to_ical()


@settings(max_examples=120, deadline=None, database=None)
@given(item=gen.items(), options=gen.options())
def test_ingest_is_deterministic_idempotent_and_pure(item: gen.Item, options: ConnectionOptions) -> None:
    source = Calendar.from_ical(item.ical)
    before = source.to_ical()
    first = ingest(source, options)
    assert source.to_ical() == before
    assert _serialized(ingest(Calendar.from_ical(item.ical), options)) == _serialized(first)
    if first is not None:
        again = ingest(first, options)
        assert again is not None
        assert again.to_ical() == first.to_ical()
        uids = {str(c.get("UID")) for c in first.walk("VEVENT")}
        assert len(uids) == 1
        assert first.get_missing_tzids() == set()


@settings(max_examples=120, deadline=None, database=None)
@given(item=gen.items(), options=gen.options(no_personal_data=True))
def test_no_personal_data_leaves_no_personal_text(item: gen.Item, options: ConnectionOptions) -> None:
    stored = ingest(Calendar.from_ical(item.ical), options)
    if stored is None:
        return
    text = unfolded(stored.to_ical())
    values = [str(v) for c in stored.walk() for _, v in c.property_items(recursive=False)]
    for secret in item.secrets:
        assert secret not in text
        assert not any(secret in v for v in values)
    for component in stored.walk("VEVENT"):
        assert isinstance(component, Event)
        assert str(component["SUMMARY"]) == "n/a"
        assert not component.subcomponents
