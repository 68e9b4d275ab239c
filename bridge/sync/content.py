"""What an event *says*, apart from how a server spelled it: the content hash, and the form we push.

The planner tells a real change from a new etag over the same content by comparing content
hashes (vdirsyncer #1168: servers re-serialise, add DTSTAMPs, move VTIMEZONEs). So the hash
covers what a person would call the event, in a canonical form: the instants of every
component (floating times read in the sync zone, DTEND or DURATION alike), the recurrence
(RRULE parts, RDATE, EXDATE as instants, RECURRENCE-ID), and the texts and markers a reader
sees (SUMMARY, LOCATION, DESCRIPTION, STATUS, TRANSP, CLASS). It leaves out the stamps
(DTSTAMP, LAST-MODIFIED, SEQUENCE, CREATED), the PRODID and the provider's own X- properties.

The pushed form (:func:`push_form`) is an owned item as the external calendar gets it:
non-recurring times in the connection's sync time zone (UTC for iCloud, so no provider misreads
a zone it does not know), recurring ones in their own zone (converting a weekly 9:00 in Berlin
to UTC would move it by an hour at every DST change), floating times pinned to the sync zone.
"""

from __future__ import annotations

import hashlib
import json
import zoneinfo
from datetime import UTC, date, datetime, tzinfo
from typing import Any

import icalendar

from bridge import expand
from bridge.ical.zones import copy_calendar
from bridge.rules import timezones

TEXTS = ("SUMMARY", "LOCATION", "DESCRIPTION", "STATUS", "TRANSP", "CLASS")
TIME_PROPERTIES = ("DTSTART", "DTEND", "RECURRENCE-ID")
COMPONENTS = ("VEVENT", "VTODO", "VJOURNAL")
UTC_NAMES = frozenset({"UTC", "Etc/UTC", "GMT", "Etc/GMT", "Z"})


def content_hash(calendar: icalendar.Calendar, zone: tzinfo = UTC) -> str:
    """A SHA-256 over the canonical form of the module docstring; ``zone`` reads floating times."""
    parts = sorted((_canonical(component, zone) for component in calendar.walk() if component.name in COMPONENTS),
                   key=lambda part: json.dumps(part, sort_keys=True))
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def push_form(calendar: icalendar.Calendar, sync_zone: str | None) -> icalendar.Calendar:
    """A copy of an owned item as it is written to the external calendar (module docstring)."""
    result = copy_calendar(calendar)
    if sync_zone is None:
        return result
    zone: tzinfo = UTC if sync_zone in UTC_NAMES else zoneinfo.ZoneInfo(sync_zone)
    for component in result.walk():
        if component.name not in COMPONENTS:
            continue
        recurring = "RRULE" in component or "RDATE" in component
        for name in TIME_PROPERTIES:
            if name not in component:
                continue
            value = component[name].dt
            if not isinstance(value, datetime):
                continue
            if value.tzinfo is None:
                moved = value.replace(tzinfo=zone)
            elif recurring or name == "RECURRENCE-ID":
                continue  # a series keeps its zone; an override names its instance as the master does
            else:
                moved = value.astimezone(zone)
            del component[name]
            component.add(name, moved)
    return timezones.with_timezones(result)


def _canonical(component: icalendar.cal.Component, zone: tzinfo) -> dict[str, Any]:
    part: dict[str, Any] = {"name": component.name}
    if component.name == "VEVENT" and "DTSTART" in component:
        try:
            start, end = expand.bounds(component, zone)
            part["span"] = [start.isoformat(), end.isoformat()]
        except expand.ExpansionError:
            part["span"] = None
        part["all_day"] = not isinstance(component["DTSTART"].dt, datetime)
    if "RECURRENCE-ID" in component:
        part["rid"] = _instant(component["RECURRENCE-ID"].dt, zone)
    if "RRULE" in component:
        part["rrule"] = sorted(_text(rule.to_ical()) for rule in _values(component, "RRULE"))
    for name in ("RDATE", "EXDATE"):
        if name in component:
            part[name.lower()] = sorted({_instant(when.dt if not isinstance(when.dt, tuple) else when.dt[0], zone)
                                         for value in _values(component, name) for when in value.dts})
    for name in TEXTS:
        if name in component:
            part[name.lower()] = str(component[name]).replace("\r\n", "\n").strip()
    return part


def _instant(value: date | datetime, zone: tzinfo) -> str:
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=zone)
        return aware.astimezone(UTC).isoformat()
    return value.isoformat()


def _values(component: icalendar.cal.Component, name: str) -> list[Any]:
    value = component[name]
    return list(value) if isinstance(value, list) else [value]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
