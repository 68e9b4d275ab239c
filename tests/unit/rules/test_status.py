"""Always on: cancelled events and invitations the owner declined are never busy."""

from __future__ import annotations

import pytest

from bridge.rules import ConnectionOptions, apply_status, ingest
from tests.unit.rules._ics import OWNER, TIMED, calendar, event, lines, value, vevent

OPTIONS = ConnectionOptions(owner_addresses=frozenset({OWNER}))


@pytest.mark.parametrize(
    ("extra", "kept"),
    [
        pytest.param("STATUS:CONFIRMED", True, id="confirmed"),
        pytest.param("STATUS:TENTATIVE", True, id="tentative"),
        pytest.param("STATUS:CANCELLED", False, id="cancelled"),
        pytest.param("STATUS:cancelled", False, id="cancelled-lower-case"),
        pytest.param(f"ATTENDEE;PARTSTAT=ACCEPTED:mailto:{OWNER}", True, id="owner-accepted"),
        pytest.param(f"ATTENDEE;PARTSTAT=TENTATIVE:mailto:{OWNER}", True, id="owner-tentative"),
        pytest.param(f"ATTENDEE;PARTSTAT=NEEDS-ACTION:mailto:{OWNER}", True, id="owner-not-answered"),
        pytest.param(f"ATTENDEE;PARTSTAT=DECLINED:mailto:{OWNER}", False, id="owner-declined"),
        pytest.param("ATTENDEE;PARTSTAT=DECLINED:mailto:guest@example.org", True, id="guest-declined"),
        pytest.param(
            f"ATTENDEE;PARTSTAT=ACCEPTED:mailto:guest@example.org\nATTENDEE;PARTSTAT=DECLINED:mailto:{OWNER}",
            False,
            id="owner-declined-among-others",
        ),
    ],
)
def test_status_and_partstat(extra: str, kept: bool) -> None:
    result = apply_status(event(f"{TIMED}\n{extra}"), OPTIONS)
    assert (result is not None) is kept


@pytest.mark.parametrize("transparent_as_busy", [False, True])
def test_options_cannot_bring_back_a_cancelled_event(transparent_as_busy: bool) -> None:
    options = ConnectionOptions(transparent_as_busy=transparent_as_busy, allday_as_busy=True)
    assert ingest(calendar(vevent(f"{TIMED}\nSTATUS:CANCELLED")), options) is None


SERIES = vevent(f"{TIMED}\nRRULE:FREQ=DAILY;COUNT=5\nSUMMARY:Daily")


def override(extra: str, day: int = 8) -> str:
    return vevent(
        f"RECURRENCE-ID;TZID=Europe/Berlin:202612{day:02}T090000\n"
        f"DTSTART;TZID=Europe/Berlin:202612{day:02}T110000\n"
        f"DTEND;TZID=Europe/Berlin:202612{day:02}T120000\n{extra}"
    )


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param("STATUS:CANCELLED", id="cancelled"),
        pytest.param(f"ATTENDEE;PARTSTAT=DECLINED:mailto:{OWNER}", id="declined"),
        pytest.param("TRANSP:TRANSPARENT", id="dropped-by-another-rule"),
    ],
)
def test_dropped_override_removes_only_its_instance(extra: str) -> None:
    stored = ingest(calendar(SERIES, override(extra)), OPTIONS)
    assert stored is not None
    (master,) = stored.walk("VEVENT")
    assert value(master, "RRULE") == ":FREQ=DAILY;COUNT=5"
    assert value(master, "EXDATE") == ";TZID=Europe/Berlin:20261208T090000"


def test_cancelled_master_keeps_surviving_overrides() -> None:
    stored = ingest(calendar(vevent(f"{TIMED}\nRRULE:FREQ=DAILY;COUNT=5\nSTATUS:CANCELLED"), override("")), OPTIONS)
    assert stored is not None
    (only,) = stored.walk("VEVENT")
    assert value(only, "RECURRENCE-ID") == ";TZID=Europe/Berlin:20261208T090000"
    assert "RRULE" not in only


def test_everything_dropped_means_nothing_stored() -> None:
    item = calendar(vevent(f"{TIMED}\nRRULE:FREQ=DAILY;COUNT=5\nSTATUS:CANCELLED"), override("STATUS:CANCELLED"))
    assert ingest(item, OPTIONS) is None


def test_exdate_is_added_once() -> None:
    series = vevent(f"{TIMED}\nRRULE:FREQ=DAILY;COUNT=5\nEXDATE;TZID=Europe/Berlin:20261208T090000")
    stored = ingest(calendar(series, override("STATUS:CANCELLED")), OPTIONS)
    assert stored is not None
    assert [line for line in lines(stored) if line.startswith("EXDATE")] == [
        "EXDATE;TZID=Europe/Berlin:20261208T090000"
    ]
