"""private_without_details: events marked private keep only their times, even without no_personal_data."""

from __future__ import annotations

import pytest

from bridge.rules import ConnectionOptions, apply_private, hashed_uid, ingest
from tests.unit.rules._ics import TIMED, calendar, event, unfolded, value, vevent

DETAILS = f"{TIMED}\nSUMMARY:Job interview\nDESCRIPTION:At Competitor Inc.\nLOCATION:Competitor HQ"


@pytest.mark.parametrize(
    ("klass", "stripped"),
    [
        pytest.param("", False, id="no-class"),
        pytest.param("CLASS:PUBLIC", False, id="public"),
        pytest.param("CLASS:PRIVATE", True, id="google-private-outlook-private"),
        pytest.param("CLASS:CONFIDENTIAL", True, id="google-confidential-outlook-confidential"),
    ],
)
def test_private_events_lose_their_details(klass: str, stripped: bool) -> None:
    result = apply_private(event(f"{DETAILS}\n{klass}"), ConnectionOptions())
    assert result is not None
    text = unfolded(result.to_ical())
    assert ("Competitor" not in text) is stripped
    assert value(result, "SUMMARY") == (":n/a" if stripped else ":Job interview")
    assert value(result, "DTSTART") == ";TZID=Europe/Berlin:20261207T090000"


def test_option_off_keeps_private_details() -> None:
    source = event(f"{DETAILS}\nCLASS:PRIVATE")
    result = apply_private(source, ConnectionOptions(private_without_details=False))
    assert result is not None
    assert result.to_ical() == source.to_ical()


def test_per_event_rule_leaves_the_uid_to_ingest() -> None:
    result = apply_private(event(f"{DETAILS}\nCLASS:PRIVATE", uid="series@example.com"), ConnectionOptions())
    assert result is not None
    assert str(result["UID"]) == "series@example.com"


def test_ingest_hashes_the_uid_of_a_private_event() -> None:
    options = ConnectionOptions(uid_salt=b"s")
    stored = ingest(calendar(vevent(f"{DETAILS}\nCLASS:PRIVATE", uid="interview@example.com")), options)
    assert stored is not None
    (stored_event,) = stored.walk("VEVENT")
    assert str(stored_event["UID"]) == hashed_uid("interview@example.com", b"s")
    assert value(stored_event, "CLASS") == ":PRIVATE"


def test_public_event_keeps_its_uid() -> None:
    stored = ingest(calendar(vevent(DETAILS, uid="meeting@example.com")), ConnectionOptions())
    assert stored is not None
    assert str(stored.walk("VEVENT")[0]["UID"]) == "meeting@example.com"
