"""Views: what a reader sees of a stored item. They only ever remove."""

from __future__ import annotations

from hypothesis import given, settings
from icalendar import Calendar

from bridge.rules import ConnectionOptions, View, apply_view, ingest
from tests.unit.rules import _strategies as gen
from tests.unit.rules._ics import BERLIN_VTIMEZONE, TIMED, calendar, lines, unfolded, value, vevent

STORED = calendar(
    BERLIN_VTIMEZONE,
    vevent(
        f"{TIMED}\nRRULE:FREQ=WEEKLY;COUNT=3\nEXDATE;TZID=Europe/Berlin:20261214T090000\nSUMMARY:Therapy\n"
        "DESCRIPTION:Room 4\nLOCATION:Praxis\nATTENDEE;PARTSTAT=ACCEPTED:mailto:erika@example.org\nSEQUENCE:1\n"
        "CLASS:PUBLIC\nTRANSP:OPAQUE\nSTATUS:CONFIRMED\nX-MICROSOFT-CDO-BUSYSTATUS:OOF\n"
        "BEGIN:VALARM\nACTION:DISPLAY\nTRIGGER:-PT5M\nDESCRIPTION:Therapy\nEND:VALARM",
        "series@example.com",
    ),
    vevent(
        "RECURRENCE-ID;TZID=Europe/Berlin:20261221T090000\nDTSTART;TZID=Europe/Berlin:20261221T090000\n"
        "DTEND;TZID=Europe/Berlin:20261221T100000\nSTATUS:CANCELLED\nSUMMARY:Therapy",
        "series@example.com",
    ),
    "BEGIN:VTODO\nUID:todo\nDTSTAMP:20261124T080000Z\nSUMMARY:Call Erika\nEND:VTODO",
)


def test_owner_sees_everything() -> None:
    assert apply_view(STORED, View.OWNER).to_ical() == STORED.to_ical()
    assert apply_view(STORED, View.OWNER) is not STORED


def test_busy_only() -> None:
    seen = apply_view(STORED, View.BUSY_ONLY)
    text = unfolded(seen.to_ical())
    for gone in ("Therapy", "Room 4", "Praxis", "erika", "SEQUENCE", "CLASS", "VALARM", "VTODO"):
        assert gone not in text
    master, cancelled = seen.walk("VEVENT")
    assert value(master, "SUMMARY") == ":busy"
    assert str(master["UID"]) == "series@example.com"
    for name, expected in [
        ("DTSTART", ";TZID=Europe/Berlin:20261207T090000"),
        ("RRULE", ":FREQ=WEEKLY;COUNT=3"),
        ("EXDATE", ";TZID=Europe/Berlin:20261214T090000"),
        ("TRANSP", ":OPAQUE"),
        ("STATUS", ":CONFIRMED"),
        ("X-MICROSOFT-CDO-BUSYSTATUS", ":OOF"),
    ]:
        assert value(master, name) == expected
    # the cancelled override stays: dropping it would bring the instance back
    assert value(cancelled, "STATUS") == ":CANCELLED"
    assert value(cancelled, "RECURRENCE-ID") == ";TZID=Europe/Berlin:20261221T090000"
    assert "TZID:Europe/Berlin" in lines(seen)


def test_booking_engine_sees_only_times() -> None:
    seen = apply_view(STORED, View.BOOKING_ENGINE)
    assert "SUMMARY" not in unfolded(seen.to_ical())
    master, _cancelled = seen.walk("VEVENT")
    assert value(master, "DTEND") == ";TZID=Europe/Berlin:20261207T100000"


def test_view_does_not_change_the_stored_item() -> None:
    before = STORED.to_ical()
    apply_view(STORED, View.BUSY_ONLY)
    apply_view(STORED, View.BOOKING_ENGINE)
    assert STORED.to_ical() == before


Fact = tuple[str, str, bytes]


def _facts(calendar: Calendar) -> dict[Fact, list[dict[str, str]]]:
    """Every property as (component, name, value) with the parameter sets it occurs with."""
    found: dict[Fact, list[dict[str, str]]] = {}
    for component in calendar.walk():
        for name, prop in component.property_items(recursive=False):
            if name in ("BEGIN", "END") or not hasattr(prop, "to_ical"):
                continue
            params = {k: str(v) for k, v in getattr(prop, "params", {}).items()}
            ical = prop.to_ical()
            ical = ical if isinstance(ical, bytes) else str(ical).encode()
            found.setdefault((str(component.name), name, ical), []).append(params)
    return found


def _assert_only_removes(before: Calendar, after: Calendar) -> None:
    given_facts = _facts(before)
    for (component, name, ical), params_list in _facts(after).items():
        if name == "SUMMARY" and ical in (b"busy", b"n/a"):
            continue
        assert (component, name, ical) in given_facts, (component, name, ical)
        for params in params_list:
            assert any(params.items() <= p.items() for p in given_facts[(component, name, ical)])
    assert len(after.walk("VEVENT")) <= len(before.walk("VEVENT"))


@settings(max_examples=120, deadline=None, database=None)
@given(item=gen.items(), options=gen.options())
def test_a_read_view_only_removes(item: gen.Item, options: ConnectionOptions) -> None:
    raw = Calendar.from_ical(item.ical)  # as a CalDAV client may have written it
    stored = ingest(raw, options)  # as a connection stored it
    for source in (raw, stored):
        if source is None:
            continue
        for view in View:
            _assert_only_removes(source, apply_view(source, view))
