"""allday_as_busy: all-day events (birthdays, reminders, holidays) are dropped, or kept as busy dates."""

from __future__ import annotations

import pytest

from bridge.rules import ConnectionOptions, apply_allday, ingest, read_markers
from tests.unit.rules._ics import ALL_DAY, TIMED, calendar, event, value, vevent

OFF = ConnectionOptions()
ON = ConnectionOptions(allday_as_busy=True)


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param("SUMMARY:Birthday", id="plain"),
        pytest.param("SUMMARY:Birthday\nTRANSP:TRANSPARENT", id="google-birthday-transparent"),
        pytest.param("SUMMARY:Holiday\nX-MICROSOFT-CDO-BUSYSTATUS:FREE", id="outlook-default-free"),
        pytest.param("SUMMARY:Vacation\nX-MICROSOFT-CDO-BUSYSTATUS:OOF", id="outlook-oof"),
        pytest.param("SUMMARY:Yearly\nRRULE:FREQ=YEARLY", id="recurring"),
    ],
)
def test_all_day_events(extra: str) -> None:
    source = event(f"{ALL_DAY}\n{extra}")
    assert apply_allday(source, OFF) is None
    kept = apply_allday(source, ON)
    assert kept is not None
    assert value(kept, "DTSTART") == ";VALUE=DATE:20261207"
    assert value(kept, "DTEND") == ";VALUE=DATE:20261208"
    assert value(kept, "TRANSP") == ":OPAQUE"
    assert read_markers(kept).busy


def test_timed_events_are_not_this_rules_business() -> None:
    source = event(TIMED)
    assert apply_allday(source, OFF) is not None
    result = apply_allday(source, ON)
    assert result is not None
    assert result.to_ical() == source.to_ical()


def test_all_day_google_event_blocks_with_only_this_option() -> None:
    """Google creates all-day events as "free"; turning on allday_as_busy alone must make them block."""
    item = calendar(vevent(f"{ALL_DAY}\nSUMMARY:Conference\nTRANSP:TRANSPARENT"))
    assert ingest(item, OFF) is None
    stored = ingest(item, ON)
    assert stored is not None
    (stored_event,) = stored.walk("VEVENT")
    assert value(stored_event, "TRANSP") == ":OPAQUE"
    assert value(stored_event, "DTSTART") == ";VALUE=DATE:20261207"


@pytest.mark.parametrize(
    ("options", "kept"),
    [
        (ConnectionOptions(allday_as_busy=True), False),
        (ConnectionOptions(transparent_as_busy=True), False),
        (ConnectionOptions(allday_as_busy=True, transparent_as_busy=True), True),
    ],
)
def test_all_day_working_location_needs_both_options(options: ConnectionOptions, kept: bool) -> None:
    """A daily "working from home" entry must not block whole days unless free-marked events are wanted."""
    item = calendar(vevent(f"{ALL_DAY}\nTRANSP:TRANSPARENT\nX-MICROSOFT-CDO-BUSYSTATUS:WORKINGELSEWHERE"))
    assert (ingest(item, options) is not None) is kept


def test_an_all_day_event_stored_busy_stays_when_ingested_again() -> None:
    """A re-ingest (option change, resync) of a stored all-day event must not drop it as "made busy"."""
    stored = ingest(calendar(vevent(f"{ALL_DAY}\nSUMMARY:Vacation")), ON)
    assert stored is not None
    again = ingest(stored, ON)
    assert again is not None
    assert again.to_ical() == stored.to_ical()


def test_all_day_working_location_made_busy_goes_when_free_events_are_turned_off() -> None:
    both = ConnectionOptions(allday_as_busy=True, transparent_as_busy=True)
    item = calendar(vevent(f"{ALL_DAY}\nTRANSP:TRANSPARENT\nX-MICROSOFT-CDO-BUSYSTATUS:WORKINGELSEWHERE"))
    stored = ingest(item, both)
    assert stored is not None
    assert ingest(stored, ON) is None
