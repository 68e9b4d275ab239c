"""EWS recurrence patterns and ranges (``t:Recurrence``) expanded into occurrences, as Exchange does: at the
master's local wall-clock time in its start time zone, numbered from 1 (the ``InstanceIndex`` of an
``OccurrenceItemId``) counting every occurrence of the pattern, deleted or modified ones included."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, tzinfo
from typing import Any

from dateutil import rrule
from lxml import etree

from tests.standins.ews_xml import T, local

_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
_WEEKDAYS = [rrule.MO, rrule.TU, rrule.WE, rrule.TH, rrule.FR, rrule.SA, rrule.SU]
_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"]
_INDEX = {"First": 1, "Second": 2, "Third": 3, "Fourth": 4, "Last": -1}
_FREQ = {
    "DailyRecurrence": rrule.DAILY,
    "WeeklyRecurrence": rrule.WEEKLY,
    "AbsoluteMonthlyRecurrence": rrule.MONTHLY,
    "RelativeMonthlyRecurrence": rrule.MONTHLY,
    "AbsoluteYearlyRecurrence": rrule.YEARLY,
    "RelativeYearlyRecurrence": rrule.YEARLY,
}


class BadRecurrence(ValueError):
    """A pattern the stand-in cannot read: a create or update with it is refused."""


def _value(elem: etree._Element, name: str) -> str | None:
    found = elem.find(f"{{{T}}}{name}")
    return None if found is None else (found.text or "").strip()


def _date(value: str | None) -> date:
    if not value:
        raise BadRecurrence("a recurrence range needs a StartDate")
    return date.fromisoformat(value[:10])  # Exchange may write an offset after the date: 2026-01-05+01:00


def _weekdays(value: str | None, index: int | None = None) -> list[Any]:
    names = (value or "").split()
    days: list[Any] = []
    for name in names:
        if name == "Day":
            days += _WEEKDAYS
        elif name == "Weekday":
            days += _WEEKDAYS[:5]
        elif name == "WeekendDay":
            days += _WEEKDAYS[5:]
        elif name in _DAYS:
            days.append(_WEEKDAYS[_DAYS.index(name)])
        else:
            raise BadRecurrence(f"unknown day {name!r}")
    if index is not None:
        days = [day(index) for day in days]
    return days


def _rule(recurrence: etree._Element, first: datetime) -> rrule.rrule:
    """The dateutil rule of ``recurrence``, starting at ``first`` (naive local time of the first occurrence)."""
    patterns = [elem for elem in recurrence if local(elem) in _FREQ]
    ranges = [elem for elem in recurrence if local(elem).endswith("Recurrence") and local(elem) not in _FREQ]
    if len(patterns) != 1 or len(ranges) != 1:
        raise BadRecurrence("a recurrence needs one pattern and one range")
    pattern, span = patterns[0], ranges[0]
    kind = local(pattern)
    options: dict[str, Any] = {"interval": int(_value(pattern, "Interval") or 1)}
    index = _value(pattern, "DayOfWeekIndex")
    if kind == "WeeklyRecurrence":
        options["byweekday"] = _weekdays(_value(pattern, "DaysOfWeek"))
        first_day = _value(pattern, "FirstDayOfWeek") or "Sunday"
        options["wkst"] = _DAYS.index(first_day) if first_day in _DAYS else 6
    elif kind in ("AbsoluteMonthlyRecurrence", "AbsoluteYearlyRecurrence"):
        day = int(_value(pattern, "DayOfMonth") or first.day)
        options["bymonthday"] = day
        if day > 28:  # a month without that day has its occurrence on its last day
            options["bymonthday"], options["bysetpos"] = [day, -1], 1
    elif kind in ("RelativeMonthlyRecurrence", "RelativeYearlyRecurrence"):
        if index not in _INDEX:
            raise BadRecurrence("a relative pattern needs a DayOfWeekIndex")
        days = _weekdays(_value(pattern, "DaysOfWeek"))
        if len(days) == 1:
            options["byweekday"] = [days[0](_INDEX[index])]
        else:  # Day, Weekday, WeekendDay: the n-th of that set of days
            options["byweekday"], options["bysetpos"] = days, _INDEX[index]
    if kind.endswith("YearlyRecurrence"):
        options["interval"] = 1
        month = _value(pattern, "Month")
        if month not in _MONTHS:
            raise BadRecurrence("a yearly pattern needs a Month")
        options["bymonth"] = _MONTHS.index(month) + 1
    start_date = _date(_value(span, "StartDate"))
    dtstart = datetime.combine(start_date, first.time())
    if local(span) == "EndDateRecurrence":
        options["until"] = datetime.combine(_date(_value(span, "EndDate")), time(23, 59, 59))
    elif local(span) == "NumberedRecurrence":
        options["count"] = int(_value(span, "NumberOfOccurrences") or 1)
    elif local(span) != "NoEndRecurrence":
        raise BadRecurrence(f"unknown range {local(span)!r}")
    return rrule.rrule(_FREQ[kind], dtstart=dtstart, **options)


def is_bounded(recurrence: etree._Element) -> bool:
    return recurrence.find(f"{{{T}}}NoEndRecurrence") is None


def occurrences(recurrence: etree._Element, start: datetime, zone: tzinfo, until: datetime) -> Iterator[
        tuple[int, datetime]]:
    """(instance index, original start in UTC) of every occurrence starting before ``until``."""
    local_start = start.astimezone(zone).replace(tzinfo=None)
    for index, moment in enumerate(_rule(recurrence, local_start), start=1):
        begins = moment.replace(tzinfo=zone).astimezone(UTC)
        if begins >= until:
            return
        yield index, begins


def check(recurrence: etree._Element, start: datetime, zone: tzinfo) -> None:
    """Raise :class:`BadRecurrence` for a pattern the stand-in cannot expand."""
    _rule(recurrence, start.astimezone(zone).replace(tzinfo=None))
