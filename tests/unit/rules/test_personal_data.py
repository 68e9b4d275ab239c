"""no_personal_data: only the timing survives, SUMMARY reads n/a, the UID is a stable keyed hash."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from bridge.rules import ConnectionOptions, apply_personal_data, hashed_uid, ingest
from tests.unit.rules._ics import TIMED, calendar, event, lines, unfolded, value, vevent

ON = ConnectionOptions(no_personal_data=True, uid_salt=b"connection-7")

FULL = f"""{TIMED}
SUMMARY:Therapy with Erika Mustermann
DESCRIPTION:Call +49 30 1234567 before
LOCATION:Praxis Dr. Geheim
ATTENDEE;CN=Erika Mustermann;PARTSTAT=ACCEPTED:mailto:erika@example.org
ORGANIZER;CN=Max:mailto:max@example.org
ATTACH:https://files.example.org/referral.pdf
CONTACT:Dr. Geheim\\, 030 999
URL:https://crm.example.org/patients/42
CATEGORIES:Health
CREATED:20260101T000000Z
LAST-MODIFIED:20260102T000000Z
SEQUENCE:3
TRANSP:OPAQUE
STATUS:CONFIRMED
CLASS:PUBLIC
RRULE:FREQ=WEEKLY;COUNT=4
EXDATE;TZID=Europe/Berlin:20261214T090000
RDATE;TZID=Europe/Berlin:20261230T090000
X-MICROSOFT-CDO-BUSYSTATUS:OOF
X-ALT-DESC;FMTTYPE=text/html:<b>Erika</b>
BEGIN:VALARM
ACTION:DISPLAY
TRIGGER:-PT15M
DESCRIPTION:Therapy with Erika Mustermann
END:VALARM"""

SECRETS = ["Erika", "Mustermann", "1234567", "Geheim", "erika@example.org", "max@example.org", "referral",
           "crm.example.org", "Health", "20260101T000000Z", "20260102T000000Z", "OOF", "VALARM"]


def test_only_timing_survives() -> None:
    result = apply_personal_data(event(FULL), ON)
    assert result is not None
    text = unfolded(result.to_ical())
    for secret in SECRETS:
        assert secret not in text
    assert value(result, "SUMMARY") == ":n/a"
    assert value(result, "DTSTART") == ";TZID=Europe/Berlin:20261207T090000"
    assert value(result, "DTEND") == ";TZID=Europe/Berlin:20261207T100000"
    assert value(result, "RRULE") == ":FREQ=WEEKLY;COUNT=4"
    assert value(result, "EXDATE") == ";TZID=Europe/Berlin:20261214T090000"
    assert value(result, "RDATE") == ";TZID=Europe/Berlin:20261230T090000"
    for name, expected in [("TRANSP", ":OPAQUE"), ("STATUS", ":CONFIRMED"), ("SEQUENCE", ":3"),
                           ("DTSTAMP", ":20261124T080000Z"), ("CLASS", ":PUBLIC")]:
        assert value(result, name) == expected


@pytest.mark.parametrize(
    "name",
    ["DESCRIPTION", "LOCATION", "ATTENDEE", "ORGANIZER", "ATTACH", "CONTACT", "URL", "CATEGORIES",
     "X-MICROSOFT-CDO-BUSYSTATUS", "X-ALT-DESC"],
)
def test_each_personal_property_is_gone(name: str) -> None:
    result = apply_personal_data(event(FULL), ON)
    assert result is not None
    assert name not in result


def test_summary_is_na_even_without_one() -> None:
    result = apply_personal_data(event(TIMED), ON)
    assert result is not None
    assert value(result, "SUMMARY") == ":n/a"


def test_duration_and_parameters() -> None:
    result = apply_personal_data(
        event("DTSTART;TZID=Europe/Berlin;X-NOTE=Erika:20261207T090000\nDURATION:PT45M"), ON
    )
    assert result is not None
    assert value(result, "DTSTART") == ";TZID=Europe/Berlin:20261207T090000"
    assert value(result, "DURATION") == ":PT45M"


def test_uid_is_the_keyed_hash() -> None:
    result = apply_personal_data(event(TIMED, uid="erika-42@crm.example.org"), ON)
    assert result is not None
    expected = hmac.new(b"connection-7", b"erika-42@crm.example.org", hashlib.sha256).hexdigest() + "@calbridge"
    assert str(result["UID"]) == expected
    assert hashed_uid("erika-42@crm.example.org", b"connection-7") == expected


def test_uid_hash_is_stable_and_salted() -> None:
    uid = "040000008200E00074C5B7101A82E0080000000010A1"
    assert hashed_uid(uid, b"a") == hashed_uid(uid, b"a")
    assert hashed_uid(uid, b"a") != hashed_uid(uid, b"b")
    assert hashed_uid(uid, b"a") != hashed_uid(uid + "1", b"a")
    assert hashed_uid(hashed_uid(uid, b"a"), b"a") == hashed_uid(uid, b"a")


def test_off_keeps_everything() -> None:
    source = event(FULL)
    result = apply_personal_data(source, ConnectionOptions())
    assert result is not None
    assert result.to_ical() == source.to_ical()


def test_reingest_gives_the_same_item() -> None:
    """Same UID and salt: same stored UID, so a resync updates rather than duplicates."""
    item = calendar(vevent(FULL, uid="erika-42@crm.example.org"))
    first = ingest(item, ON)
    again = ingest(calendar(vevent(FULL, uid="erika-42@crm.example.org")), ON)
    assert first is not None and again is not None
    assert first.to_ical() == again.to_ical()
    uids = {line for line in lines(first) if line.startswith("UID:")}
    assert uids == {"UID:" + hashed_uid("erika-42@crm.example.org", b"connection-7")}
