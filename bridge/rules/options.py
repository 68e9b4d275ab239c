"""The per-connection options of the product, as the rules read them.

Field meanings follow the booking product's help page ("Synchronisation"):
free-marked and all-day events are not transferred unless asked for, the
location can be withheld, "no personal data" keeps only the times (every
text field reads ``n/a``), private events lose their details, and floating
times are read in the connection's sync time zone.
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass


def normalize_address(address: str) -> str:
    """An e-mail address as the rules compare it: no ``mailto:``, lower-case, trimmed."""
    text = address.strip()
    if text[:7].lower() == "mailto:":
        text = text[7:]
    return text.strip().lower()


@dataclass(frozen=True, slots=True)
class ConnectionOptions:
    """What one connection lets through to the store (see the module docstring)."""

    transparent_as_busy: bool = False
    allday_as_busy: bool = False
    anonymize_location: bool = False
    no_personal_data: bool = False
    private_without_details: bool = True
    sync_timezone: str | None = None
    calendar_timezone: str = "Europe/Berlin"
    uid_salt: bytes = b""
    owner_addresses: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        # Normalize once here so that every rule compares addresses the same way.
        object.__setattr__(self, "owner_addresses", frozenset(normalize_address(a) for a in self.owner_addresses))
        try:
            zoneinfo.ZoneInfo(self.zone_name)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {self.zone_name!r}") from exc

    @property
    def zone_name(self) -> str:
        """The IANA zone floating times are read in: the sync zone, else the calendar's."""
        return self.sync_timezone or self.calendar_timezone

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        """:attr:`zone_name` as a tzinfo."""
        return zoneinfo.ZoneInfo(self.zone_name)
