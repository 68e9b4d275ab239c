"""The indexed columns of an item, derived from its iCalendar text.

Events are described by ``bridge.expand`` (span, instances, busy type), the one
expansion that free/busy and the CalDAV answers use too. Other objects (tasks,
journals, vCards) keep the span Radicale computes for its own time-range filter.
"""

from __future__ import annotations

import math
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo

import icalendar

from bridge import expand
from bridge.ical.zones import parse_calendar
from bridge.store.models import EARLIEST, UNBOUNDED

CALENDAR_COMPONENTS = ("VEVENT", "VTODO", "VJOURNAL", "VFREEBUSY")
UNBOUNDED_CLASS = 63
_DAY = 86400.0


HORIZON = timedelta(days=730)  # open-ended series are materialised this far ahead of the write
MAX_INSTANCES = 5000
Instance = tuple[datetime, datetime, str | None]  # start, end, busy type


@dataclass(frozen=True)
class ItemFacts:
    component: str
    dtstart: datetime | None
    dtend: datetime | None
    span_start: datetime
    span_end: datetime
    span_class: int
    recurring: bool
    transparency: str | None
    klass: str | None
    status: str | None
    busy: str | None = None


def span_class(start: datetime, end: datetime) -> int:
    """log2 bucket of the span length in days: 0 for up to a day, k for up to 2**k days.

    An overlap query for [a, b) then only needs rows of class k with
    start >= a - 2**k days, a bounded index range per class.
    """
    if start <= EARLIEST or end >= UNBOUNDED:
        return UNBOUNDED_CLASS
    days = (end - start).total_seconds() / _DAY
    if days <= 1:
        return 0
    return min(math.ceil(math.log2(days)), UNBOUNDED_CLASS - 1)


def class_reach(klass: int) -> timedelta:
    """The longest span a row of ``klass`` can have."""
    return timedelta(days=2**klass)


def from_timestamp(value: int) -> datetime:
    """A Radicale time-range bound (POSIX seconds) as an aware datetime, clamped to the index range."""
    try:
        moment = datetime.fromtimestamp(value, UTC)
    except (OverflowError, OSError, ValueError):
        return EARLIEST if value < 0 else UNBOUNDED
    return min(max(moment, EARLIEST), UNBOUNDED)


def to_utc(value: date | datetime, zone: tzinfo) -> datetime:
    """Dates are midnight and floating times are wall-clock time in ``zone``."""
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value.astimezone(UTC)


def describe(text: str, time_range: tuple[int, int], timezone: str, name: str = "VCALENDAR",
             now: datetime | None = None) -> EventFacts:
    """Facts about an object stored through Radicale: events from ``bridge.expand``, other
    objects from Radicale's ``time_range``. Raises ValueError where icalendar refuses the text."""
    if name == "VCALENDAR":
        calendar = parse_calendar(text)
        if any(c.name == "VEVENT" for c in calendar.subcomponents):
            return facts_of(calendar, zoneinfo.ZoneInfo(timezone), now or datetime.now(UTC))
    return EventFacts(_describe_other(text, time_range, timezone, name), [], None)


def _describe_other(text: str, time_range: tuple[int, int], timezone: str, name: str) -> ItemFacts:
    """Facts about the first component of a task, journal or vCard, with Radicale's span."""
    span_start, span_end = (from_timestamp(time_range[0]), from_timestamp(time_range[1]))
    if name != "VCALENDAR":
        return ItemFacts(name, None, None, span_start, span_end, span_class(span_start, span_end),
                         False, None, None, None)
    zone = zoneinfo.ZoneInfo(timezone)
    calendar = parse_calendar(text)
    components = [c for c in calendar.subcomponents if c.name in CALENDAR_COMPONENTS]
    if not components:
        return ItemFacts(calendar.subcomponents[0].name if calendar.subcomponents else "VCALENDAR",
                         None, None, span_start, span_end, span_class(span_start, span_end),
                         False, None, None, None)
    master = next((c for c in components if "RECURRENCE-ID" not in c), components[0])
    recurring = any(key in c for c in components for key in ("RRULE", "RDATE")) or len(components) > 1
    dtstart = dtend = None
    start_prop = master.get("DTSTART")
    if start_prop is not None:
        start_value = start_prop.dt
        dtstart = to_utc(start_value, zone)
        if master.get("DTEND") is not None:
            dtend = to_utc(master["DTEND"].dt, zone)
        elif master.get("DURATION") is not None:
            dtend = dtstart + master["DURATION"].dt
        elif not isinstance(start_value, datetime):
            dtend = dtstart + timedelta(days=1)
        else:
            dtend = dtstart
    return ItemFacts(
        component=master.name,
        dtstart=dtstart,
        dtend=dtend,
        span_start=span_start,
        span_end=span_end,
        span_class=span_class(span_start, span_end),
        recurring=recurring,
        transparency=_upper(master.get("TRANSP")),
        klass=_upper(master.get("CLASS")),
        status=_upper(master.get("STATUS")),
    )


def _upper(value: object) -> str | None:
    return str(value).upper()[:16] if value is not None else None


@dataclass(frozen=True)
class EventFacts:
    facts: ItemFacts
    instances: list[Instance]  # of a recurring event, complete up to ``instances_until``
    instances_until: datetime | None


def facts_of(calendar: icalendar.Calendar, zone: tzinfo, now: datetime) -> EventFacts:
    """Index columns and stored instances of an event object; raises expand.ExpansionError."""
    components = [c for c in calendar.subcomponents if c.name in CALENDAR_COMPONENTS]
    master = next((c for c in components if "RECURRENCE-ID" not in c), components[0])
    recurring = any(key in c for c in components for key in ("RRULE", "RDATE")) or len(components) > 1 \
        or "RECURRENCE-ID" in master
    first, last = expand.span(calendar, zone)
    dtstart = dtend = None
    if "DTSTART" in master:
        dtstart, dtend = expand.bounds(master, zone)
    instances: list[Instance] = []
    until: datetime | None = None
    if recurring:
        found, until = expand.materialise(calendar, zone, now + HORIZON, MAX_INSTANCES)
        instances = [(i.start, i.end, _fbtype(i.busy)) for i in found]
    facts = ItemFacts(
        component=master.name, dtstart=dtstart, dtend=dtend, span_start=first, span_end=last,
        span_class=span_class(first, last), recurring=recurring, transparency=_upper(master.get("TRANSP")),
        klass=_upper(master.get("CLASS")), status=_upper(master.get("STATUS")),
        busy=_fbtype(expand.busy_type(master)))
    return EventFacts(facts, instances, until)


def _fbtype(value: object) -> str | None:
    return str(value) if value is not None else None
