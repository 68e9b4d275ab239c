"""ConnectionOptions: the product's defaults, and inputs normalized once."""

from __future__ import annotations

import dataclasses

import pytest

from bridge.rules import ConnectionOptions


def test_defaults_follow_the_product() -> None:
    """Free-marked and all-day events are not transferred by default; private details are withheld."""
    options = ConnectionOptions()
    assert not options.transparent_as_busy
    assert not options.allday_as_busy
    assert not options.anonymize_location
    assert not options.no_personal_data
    assert options.private_without_details
    assert options.sync_timezone is None
    assert options.zone_name == "Europe/Berlin"
    assert options.uid_salt == b""
    assert options.owner_addresses == frozenset()


@pytest.mark.parametrize(
    ("sync_timezone", "calendar_timezone", "expected"),
    [
        (None, "Europe/Berlin", "Europe/Berlin"),
        (None, "America/New_York", "America/New_York"),
        ("UTC", "Europe/Berlin", "UTC"),
        ("Asia/Tokyo", "Europe/Berlin", "Asia/Tokyo"),
    ],
)
def test_floating_times_zone(sync_timezone: str | None, calendar_timezone: str, expected: str) -> None:
    options = ConnectionOptions(sync_timezone=sync_timezone, calendar_timezone=calendar_timezone)
    assert options.zone_name == expected
    assert options.zone.key == expected


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "", "../etc/passwd"])
def test_unknown_zone_is_refused(zone: str) -> None:
    with pytest.raises(ValueError, match="time zone"):
        ConnectionOptions(sync_timezone=zone or None, calendar_timezone=zone or "Nowhere/Zone")


def test_owner_addresses_are_normalized() -> None:
    options = ConnectionOptions(owner_addresses=frozenset({" MAILTO:Owner@Example.ORG ", "other@example.org"}))
    assert options.owner_addresses == frozenset({"owner@example.org", "other@example.org"})


def test_options_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        ConnectionOptions().no_personal_data = True  # type: ignore[misc]
