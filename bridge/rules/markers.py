"""A component's busy-ness, read from the markers providers leave in iCalendar form.

Adapters translate provider fields into iCalendar: Google ``transparent`` and
Outlook ``free`` become ``TRANSP:TRANSPARENT``; Outlook's other showAs values
travel as ``X-MICROSOFT-CDO-BUSYSTATUS``; private/confidential visibility
becomes ``CLASS``. One reader here, shared by the write-time rules and the
free/busy code, keeps every consumer agreeing on what "busy" means.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from icalendar import Component
from icalendar.enums import CLASS, FBTYPE, PARTSTAT, STATUS, TRANSP

from bridge.rules.options import normalize_address

BUSYSTATUS = "X-MICROSOFT-CDO-BUSYSTATUS"
"""Outlook/Exchange's show-as marker: FREE, TENTATIVE, BUSY, OOF, WORKINGELSEWHERE."""

FREE_BUSYSTATUSES = frozenset({"FREE", "WORKINGELSEWHERE"})
"""Busy-status values that mean "available" (a working location is not an appointment)."""

PRIVATE_CLASSES = frozenset({CLASS.PRIVATE.value, CLASS.CONFIDENTIAL.value})


@dataclass(frozen=True, slots=True)
class Markers:
    """The raw markers of one component, upper-cased; the properties interpret them."""

    transparent: bool
    busy_status: str | None
    status: str | None
    owner_partstat: str | None
    klass: str | None
    all_day: bool
    override: bool

    @property
    def free_marked(self) -> bool:
        """Marked available: ``TRANSP:TRANSPARENT`` or a free busy-status (either one suffices)."""
        return self.transparent or self.busy_status in FREE_BUSYSTATUSES

    @property
    def working_elsewhere(self) -> bool:
        """A working-location entry (Google workingLocation, Outlook workingElsewhere)."""
        return self.busy_status == "WORKINGELSEWHERE"

    @property
    def cancelled(self) -> bool:
        return self.status == STATUS.CANCELLED.value

    @property
    def declined(self) -> bool:
        """The calendar's owner declined this invitation."""
        return self.owner_partstat == PARTSTAT.DECLINED.value

    @property
    def private(self) -> bool:
        return self.klass in PRIVATE_CLASSES

    @property
    def fbtype(self) -> FBTYPE:
        """The RFC 5545 free/busy type of the component's time."""
        if self.free_marked or self.cancelled or self.declined:
            return FBTYPE.FREE
        if self.busy_status == "OOF":
            return FBTYPE.BUSY_UNAVAILABLE
        if "TENTATIVE" in (self.busy_status, self.status, self.owner_partstat):
            return FBTYPE.BUSY_TENTATIVE
        return FBTYPE.BUSY

    @property
    def busy(self) -> bool:
        return self.fbtype != FBTYPE.FREE


def is_all_day(component: Component) -> bool:
    """DTSTART is a DATE: birthdays, reminders, holidays, vacations."""
    start = component.get("DTSTART")
    value = getattr(start, "dt", None)
    return isinstance(value, date) and not isinstance(value, datetime)


def owner_partstat(component: Component, owner_addresses: frozenset[str]) -> str | None:
    """The owner's PARTSTAT (``NEEDS-ACTION`` when omitted), or None when the owner is not invited.

    An attendee is the owner when its address or its ``EMAIL`` parameter (RFC 7986)
    is one of ``owner_addresses``. A DECLINED entry wins over others for the same owner.
    """
    if not owner_addresses:
        return None
    found: str | None = None
    for attendee in property_values(component.get("ATTENDEE")):
        params = getattr(attendee, "params", {})
        addresses = {normalize_address(str(attendee)), normalize_address(str(params.get("EMAIL", "")))}
        if addresses & owner_addresses:
            partstat = str(params.get("PARTSTAT", PARTSTAT.NEEDS_ACTION.value)).upper()
            if found is None or partstat == PARTSTAT.DECLINED.value:
                found = partstat
    return found


def read_markers(component: Component, owner_addresses: frozenset[str] = frozenset()) -> Markers:
    """Read the busy-relevant markers of one VEVENT (or override)."""
    return Markers(
        transparent=marker_text(component.get("TRANSP")) == TRANSP.TRANSPARENT.value,
        busy_status=marker_text(component.get(BUSYSTATUS)),
        status=marker_text(component.get("STATUS")),
        owner_partstat=owner_partstat(component, owner_addresses),
        klass=marker_text(component.get("CLASS")),
        all_day=is_all_day(component),
        override="RECURRENCE-ID" in component,
    )


def property_values(value: object) -> list[Any]:
    """A property that may occur several times, as a list."""
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def marker_text(value: object) -> str | None:
    """A single text marker, trimmed and upper-cased; the first one if repeated."""
    values = property_values(value)
    if not values:
        return None
    text = str(values[0]).strip().upper()
    return text or None
