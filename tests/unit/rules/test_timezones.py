"""sync_timezone: floating times are read in the connection's zone; Windows zone names become IANA ones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from icalendar import Calendar, Event, Timezone

from bridge.rules import ConnectionOptions, apply_timezone, ingest, normalize_timezones
from tests.unit.rules._ics import (
    ALL_DAY,
    BERLIN_VTIMEZONE,
    CUSTOM_VTIMEZONE,
    WINDOWS_VTIMEZONE,
    calendar,
    event,
    lines,
    value,
    vevent,
)

FLOATING = "DTSTART:20261207T090000\nDTEND:20261207T100000"


def stored(*parts: str, options: ConnectionOptions | None = None) -> Calendar:
    result = ingest(calendar(*parts), options or ConnectionOptions())
    assert result is not None
    return result


def tzids(result: Calendar) -> list[str]:
    return [str(c["TZID"]) for c in result.subcomponents if isinstance(c, Timezone)]


def test_floating_becomes_calendar_zone_with_vtimezone() -> None:
    """A floating 09:00 becomes 09:00 Europe/Berlin, and the item carries a VTIMEZONE for it."""
    result = stored(vevent(FLOATING))
    (stored_event,) = result.walk("VEVENT")
    assert value(stored_event, "DTSTART") == ";TZID=Europe/Berlin:20261207T090000"
    assert value(stored_event, "DTEND") == ";TZID=Europe/Berlin:20261207T100000"
    assert tzids(result) == ["Europe/Berlin"]
    assert isinstance(stored_event, Event) and isinstance(stored_event.start, datetime)
    assert stored_event.start.astimezone(UTC) == datetime(2026, 12, 7, 8, tzinfo=UTC)


def test_added_vtimezone_has_the_right_offsets() -> None:
    (vtimezone,) = stored(vevent(FLOATING)).walk("VTIMEZONE")
    assert isinstance(vtimezone, Timezone)
    zone = vtimezone.to_tz(lookup_tzid=False)
    assert datetime(2026, 1, 15, 9, tzinfo=zone).utcoffset() == timedelta(hours=1)
    assert datetime(2026, 7, 15, 9, tzinfo=zone).utcoffset() == timedelta(hours=2)


@pytest.mark.parametrize(
    ("options", "dtstart"),
    [
        pytest.param(ConnectionOptions(sync_timezone="UTC"), ":20261207T090000Z", id="icloud-utc"),
        pytest.param(ConnectionOptions(sync_timezone="America/New_York"), ";TZID=America/New_York:20261207T090000",
                     id="sync-zone-wins"),
        pytest.param(ConnectionOptions(calendar_timezone="Asia/Tokyo"), ";TZID=Asia/Tokyo:20261207T090000",
                     id="calendar-zone"),
    ],
)
def test_sync_timezone(options: ConnectionOptions, dtstart: str) -> None:
    result = stored(vevent(FLOATING), options=options)
    assert value(result.walk("VEVENT")[0], "DTSTART") == dtstart
    assert tzids(result) == ([] if dtstart.endswith("Z") else [options.zone_name])


def test_all_day_dates_are_not_touched() -> None:
    result = stored(vevent(f"{ALL_DAY}\nRRULE:FREQ=WEEKLY;COUNT=3\nEXDATE;VALUE=DATE:20261214"),
                    options=ConnectionOptions(allday_as_busy=True))
    (stored_event,) = result.walk("VEVENT")
    assert value(stored_event, "DTSTART") == ";VALUE=DATE:20261207"
    assert value(stored_event, "EXDATE") == ";VALUE=DATE:20261214"
    assert tzids(result) == []


def test_every_floating_value_of_a_series() -> None:
    master = vevent(
        f"{FLOATING}\nRRULE:FREQ=DAILY;UNTIL=20261220T090000\nEXDATE:20261208T090000,20261209T090000\n"
        "RDATE;VALUE=PERIOD:20261230T090000/PT1H"
    )
    moved = vevent("RECURRENCE-ID:20261210T090000\nDTSTART:20261210T140000\nDTEND:20261210T150000")
    result = stored(master, moved)
    first, second = result.walk("VEVENT")
    assert value(first, "RRULE") == ":FREQ=DAILY;UNTIL=20261220T080000Z"
    assert value(first, "EXDATE") == ";TZID=Europe/Berlin:20261208T090000,20261209T090000"
    assert value(first, "RDATE") == ";TZID=Europe/Berlin;VALUE=PERIOD:20261230T090000/PT1H"
    assert value(second, "RECURRENCE-ID") == ";TZID=Europe/Berlin:20261210T090000"
    assert value(second, "DTSTART") == ";TZID=Europe/Berlin:20261210T140000"


@pytest.mark.parametrize(
    ("windows", "iana"),
    [
        ("W. Europe Standard Time", "Europe/Berlin"),
        ("Romance Standard Time", "Europe/Paris"),
        ("GMT Standard Time", "Europe/London"),
        ("Eastern Standard Time", "America/New_York"),
        ("Tokyo Standard Time", "Asia/Tokyo"),
    ],
)
def test_windows_zone_names_become_iana(windows: str, iana: str) -> None:
    """Outlook/Exchange TZIDs are mapped through icalendar's CLDR table, keeping the wall-clock time."""
    body = f"DTSTART;TZID={windows}:20261207T090000\nDTEND;TZID={windows}:20261207T100000"
    for parts in ((vevent(body),), (WINDOWS_VTIMEZONE.replace("W. Europe Standard Time", windows), vevent(body))):
        result = stored(*parts)
        (stored_event,) = result.walk("VEVENT")
        assert value(stored_event, "DTSTART") == f";TZID={iana}:20261207T090000"
        assert tzids(result) == [iana]
        assert windows not in "\n".join(lines(result))


