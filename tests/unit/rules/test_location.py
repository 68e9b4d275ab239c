"""anonymize_location: where an event takes place is never stored."""

from __future__ import annotations

import pytest

from bridge.rules import ConnectionOptions, apply_location, ingest
from tests.unit.rules._ics import BERLIN_VTIMEZONE, TIMED, calendar, event, unfolded, vevent

OFF = ConnectionOptions()
ON = ConnectionOptions(anonymize_location=True)

LOCATION_LINES = [
    "LOCATION:Praxis Dr. Geheim\\, Hauptstr. 1",
    "LOCATION;ALTREP=\"http://example.org/map\":Room 7",
    "GEO:52.520008;13.404954",
    "CONFERENCE;VALUE=URI;FEATURE=VIDEO:https://meet.example.org/abc-defg-hij",
    'X-APPLE-STRUCTURED-LOCATION;VALUE=URI;X-TITLE="Hauptstr. 1":geo:52.52,13.40',
    "X-APPLE-TRAVEL-START;ROUTING=CAR;VALUE=URI;X-ADDRESS=Nebenweg 2:",
    "X-MICROSOFT-LOCATIONDISPLAYNAME:Besprechungsraum Nord",
    "X-MICROSOFT-LOCATIONS:[{\"DisplayName\":\"Besprechungsraum Nord\"}]",
    "X-MICROSOFT-LOCATIONSTREET:Hauptstr. 1",
    "X-MICROSOFT-LATITUDE:52.52",
    "X-MICROSOFT-SKYPETEAMSMEETINGURL:https://teams.example.org/l/meetup-join/1",
    "X-GOOGLE-CONFERENCE:https://meet.example.org/abc-defg-hij",
]


@pytest.mark.parametrize("line", LOCATION_LINES)
def test_each_location_property_is_removed(line: str) -> None:
    source = event(f"{TIMED}\nSUMMARY:Checkup\n{line}")
    name = line.split(";", 1)[0].split(":", 1)[0]
    kept = apply_location(source, OFF)
    assert kept is not None and name in kept
    removed = apply_location(source, ON)
    assert removed is not None
    assert name not in removed
    assert str(removed["SUMMARY"]) == "Checkup"


def test_location_alarm_and_vlocation_are_removed() -> None:
    source = event(
        f"{TIMED}\nBEGIN:VALARM\nACTION:DISPLAY\nTRIGGER:-PT15M\nDESCRIPTION:Reminder\nX-APPLE-PROXIMITY:ARRIVE\n"
        'X-APPLE-STRUCTURED-LOCATION;VALUE=URI;X-TITLE="Home":geo:52.5,13.4\nEND:VALARM\n'
        "BEGIN:VLOCATION\nUID:loc-1\nNAME:Secret room\nEND:VLOCATION"
    )
    result = apply_location(source, ON)
    assert result is not None
    text = unfolded(result.to_ical())
    assert "BEGIN:VALARM" in text and "TRIGGER:-PT15M" in text
    for gone in ("X-APPLE-PROXIMITY", "X-APPLE-STRUCTURED-LOCATION", "VLOCATION", "Secret room"):
        assert gone not in text


def test_vtimezone_x_lic_location_is_left_alone() -> None:
    stored = ingest(calendar(BERLIN_VTIMEZONE, vevent(f"{TIMED}\nLOCATION:Office")), ON)
    assert stored is not None
    text = unfolded(stored.to_ical())
    assert "X-LIC-LOCATION:Europe/Berlin" in text
    assert "LOCATION:Office" not in text
