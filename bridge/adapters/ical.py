"""iCalendar readings the adapters of series-minded services share (Graph and EWS): a written object split into
its master and overrides, a VEVENT's zone, a start in UTC, its EXDATEs, and which instances a write must
remove or change."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, tzinfo

import icalendar

from bridge.adapters.base import Permanent


def split_series(calendar: icalendar.Calendar, service: str) -> tuple[icalendar.Event, list[icalendar.Event], str]:
    """The master, its RECURRENCE-ID overrides and the UID of an object to write to ``service``, which keeps one
    event per series and has no RDATE (Permanent otherwise)."""
    events = calendar.walk("VEVENT")
    masters = [e for e in events if "RECURRENCE-ID" not in e]
    if len(masters) != 1:
        raise Permanent(f"write an event: {service} takes one event with its instances, not {len(masters)} masters")
    master = masters[0]
    if "RDATE" in master:
        raise Permanent(f"write an event: {service} cannot express RDATE")
    return master, [e for e in events if "RECURRENCE-ID" in e], str(master.get("UID", ""))


def zone_of(event: icalendar.Event) -> tzinfo:
    """The zone of the event's DTSTART; UTC for a date or a floating time."""
    start = event.decoded("DTSTART")
    return start.tzinfo if isinstance(start, datetime) and start.tzinfo is not None else UTC


def utc(value: date | datetime, zone: tzinfo) -> datetime:
    """A date or date-time as an aware UTC datetime (a floating time read in ``zone``, a date at midnight UTC)."""
    if isinstance(value, datetime):
        return (value if value.tzinfo is not None else value.replace(tzinfo=zone)).astimezone(UTC)
    return datetime.combine(value, time(0), tzinfo=UTC)


def exdates(event: icalendar.Event) -> list[date | datetime]:
    """Every EXDATE value of the event, however many EXDATE lines carry them."""
    value = event.get("EXDATE")
    if value is None:
        return []
    values = value if isinstance(value, list) else [value]
    return [d.dt for v in values for d in v.dts]


def instance_changes(master: icalendar.Event,
                     overrides: list[icalendar.Event]) -> tuple[set[datetime], dict[datetime, icalendar.Event]]:
    """The instances of a series to write that the service must remove (EXDATEs and cancelled overrides) and
    those it must change (the other overrides), each by its original start in UTC."""
    zone = zone_of(master)
    gone = {utc(when, zone) for when in exdates(master)}
    changed: dict[datetime, icalendar.Event] = {}
    for override in overrides:
        original = utc(override.decoded("RECURRENCE-ID"), zone)
        if str(override.get("STATUS", "")).upper() == "CANCELLED":
            gone.add(original)
        else:
            changed[original] = override
    return gone, changed