def test_windows_utc_becomes_z() -> None:
    result = stored(vevent("DTSTART;TZID=UTC:20261207T090000\nDURATION:PT1H"))
    assert value(result.walk("VEVENT")[0], "DTSTART") == ":20261207T090000Z"
    assert tzids(result) == []


def test_custom_tzid_with_vtimezone_is_left_alone() -> None:
    body = "DTSTART;TZID=Customized Time Zone:20261207T090000\nDTEND;TZID=Customized Time Zone:20261207T100000"
    result = stored(CUSTOM_VTIMEZONE, vevent(body))
    assert value(result.walk("VEVENT")[0], "DTSTART") == ";TZID=Customized Time Zone:20261207T090000"
    assert tzids(result) == ["Customized Time Zone"]


def test_tzid_nobody_defines_is_read_like_floating() -> None:
    result = stored(vevent("DTSTART;TZID=Nowhere/Zone:20261207T090000\nDTEND;TZID=Nowhere/Zone:20261207T100000"))
    assert value(result.walk("VEVENT")[0], "DTSTART") == ";TZID=Europe/Berlin:20261207T090000"
    assert tzids(result) == ["Europe/Berlin"]


def test_iana_tzid_without_vtimezone_gets_one_and_unused_ones_go() -> None:
    body = "DTSTART;TZID=America/New_York:20261207T090000\nDURATION:PT1H"
    result = stored(BERLIN_VTIMEZONE, CUSTOM_VTIMEZONE, vevent(body))
    assert value(result.walk("VEVENT")[0], "DTSTART") == ";TZID=America/New_York:20261207T090000"
    assert tzids(result) == ["America/New_York"]


def test_provided_vtimezone_is_kept() -> None:
    result = stored(BERLIN_VTIMEZONE, vevent(FLOATING))
    assert "X-LIC-LOCATION:Europe/Berlin" in lines(result)


def test_utc_values_are_not_touched() -> None:
    result = stored(vevent("DTSTART:20261207T090000Z\nDTEND:20261207T100000Z"))
    assert value(result.walk("VEVENT")[0], "DTSTART") == ":20261207T090000Z"
    assert tzids(result) == []


def test_lone_event_assumes_no_orphans() -> None:
    """Without the item around it, an unknown TZID might have a VTIMEZONE elsewhere: leave it."""
    source = event("DTSTART;TZID=Customized Time Zone:20261207T090000", timezones=(CUSTOM_VTIMEZONE,))
    result = apply_timezone(source, ConnectionOptions())
    assert value(result, "DTSTART") == ";TZID=Customized Time Zone:20261207T090000"


def test_normalize_timezones_keeps_other_content() -> None:
    result = normalize_timezones(calendar(vevent(f"{FLOATING}\nSUMMARY:Kept")), ConnectionOptions())
    (stored_event,) = result.walk("VEVENT")
    assert str(stored_event["SUMMARY"]) == "Kept"
    assert value(stored_event, "DTSTART") == ";TZID=Europe/Berlin:20261207T090000"
