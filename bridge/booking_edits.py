"""A CalDAV client's version of a booking's event, read as a change of the booking.

A booking's event is rendered from the booking row (``bookings.render``), so an edit kept only in
the event's text would be lost at the next render. The one edit a booking can hold is its time:
a client that moves the event reschedules the booking. Properties a client maintains for itself
(DTSTAMP, LAST-MODIFIED, CREATED, SEQUENCE, its own X- properties, CLASS:PUBLIC and PRIORITY:0
written out as defaults) are not part of the booking and are not kept; any other difference (title,
description, place, attendees, alarms, recurrence, status) is refused as :class:`EditRefused`, so
nothing a client sends is silently dropped.
"""

from __future__ import annotations

import zoneinfo
from datetime import datetime
from typing import Any

import icalendar

from bridge import bookings, expand
from bridge.store.models import Booking, Calendar
from bridge.store.objects import CalendarObject

TIME_PROPERTIES = frozenset({"DTSTART", "DTEND", "DURATION"})
CLIENT_PROPERTIES = frozenset({"DTSTAMP", "LAST-MODIFIED", "CREATED", "SEQUENCE"})
OUR_PREFIX = "X-CALBRIDGE-"
# Values a client may write out although they say nothing new (RFC 5545 defaults).
DEFAULTS = {"CLASS": [b"PUBLIC"], "PRIORITY": [b"0"]}


class EditRefused(Exception):
    """The client's version changes more of a booking's event than its time; ``reason`` says what."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def proposed_times(booking: Booking, calendar: Calendar, sent: CalendarObject,
                   now: datetime) -> tuple[datetime, datetime]:
    """The start and end (UTC) the client's version gives the booking; :class:`EditRefused` if it
    changes anything else the booking holds."""
    events = [c for c in sent.calendar.subcomponents if c.name != "VTIMEZONE"]
    if sent.component != "VEVENT" or len(events) != 1:
        raise EditRefused("a booking is one single event")
    if sent.uid != bookings.event_uid(booking):
        raise EditRefused("a booking's event keeps its UID")
    event = events[0]
    rendered = icalendar.Calendar.from_ical(bookings.render(booking, calendar, now)).walk("VEVENT")[0]
    changed = sorted(name for name in _held(event) | _held(rendered)
                     if _values(event, name) != _values(rendered, name)
                     and not (name not in rendered and _values(event, name) == DEFAULTS.get(name)))
    if changed:
        raise EditRefused(f"only the time of a booking can be changed here, not {', '.join(changed)}")
    if event.subcomponents:
        raise EditRefused("a booking's event holds no alarms or other components")
    try:
        start, end = expand.bounds(event, zoneinfo.ZoneInfo(calendar.timezone))
    except expand.ExpansionError as exc:
        raise EditRefused("the event's time cannot be read") from exc
    if "DTSTART" not in event or not isinstance(event["DTSTART"].dt, datetime):
        raise EditRefused("a booking has a start time, not a date")
    try:
        bookings.BookingRequest(start, end, booking.customer_name, booking.customer_email,
                                booking.customer_language, booking.notes).validate()
    except ValueError as exc:
        raise EditRefused(str(exc)) from exc
    return start, end


def _held(component: icalendar.Component) -> set[str]:
    """Names of the properties that belong to the booking (not its time, not the client's own)."""
    names = {str(name).upper() for name in component}
    return {name for name in names if name not in TIME_PROPERTIES and name not in CLIENT_PROPERTIES
            and (not name.startswith("X-") or name.startswith(OUR_PREFIX))}


def _values(component: icalendar.Component, name: str) -> list[bytes]:
    value: Any = component.get(name)
    values = value if isinstance(value, list) else [] if value is None else [value]
    return sorted(v.to_ical() if hasattr(v, "to_ical") else str(v).encode() for v in values)
