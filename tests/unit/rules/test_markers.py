"""markers: one reading of busy-ness for rules and free/busy, one test per marker value."""

from __future__ import annotations

import pytest
from icalendar.enums import FBTYPE

from bridge.rules import read_markers
from tests.unit.rules._ics import ALL_DAY, OWNER, TIMED, event

OWNERS = frozenset({OWNER})


@pytest.mark.parametrize(
    ("extra", "fbtype"),
    [
        pytest.param("", FBTYPE.BUSY, id="plain"),
        pytest.param("TRANSP:OPAQUE", FBTYPE.BUSY, id="transp-opaque"),
        pytest.param("TRANSP:TRANSPARENT", FBTYPE.FREE, id="transp-transparent"),
        pytest.param("TRANSP:transparent", FBTYPE.FREE, id="transp-lower-case"),
        pytest.param("X-MICROSOFT-CDO-BUSYSTATUS:FREE", FBTYPE.FREE, id="busystatus-free"),
        pytest.param("X-MICROSOFT-CDO-BUSYSTATUS:TENTATIVE", FBTYPE.BUSY_TENTATIVE, id="busystatus-tentative"),
        pytest.param("X-MICROSOFT-CDO-BUSYSTATUS:BUSY", FBTYPE.BUSY, id="busystatus-busy"),
        pytest.param("X-MICROSOFT-CDO-BUSYSTATUS:OOF", FBTYPE.BUSY_UNAVAILABLE, id="busystatus-oof"),
        pytest.param("X-MICROSOFT-CDO-BUSYSTATUS:WORKINGELSEWHERE", FBTYPE.FREE, id="busystatus-workingelsewhere"),
        pytest.param("TRANSP:TRANSPARENT\nX-MICROSOFT-CDO-BUSYSTATUS:WORKINGELSEWHERE", FBTYPE.FREE,
                     id="google-working-location"),
        pytest.param("TRANSP:OPAQUE\nX-MICROSOFT-CDO-BUSYSTATUS:FREE", FBTYPE.FREE, id="either-free-marker-suffices"),
        pytest.param("STATUS:CONFIRMED", FBTYPE.BUSY, id="status-confirmed"),
        pytest.param("STATUS:TENTATIVE", FBTYPE.BUSY_TENTATIVE, id="status-tentative"),
        pytest.param("STATUS:CANCELLED", FBTYPE.FREE, id="status-cancelled"),
        pytest.param(f"ATTENDEE;PARTSTAT=ACCEPTED:mailto:{OWNER}", FBTYPE.BUSY, id="owner-accepted"),
        pytest.param(f"ATTENDEE;PARTSTAT=TENTATIVE:mailto:{OWNER}", FBTYPE.BUSY_TENTATIVE, id="owner-tentative"),
        pytest.param(f"ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:{OWNER}", FBTYPE.BUSY, id="owner-needs-action"),
        pytest.param(f"ATTENDEE:mailto:{OWNER}", FBTYPE.BUSY, id="owner-no-partstat"),
        pytest.param(f"ATTENDEE;PARTSTAT=DECLINED:mailto:{OWNER}", FBTYPE.FREE, id="owner-declined"),
        pytest.param("ATTENDEE;PARTSTAT=DECLINED:MAILTO:Owner@Example.ORG", FBTYPE.FREE, id="owner-declined-case"),
        pytest.param(f"ATTENDEE;PARTSTAT=DECLINED;EMAIL={OWNER}:urn:uuid:1234", FBTYPE.FREE,
                     id="owner-declined-email-param"),
        pytest.param("ATTENDEE;PARTSTAT=DECLINED:mailto:guest@example.org", FBTYPE.BUSY, id="someone-else-declined"),
        pytest.param("CLASS:PRIVATE", FBTYPE.BUSY, id="class-private-is-still-busy"),
    ],
)
def test_fbtype(extra: str, fbtype: FBTYPE) -> None:
    markers = read_markers(event(f"{TIMED}\n{extra}"), OWNERS)
    assert markers.fbtype == fbtype
    assert markers.busy == (fbtype != FBTYPE.FREE)


@pytest.mark.parametrize(
    ("extra", "private"),
    [
        ("", False),
        ("CLASS:PUBLIC", False),
        ("CLASS:PRIVATE", True),
        ("CLASS:CONFIDENTIAL", True),
        ("CLASS:private", True),
        ("CLASS:X-SECRET", False),
    ],
)
def test_class(extra: str, private: bool) -> None:
    assert read_markers(event(f"{TIMED}\n{extra}")).private is private


def test_declined_needs_the_owner_addresses() -> None:
    """Without knowing the owner, nobody's decline counts."""
    declined = event(f"{TIMED}\nATTENDEE;PARTSTAT=DECLINED:mailto:{OWNER}")
    assert not read_markers(declined).declined
    assert read_markers(declined, OWNERS).declined


def test_all_day_and_override() -> None:
    assert read_markers(event(ALL_DAY)).all_day
    assert not read_markers(event(TIMED)).all_day
    override = event(f"{TIMED}\nRECURRENCE-ID;TZID=Europe/Berlin:20261207T090000")
    assert read_markers(override).override
    assert not read_markers(event(TIMED)).override
