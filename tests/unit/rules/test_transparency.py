"""transparent_as_busy: events marked available are dropped, or kept as busy."""

from __future__ import annotations

import pytest

from bridge.rules import ConnectionOptions, apply_transparency, read_markers
from tests.unit.rules._ics import ALL_DAY, TIMED, event, value

OFF = ConnectionOptions()
ON = ConnectionOptions(transparent_as_busy=True)


@pytest.mark.parametrize(
    ("extra", "free"),
    [
        pytest.param("", False, id="no-marker"),
        pytest.param("TRANSP:OPAQUE", False, id="transp-opaque"),
        pytest.param("TRANSP:TRANSPARENT", True, id="transp-transparent"),
        pytest.param("X-MICROSOFT-CDO-BUSYSTATUS:FREE", True, id="busystatus-free"),
        pytest.param("X-MICROSOFT-CDO-BUSYSTATUS:TENTATIVE", False, id="busystatus-tentative"),
        pytest.param("X-MICROSOFT-CDO-BUSYSTATUS:BUSY", False, id="busystatus-busy"),
        pytest.param("X-MICROSOFT-CDO-BUSYSTATUS:OOF", False, id="busystatus-oof"),
        pytest.param("X-MICROSOFT-CDO-BUSYSTATUS:WORKINGELSEWHERE", True, id="busystatus-workingelsewhere"),
        pytest.param("TRANSP:TRANSPARENT\nX-MICROSOFT-CDO-BUSYSTATUS:WORKINGELSEWHERE", True,
                     id="google-working-location"),
    ],
)
def test_free_marked_timed_events(extra: str, free: bool) -> None:
    """Off: a free-marked event is gone. On: it is kept, and every reader now counts it busy."""
    source = event(f"{TIMED}\n{extra}")
    dropped = apply_transparency(source, OFF)
    kept = apply_transparency(source, ON)
    assert kept is not None
    if free:
        assert dropped is None
        assert value(kept, "TRANSP") == ":OPAQUE"
        assert read_markers(kept).busy
    else:
        assert dropped is not None
        assert dropped.to_ical() == source.to_ical()
        assert kept.to_ical() == source.to_ical()


@pytest.mark.parametrize(
    ("extra", "busystatus"),
    [
        ("X-MICROSOFT-CDO-BUSYSTATUS:FREE", None),
        ("X-MICROSOFT-CDO-BUSYSTATUS:WORKINGELSEWHERE", None),
        ("TRANSP:TRANSPARENT\nX-MICROSOFT-CDO-BUSYSTATUS:TENTATIVE", ":TENTATIVE"),
        ("TRANSP:TRANSPARENT\nX-MICROSOFT-CDO-BUSYSTATUS:OOF", ":OOF"),
    ],
)
def test_made_busy_keeps_only_a_busy_busystatus(extra: str, busystatus: str | None) -> None:
    kept = apply_transparency(event(f"{TIMED}\n{extra}"), ON)
    assert kept is not None
    assert value(kept, "X-MICROSOFT-CDO-BUSYSTATUS") == busystatus


@pytest.mark.parametrize(
    ("extra", "decided_here"),
    [
        pytest.param("TRANSP:TRANSPARENT", False, id="google-all-day-default"),
        pytest.param("X-MICROSOFT-CDO-BUSYSTATUS:FREE", False, id="outlook-all-day-default"),
        pytest.param("X-MICROSOFT-CDO-BUSYSTATUS:WORKINGELSEWHERE", True, id="all-day-working-location"),
    ],
)
def test_all_day_free_markers(extra: str, decided_here: bool) -> None:
    """Providers mark all-day events free by default: only a working location counts as free there."""
    result = apply_transparency(event(f"{ALL_DAY}\n{extra}"), OFF)
    assert (result is None) is decided_here


def test_input_is_not_changed() -> None:
    source = event(f"{TIMED}\nTRANSP:TRANSPARENT\nX-MICROSOFT-CDO-BUSYSTATUS:FREE")
    before = source.to_ical()
    apply_transparency(source, ON)
    assert source.to_ical() == before


@pytest.mark.parametrize("personal", [False, True], ids=["details", "no-personal-data"])
def test_turning_the_option_off_drops_what_it_made_busy_from_stored_data(personal: bool) -> None:
    """The stored copy no longer says TRANSPARENT; calbridge's marker lets a re-ingest find it."""
    from bridge.rules import apply_rules

    stored = apply_rules(event(f"{TIMED}\nTRANSP:TRANSPARENT"),
                         ConnectionOptions(transparent_as_busy=True, no_personal_data=personal))
    assert stored is not None and value(stored, "TRANSP") == ":OPAQUE"
    again = apply_rules(stored, ConnectionOptions(transparent_as_busy=True, no_personal_data=personal))
    assert again is not None and again.to_ical() == stored.to_ical()
    assert apply_rules(stored, ConnectionOptions(no_personal_data=personal)) is None
