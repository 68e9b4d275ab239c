"""Read time: what one reader may see of a stored item. Views only ever remove.

- :attr:`View.OWNER`: everything stored.
- :attr:`View.BUSY_ONLY` (e.g. colleagues): the timing, TRANSP, STATUS,
  X-MICROSOFT-CDO-BUSYSTATUS (removing a FREE/OOF marker would change how busy
  the time is), and the structural UID, RECURRENCE-ID and DTSTAMP; SUMMARY
  reads ``busy``. The UID stays: overrides need it to find their master,
  clients need it to track the item, and ingest already hashed it where the
  options ask for that. Parameters are cut to TZID, VALUE and RANGE.
- :attr:`View.BOOKING_ENGINE`: the same without SUMMARY; the engine needs the times only.

Busy views drop VALARMs and every non-VEVENT component except VTIMEZONE, and
keep VERSION, PRODID and CALSCALE of the calendar. They never drop a VEVENT:
a dropped override would bring back the master's instance. ATTENDEE goes too,
so an owner's decline is not visible in a busy view; free/busy must be
computed from the stored (owner) text with :mod:`bridge.rules.markers`.
"""

from __future__ import annotations

import copy
import enum

from icalendar import Calendar, Component, Event

from bridge.rules.markers import BUSYSTATUS
from bridge.rules.personal_data import TIMING_PROPERTIES, trimmed_copy

BUSY_SUMMARY = "busy"
BUSY_PROPERTIES = frozenset((*TIMING_PROPERTIES, "UID", "DTSTAMP", "TRANSP", "STATUS", BUSYSTATUS))
CALENDAR_PROPERTIES = frozenset({"VERSION", "PRODID", "CALSCALE"})


class View(enum.StrEnum):
    """Who reads the item."""

    OWNER = "owner"
    BUSY_ONLY = "busy-only"
    BOOKING_ENGINE = "booking-engine"


def view_event(event: Event, view: View) -> Event:
    """A new event holding what ``view`` may see of ``event``."""
    if view is View.OWNER:
        return event.copy(recursive=True)
    result = Event()
    for name, value in event.property_items(recursive=False, sorted=False):
        if name.upper() in BUSY_PROPERTIES:
            result.add(name, trimmed_copy(value), encode=False)
    if view is View.BUSY_ONLY:
        result.add("SUMMARY", BUSY_SUMMARY)
    return result


def apply_view(calendar: Calendar, view: View) -> Calendar:
    """A new calendar holding what ``view`` may see of the stored item ``calendar``."""
    if view is View.OWNER:
        return calendar.copy(recursive=True)
    result = Calendar()
    for name, value in calendar.property_items(recursive=False, sorted=False):
        if name.upper() in CALENDAR_PROPERTIES:
            result.add(name, copy.deepcopy(value), encode=False)
    subcomponents: list[Component] = []
    for component in calendar.subcomponents:
        if isinstance(component, Event):
            subcomponents.append(view_event(component, view))
        elif component.name == "VTIMEZONE":
            subcomponents.append(component.copy(recursive=True))
    result.subcomponents = subcomponents
    return result

