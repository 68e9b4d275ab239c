"""Recurrence expansion of one calendar object resource (RFC 5545 §3.8.5, RFC 4791 §9.6.5/§9.9).

This replaces Radicale's vobject-based recurrence handling wherever calbridge answers itself
(calendar-query time ranges, ``expand``, free-busy-query, the JSON free/busy API, and the
occurrence rows stored per recurring item). It is pure: no I/O, no clock, no globals.

Conventions (the tests pin each of them):

* Floating date-times and all-day dates are read in the calendar's time zone ``tz``; an all-day
  instance runs from local midnight to local midnight, so across DST it lasts 23 or 25 hours.
* Recurrences are generated in the wall clock of DTSTART's zone (09:00 Europe/Berlin stays 09:00
  local across DST); a non-existent wall time uses the offset before the gap (RFC 5545 §3.3.5).
* A duration given by DTEND is exact (RFC 5545 §3.8.5.3); DURATION and all-day lengths are nominal
  in days and exact below a day (icalendar folds ``PT24H`` into ``P1D``, so it counts as a day).
* DTSTART is always the first instance and counts towards COUNT (RFC 5545 §3.3.10).
* EXDATE and RECURRENCE-ID match by instant, in any zone; a date-valued EXDATE in a timed series
  excludes every instance on that local date. EXDATE wins over an override of the same instance.
* An override (RECURRENCE-ID) replaces exactly the instance it names, even one the master does not
  generate; an RRULE/RDATE/EXDATE inside an override is ignored (RFC 5545 §3.8.4.4 identifies *one*
  instance with RECURRENCE-ID). RANGE=THISANDFUTURE also governs every later master instance that
  has no individual override: shifted by its DTSTART - RECURRENCE-ID (wall clock), with its duration
  and properties. Of several components naming the same instance the highest SEQUENCE wins.
* A zero-length instance (DTEND = DTSTART, DURATION:PT0S, or a date-time DTSTART alone) overlaps a
  window [start, end) iff start <= DTSTART < end; DTEND before DTSTART is treated as zero length.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from dateutil import rrule as du  # type: ignore[import-untyped, unused-ignore]
from icalendar import Calendar, Component, Event
from icalendar.enums import FBTYPE

from bridge.store.models import EARLIEST, UNBOUNDED

__all__ = [
    "BusyType",
    "ExpansionError",
    "Instance",
    "TooManyInstances",
    "bounds",
    "busy_type",
    "expanded_components",
    "instances",
    "materialise",
    "overlaps",
    "span",
]

BusyType = FBTYPE
"""FREEBUSY FBTYPE values (RFC 5545 §3.2.9); ``Instance.busy`` is None for free time."""

MAX_INSTANCES = 100_000
"""Default cap on the instances one call may build, so that a huge window cannot exhaust memory."""

_COUNT_SPAN_CAP = 20_000  # COUNT rules longer than this are treated as open-ended by span()
_COUNT_WALK_CAP = 4 * MAX_INSTANCES  # COUNT rules are walked from DTSTART, but not forever
_MARGIN = timedelta(days=2)  # covers any UTC offset and DST jump when mapping UTC bounds to wall clock
_TICK = timedelta(microseconds=1)
_WALL_MIN = datetime.min
_WALL_MAX = datetime.max
_PROBE_FROM = datetime(datetime.max.year - 100, 1, 1)  # date patterns recur within a century
_MAX_STEP = timedelta(days=400_000)
_DAY_BOUND = timedelta(hours=26)  # the longest a nominal day can last in real time

_FREQS = {
    "YEARLY": du.YEARLY, "MONTHLY": du.MONTHLY, "WEEKLY": du.WEEKLY, "DAILY": du.DAILY,
    "HOURLY": du.HOURLY, "MINUTELY": du.MINUTELY, "SECONDLY": du.SECONDLY,
}
_WEEKDAYS = {"MO": du.MO, "TU": du.TU, "WE": du.WE, "TH": du.TH, "FR": du.FR, "SA": du.SA, "SU": du.SU}
_BYDAY = re.compile(r"^([+-]?\d{1,2})?(MO|TU|WE|TH|FR|SA|SU)$")
_BY_RANGES = {  # rule part -> (dateutil keyword, smallest, largest, may be negative)
    "BYMONTH": ("bymonth", 1, 12, False),
    "BYMONTHDAY": ("bymonthday", 1, 31, True),
    "BYYEARDAY": ("byyearday", 1, 366, True),
    "BYWEEKNO": ("byweekno", 1, 53, True),
    "BYHOUR": ("byhour", 0, 23, False),
    "BYMINUTE": ("byminute", 0, 59, False),
    "BYSECOND": ("bysecond", 0, 59, False),
    "BYSETPOS": ("bysetpos", 1, 366, True),
}
_UNITS = {  # one period of each frequency; exact below a month, an upper bound above
    du.YEARLY: timedelta(days=366), du.MONTHLY: timedelta(days=31), du.WEEKLY: timedelta(weeks=1),
    du.DAILY: timedelta(days=1), du.HOURLY: timedelta(hours=1), du.MINUTELY: timedelta(minutes=1),
    du.SECONDLY: timedelta(seconds=1),
}
_KNOWN_PARTS = {"FREQ", "INTERVAL", "COUNT", "UNTIL", "WKST", "BYDAY", "SKIP", "RSCALE", *_BY_RANGES}


class ExpansionError(ValueError):
    """The resource cannot be expanded (bad RRULE, missing DTSTART, ...): callers answer 400."""

    def __init__(self, reason: str, property_name: str | None = None) -> None:
        super().__init__(f"{property_name}: {reason}" if property_name else reason)
        self.reason = reason
        self.property_name = property_name


class TooManyInstances(ExpansionError):
    """The window holds more instances than the caller allowed (a denial-of-service guard)."""


@dataclass(frozen=True, slots=True)
class Instance:
    """One instance of the resource, in UTC, with the component that governs it."""

    start: datetime
    end: datetime
    recurrence_id: datetime | date | None
    component: Event = field(compare=False, repr=False)
    all_day: bool
    busy: FBTYPE | None


def overlaps(inst_start: datetime, inst_end: datetime, start: datetime, end: datetime) -> bool:
    """RFC 4791 §9.9: a positive-length instance overlaps [start, end) if it starts before the end
    and ends after the start; a zero-length one (end <= start) if it lies in [start, end)."""
    if inst_end <= inst_start:
        return start <= inst_start < end
    return inst_start < end and inst_end > start


def instances(cal: Component, tz: tzinfo, start: datetime, end: datetime, *,
              max_instances: int = MAX_INSTANCES) -> list[Instance]:
    """Every instance overlapping [start, end) (RFC 4791 §9.9), sorted by start.

    Raises ExpansionError for invalid data, TooManyInstances beyond ``max_instances``."""
    start, end = _clamp(_aware(start)), _clamp(_aware(end))
    with _mapped_errors():
        series = _Series(cal, tz)
        found = series.starting(_minus(start, series.max_length), end, max_instances)
    return sorted((i for i in found if overlaps(i.start, i.end, start, end)), key=_by_start)


def span(cal: Component, tz: tzinfo) -> tuple[datetime, datetime]:
    """(first instance start, last instance end); the end is UNBOUNDED for an open-ended series.

    A resource whose instances are all excluded spans its master's own DTSTART..end, so that it
    still has an index position; it matches no time range anyway."""
    with _mapped_errors():
        first, last, _ = _Series(cal, tz).span()
    return first, last


def materialise(cal: Component, tz: tzinfo, until: datetime, limit: int) -> tuple[list[Instance], datetime]:
    """The instances starting before ``until``, at most the first ``limit`` of them, sorted.

    Returns (instances, complete_until): every instance starting before complete_until is listed;
    it is UNBOUNDED when the list holds the whole series, else the start of the first instance
    not listed. Cancelled and transparent instances are listed too (busy None): they still exist
    for time-range matching. Instances rather than (start, end) pairs, because the occurrence
    rows also store each instance's busy type."""
    until = _clamp(_aware(until))
    with _mapped_errors():
        return _Series(cal, tz).materialise(until, max(limit, 0))


def bounds(component: Event, tz: tzinfo) -> tuple[datetime, datetime]:
    """DTSTART and end of one VEVENT in UTC (the dtstart/dtend index columns), by the same rules
    as its instances: floating and all-day values in ``tz``, DURATION, zero length, one day."""
    with _mapped_errors():
        part = _Part(component, tz)
        return part.start, _end(part.wall, part.start, part.zone, part.length)


def busy_type(component: Component) -> FBTYPE | None:
    """The FBTYPE of a VEVENT's instances (None: free), as Instance.busy reports it."""
    return _busy(component)


def expanded_components(cal: Component, tz: tzinfo, start: datetime, end: datetime, *,
                        max_instances: int = MAX_INSTANCES) -> Calendar:
    """CalDAV ``expand`` (RFC 4791 §9.6.5): one VEVENT per instance overlapping [start, end),
    with RECURRENCE-ID and without RRULE/RDATE/EXDATE, times in UTC (dates stay dates), the other
    properties and alarms from the governing component, and no VTIMEZONE."""
    found = instances(cal, tz, start, end, max_instances=max_instances)
    out = Calendar()
    out.add("VERSION", str(cal.get("VERSION", "2.0")))
    out.add("PRODID", str(cal.get("PRODID", "-//calbridge//expand//EN")))
    for inst in found:
        out.add_component(_expanded_event(inst, tz))
    return out


# --- internals -------------------------------------------------------------------------------

_EXPAND_DROPPED = {"DTSTART", "DTEND", "DURATION", "RRULE", "RDATE", "EXDATE", "EXRULE", "RECURRENCE-ID"}


def _expanded_event(inst: Instance, tz: tzinfo) -> Event:
    """One expanded VEVENT for ``inst`` (the copy shares immutable property values)."""
    source = inst.component
    event = Event()
    for name, value in source.items():
        if name not in _EXPAND_DROPPED:
            event[name] = list(value) if isinstance(value, list) else value
    for sub in source.subcomponents:
        event.add_component(sub)
    if inst.all_day:
        local_start, local_end = inst.start.astimezone(tz), inst.end.astimezone(tz)
        event.add("DTSTART", local_start.date())
        if local_end.time() == time(0):
            event.add("DTEND", local_end.date())
        else:
            event.add("DTEND", inst.end)
    else:
        event.add("DTSTART", inst.start)
        if "DTEND" in source or "DURATION" in source or inst.end != inst.start:
            event.add("DTEND", inst.end)
    rid = inst.recurrence_id
    if rid is not None:
        if isinstance(rid, datetime):
            rid = (rid if rid.tzinfo is not None else rid.replace(tzinfo=tz)).astimezone(UTC)
        event.add("RECURRENCE-ID", rid)
    return event


@contextmanager
def _mapped_errors() -> Iterator[None]:
    """Translate what icalendar, dateutil and datetime raise on bad data into ExpansionError,
    at this one boundary (cf. httpx's map_httpcore_exceptions)."""
    try:
        yield
    except ExpansionError:
        raise
    except (ValueError, TypeError, OverflowError, KeyError, AttributeError, IndexError) as exc:
        raise ExpansionError(f"cannot expand: {exc}") from exc


def _by_start(inst: Instance) -> tuple[datetime, datetime]:
    return inst.start, inst.end


def _aware(moment: datetime) -> datetime:
    if not isinstance(moment, datetime) or moment.tzinfo is None:
        raise TypeError("window bounds must be aware datetimes")
    return moment


def _clamp(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    return EARLIEST if moment < EARLIEST else UNBOUNDED if moment > UNBOUNDED else moment


def _minus(moment: datetime, delta: timedelta) -> datetime:
    return EARLIEST if moment - EARLIEST <= delta else moment - delta


def _plus(moment: datetime, delta: timedelta) -> datetime:
    return UNBOUNDED if UNBOUNDED - moment <= delta else moment + delta


def _utc(wall: datetime, zone: tzinfo) -> datetime:
    """The instant of a wall-clock time in ``zone``, clamped to [EARLIEST, UNBOUNDED]."""
    try:
        moment = wall.replace(tzinfo=zone).astimezone(UTC)
    except (OverflowError, ValueError):
        return UNBOUNDED if wall.year > 5000 else EARLIEST
    return EARLIEST if moment < EARLIEST else UNBOUNDED if moment > UNBOUNDED else moment


def _wall(moment: datetime, zone: tzinfo) -> datetime:
    """The naive wall clock of an aware instant in ``zone`` (keeps ``fold``)."""
    try:
        return moment.astimezone(zone).replace(tzinfo=None)
    except (OverflowError, ValueError):
        return _WALL_MAX if moment.year > 5000 else _WALL_MIN


def _shift(wall: datetime, delta: timedelta) -> datetime:
    """``wall + delta``, saturating at the ends of the calendar."""
    try:
        return wall + delta
    except OverflowError:
        return _WALL_MAX if delta > timedelta(0) else _WALL_MIN


def _wall_of(value: date | datetime, zone: tzinfo) -> datetime:
    """A property value as wall clock in ``zone``: dates at midnight, floating times as they are."""
    if not isinstance(value, datetime):
        return datetime(value.year, value.month, value.day)
    return value if value.tzinfo is None else _wall(value, zone)


def _day_of(value: date | datetime, tz: tzinfo) -> date:
    """The calendar date a value names in an all-day series: a midnight date-time is taken as
    written (a date dressed up as date-time), any other instant as its local date in ``tz``."""
    if not isinstance(value, datetime):
        return value
    if value.tzinfo is None or value.time() == time(0):
        return value.date()
    return value.astimezone(tz).date()


def _time_value(prop: Any, name: str) -> date | datetime:
    value = getattr(prop, "dt", None)
    if not isinstance(value, date):
        raise ExpansionError("not a date or date-time", name)
    return value


def _values(component: Component, name: str) -> list[Any]:
    """Every value of a list property such as RDATE/EXDATE (one or many lines, one or many values)."""
    raw = component.get(name)
    if raw is None:
        return []
    found: list[Any] = []
    for line in raw if isinstance(raw, list) else [raw]:
        dts = getattr(line, "dts", None)
        if dts is None:
            raise ExpansionError("unparseable value", name)
        found.extend(d.dt for d in dts)
    return found


@dataclass(frozen=True, slots=True)
class _Length:
    """An instance length: nominal days (wall clock) plus an exact part."""

    days: int
    exact: timedelta

    @property
    def bound(self) -> timedelta:
        """An upper bound of the real-time length."""
        return self.days * _DAY_BOUND + self.exact


_ZERO = _Length(0, timedelta(0))
_ONE_DAY = _Length(1, timedelta(0))


def _nominal(delta: timedelta) -> _Length:
    if delta <= timedelta(0):
        return _ZERO
    return _Length(delta.days, delta - timedelta(days=delta.days))


def _end(start_wall: datetime, start: datetime, zone: tzinfo, length: _Length) -> datetime:
    if length.days:
        try:
            base = _utc(start_wall + timedelta(days=length.days), zone)
        except OverflowError:
            return UNBOUNDED
    else:
        base = start
    return _plus(base, length.exact)


def _busy(component: Component) -> FBTYPE | None:
    """FBTYPE of an instance (RFC 4791 §7.10, plus Outlook's X-MICROSOFT-CDO-BUSYSTATUS)."""
    status = str(component.get("STATUS", "")).upper()
    if status == "CANCELLED" or str(component.get("TRANSP", "")).upper() == "TRANSPARENT":
        return None
    outlook = str(component.get("X-MICROSOFT-CDO-BUSYSTATUS", "")).upper()
    if outlook in ("FREE", "WORKINGELSEWHERE"):
        return None
    if outlook == "OOF":
        return FBTYPE.BUSY_UNAVAILABLE
    if status == "TENTATIVE" or outlook == "TENTATIVE":
        return FBTYPE.BUSY_TENTATIVE
    return FBTYPE.BUSY


class _Part:
    """One parsed VEVENT: its start as wall clock + zone, its length, its RECURRENCE-ID."""

    __slots__ = ("busy", "event", "floating", "is_date", "length", "rid", "sequence", "start", "this_and_future",
                 "wall", "zone")

    def __init__(self, event: Event, tz: tzinfo) -> None:
        self.event = event
        prop = event.get("DTSTART")
        if prop is None:
            raise ExpansionError("missing", "DTSTART")
        value = _time_value(prop, "DTSTART")
        self.is_date = not isinstance(value, datetime)
        self.floating = isinstance(value, datetime) and value.tzinfo is None
        self.zone: tzinfo = value.tzinfo if isinstance(value, datetime) and value.tzinfo is not None else tz
        self.wall = _wall_of(value, self.zone)
        self.start = _utc(self.wall, self.zone)
        self.length = self._length(value, tz)
        rid = event.get("RECURRENCE-ID")
        self.rid: date | datetime | None = None if rid is None else _time_value(rid, "RECURRENCE-ID")
        self.this_and_future = rid is not None and str(rid.params.get("RANGE", "")).upper() == "THISANDFUTURE"
        try:
            self.sequence = int(event.get("SEQUENCE", 0))
        except (TypeError, ValueError):
            self.sequence = 0
        self.busy = _busy(event)

    def _length(self, value: date | datetime, tz: tzinfo) -> _Length:
        end_prop, duration = self.event.get("DTEND"), self.event.get("DURATION")
        if end_prop is not None:
            end = _time_value(end_prop, "DTEND")
            if self.is_date and not isinstance(end, datetime):
                return _Length(max((end - value).days, 0), timedelta(0))
            end_zone = end.tzinfo if isinstance(end, datetime) and end.tzinfo is not None else self.zone
            exact = _utc(_wall_of(end, end_zone), end_zone) - self.start
            return _Length(0, max(exact, timedelta(0)))
        if duration is not None:
            delta = getattr(duration, "dt", None)
            if not isinstance(delta, timedelta):
                raise ExpansionError("not a duration", "DURATION")
            return _nominal(delta)
        return _ONE_DAY if self.is_date else _ZERO

    def instance(self, start_wall: datetime, start: datetime, zone: tzinfo, length: _Length,
                 rid: date | datetime | None) -> Instance:
        return Instance(start, _end(start_wall, start, zone, length), rid, self.event, self.is_date, self.busy)


class _Rule:
    """One RRULE, generated in the wall clock of DTSTART with dateutil.

    Open-ended and UNTIL rules are evaluated from a start moved close to the window (by whole
    periods, with dateutil's DTSTART-derived defaults made explicit), so a daily series from 2000
    queried in 2030 costs a few periods, not 11,000 instances. COUNT rules are generated from DTSTART
    once per parse and then bisected."""

    __slots__ = ("_cache", "_done", "_iter", "_limit", "count", "empty", "freq", "interval", "kwargs",
                 "start", "until")

    def __init__(self, recur: Any, start: datetime, is_date: bool, zone: tzinfo, tz: tzinfo) -> None:
        if not isinstance(recur, dict):
            raise ExpansionError("unparseable rule", "RRULE")
        self.start = start
        parts = {str(k).upper(): v for k, v in recur.items()}
        freq = _FREQS.get(str(_first(parts, "FREQ", "")).upper())
        if freq is None:
            raise ExpansionError("missing or unknown FREQ", "RRULE")
        rscale = str(_first(parts, "RSCALE", "GREGORIAN")).upper()
        if rscale != "GREGORIAN":
            raise ExpansionError(f"unsupported RSCALE {rscale}", "RRULE")
        self.freq = freq
        self.interval = int(_first(parts, "INTERVAL", 1))
        count = _first(parts, "COUNT", None)
        self.count = None if count is None else int(count)
        if self.interval < 1 or (self.count is not None and self.count < 1):
            raise ExpansionError("INTERVAL and COUNT must be positive", "RRULE")
        self.until = self._until(_first(parts, "UNTIL", None), is_date, zone, tz)
        kwargs: dict[str, Any] = {"interval": self.interval, "cache": False}
        for name, (keyword, low, high, signed) in _BY_RANGES.items():
            if name in parts:
                numbers = [int(v) for v in parts[name]]
                if any(not (low <= abs(n) <= high) or (n < 0 and not signed) for n in numbers):
                    raise ExpansionError(f"{name} out of range", "RRULE")
                kwargs[keyword] = tuple(numbers)
        if "BYDAY" in parts:
            kwargs["byweekday"] = tuple(_weekday(str(v)) for v in parts["BYDAY"])
        if "WKST" in parts:
            kwargs["wkst"] = _WEEKDAYS.get(str(_first(parts, "WKST", "MO")).upper(), du.MO)
        unknown = [k for k in parts if k not in _KNOWN_PARTS and not k.startswith("X-")]
        if unknown:
            raise ExpansionError(f"unknown rule part {unknown[0]}", "RRULE")
        self._explicit_defaults(kwargs, start)
        self.kwargs = kwargs
        self.empty = not self._simple(parts) and not self._probe()
        self._cache: list[datetime] = []
        self._done = self.empty
        self._iter: Iterator[datetime] | None = None
        self._limit = self.count

    @staticmethod
    def _until(value: Any, is_date: bool, zone: tzinfo, tz: tzinfo) -> datetime | None:
        """UNTIL as wall clock of the series; lenient with the value types RFC 5545 forbids."""
        if value is None:
            return None
        if not isinstance(value, datetime):
            if not isinstance(value, date):
                raise ExpansionError("bad UNTIL", "RRULE")
            # a date UNTIL on a timed series includes that whole day
            return datetime.combine(value, time(0) if is_date else time.max)
        return value if value.tzinfo is None else _wall(value, tz if is_date else zone)

    def _explicit_defaults(self, kwargs: dict[str, Any], start: datetime) -> None:
        """Spell out what dateutil would derive from DTSTART, so a moved start means the same rule."""
        freq = self.freq
        if not any(k in kwargs for k in ("byweekno", "byyearday", "bymonthday", "byweekday")):
            if freq == du.YEARLY:
                kwargs.setdefault("bymonth", (start.month,))
                kwargs["bymonthday"] = (start.day,)
            elif freq == du.MONTHLY:
                kwargs["bymonthday"] = (start.day,)
            elif freq == du.WEEKLY:
                kwargs["byweekday"] = (start.weekday(),)
        if freq < du.HOURLY:
            kwargs.setdefault("byhour", (start.hour,))
        if freq < du.MINUTELY:
            kwargs.setdefault("byminute", (start.minute,))
        if freq < du.SECONDLY:
            kwargs.setdefault("bysecond", (start.second,))

    def _simple(self, parts: dict[str, Any]) -> bool:
        """Whether the rule certainly has instances, so the emptiness probe can be skipped."""
        if any(p in parts for p in ("BYMONTHDAY", "BYYEARDAY", "BYWEEKNO", "BYSETPOS")):
            return False
        if any(getattr(d, "n", None) for d in self.kwargs.get("byweekday", ()) if not isinstance(d, int)):
            return False
        restricts_days = "BYDAY" in parts and self.freq > du.WEEKLY
        return self.interval == 1 or ("BYMONTH" not in parts and not restricts_days)

    def _probe(self) -> bool:
        """Whether the rule has any instance. dateutil walks to year 9999 looking for the first
        instance of an impossible rule (BYMONTH=2;BYMONTHDAY=30 takes seconds), so ask it about
        the last century only, where the walk is short (tens of milliseconds for garbage)."""
        begin = self.moved_start(_PROBE_FROM)
        return next(iter(du.rrule(self.freq, dtstart=begin, **self.kwargs)), None) is not None

    def moved_start(self, lo: datetime) -> datetime:
        """The latest start, a whole number of periods after DTSTART and at least one period
        before ``lo``, from which the rule generates the same instances >= lo."""
        start, n, freq = self.start, self.interval, self.freq
        if lo <= start:
            return start
        if freq == du.YEARLY:
            k = (lo.year - start.year) // n - 1
            return start if k <= 0 else datetime.combine(date(start.year + k * n, 1, 1), start.time())
        if freq == du.MONTHLY:
            k = ((lo.year - start.year) * 12 + lo.month - start.month) // n - 1
            if k <= 0:
                return start
            month = start.month - 1 + k * n
            return datetime.combine(date(start.year + month // 12, month % 12 + 1, 1), start.time())
        unit = _UNITS[freq]
        k = (lo - start) // unit // n - 1
        return start if k <= 0 else start + k * n * unit

    def values(self, lo: datetime, hi: datetime, cap: int) -> list[datetime]:
        """The rule's wall-clock values in [lo, hi), DTSTART excluded unless the rule makes it;
        more than ``cap`` of them raise TooManyInstances."""
        if self.empty or hi <= self.start:
            return []
        if self.count is not None:
            self._extend(hi)
            found = self._cache[bisect.bisect_left(self._cache, lo):bisect.bisect_left(self._cache, hi)]
        else:
            until = hi if self.until is None else min(self.until, hi)
            found = []
            for value in du.rrule(self.freq, dtstart=self.moved_start(lo), until=until, **self.kwargs):
                if lo <= value < hi:
                    found.append(value)
                    if len(found) > cap:
                        break
        if len(found) > cap:
            raise TooManyInstances(f"more than {cap} instances")
        return found

    def _extend(self, hi: datetime) -> None:
        if self._iter is None:
            self._iter = iter(du.rrule(self.freq, dtstart=self.start, count=self.count, **self.kwargs))
        cache = self._cache
        while not self._done and (not cache or cache[-1] < hi):
            if len(cache) >= _COUNT_WALK_CAP:
                raise TooManyInstances(f"COUNT series longer than {_COUNT_WALK_CAP} before the window")
            value = next(self._iter, None)
            if value is None or (self.until is not None and value > self.until):
                self._done = True
                break
            if not cache and value != self.start and self._limit is not None:
                self._limit -= 1  # DTSTART counts as the first instance (RFC 5545 §3.3.10)
            if self._limit is not None and len(cache) >= self._limit:
                self._done = True
                break
            cache.append(value)

    def last(self) -> datetime | None:
        """The last value of a bounded rule (None if open-ended, empty or too long to walk)."""
        if self.empty:
            return None
        if self.count is not None:
            if self.count > _COUNT_SPAN_CAP:
                return None
            self._extend(_WALL_MAX)
            return self._cache[-1] if self._cache else None
        return self.until

    @property
    def bounded(self) -> bool:
        return self.empty or self.until is not None or (self.count is not None and self.count <= _COUNT_SPAN_CAP)

    @property
    def period(self) -> timedelta:
        """Roughly one interval of the rule, to size searches."""
        return _UNITS[self.freq] * self.interval


def _first(parts: dict[str, Any], name: str, default: Any) -> Any:
    value = parts.get(name)
    if value is None:
        return default
    if isinstance(value, list):
        return value[0] if value else default
    return value


def _weekday(text: str) -> du.weekday:
    match = _BYDAY.match(text.strip().upper())
    if match is None:
        raise ExpansionError(f"bad BYDAY {text!r}", "RRULE")
    number = int(match.group(1)) if match.group(1) else 0
    if abs(number) > 53:
        raise ExpansionError(f"bad BYDAY {text!r}", "RRULE")
    day: du.weekday = _WEEKDAYS[match.group(2)]
    return day(number) if number else day


_Rid = tuple[datetime, Any, "_Length | None"]  # (wall clock, key, RDATE period length)


class _Series:
    """The parsed resource: master (maybe none), its rules, RDATEs, EXDATEs, overrides."""

    def __init__(self, cal: Component, tz: tzinfo) -> None:
        self.tz = tz
        events = [c for c in ([cal] if cal.name == "VEVENT" else cal.subcomponents) if isinstance(c, Event)]
        if not events:
            raise ExpansionError("no VEVENT in the resource")
        master: _Part | None = None
        parts: list[_Part] = []
        for event in events:
            part = _Part(event, tz)
            if part.rid is None:
                if master is None or part.sequence > master.sequence:
                    master = part
            else:
                parts.append(part)
        self.master = master
        self.zone: tzinfo = master.zone if master else tz
        self.all_day = master.is_date if master else False
        self.rules: list[_Rule] = []
        self.rdates: list[tuple[datetime, _Length | None]] = []
        self.rdate_walls: list[datetime] = []
        self.exkeys: set[Any] = set()
        self.exdays: set[date] = set()
        if master is not None:
            self._parse_master(master)
        self.overrides: dict[Any, _Part] = {}
        for part in parts:
            key = self.key_of(part.rid)  # type: ignore[arg-type]
            known = self.overrides.get(key)
            if known is None or part.sequence > known.sequence:
                self.overrides[key] = part
        futures = sorted(((k, p) for k, p in self.overrides.items() if p.this_and_future and master),
                         key=lambda kp: kp[0])
        self.future_keys = [k for k, _ in futures]
        self.future_parts = [p for _, p in futures]
        self.future_walls = [_wall_of(p.rid, self.zone) for p in self.future_parts]  # type: ignore[arg-type]
        self.future_shifts = [_wall(p.start, self.zone) - w for p, w in zip(self.future_parts, self.future_walls,
                                                                             strict=True)]
        self.recurring = bool(self.rules or self.rdates or self.overrides)
        lengths = [p.length.bound for p in self.overrides.values()] + [p.bound for _, p in self.rdates if p]
        self.max_length = max([master.length.bound if master else timedelta(0), *lengths])
        self.max_shift = max([timedelta(0), *self.future_shifts])
        self.min_shift = min([timedelta(0), *self.future_shifts])

    def _parse_master(self, master: _Part) -> None:
        event, zone, tz = master.event, self.zone, self.tz
        raw = event.get("RRULE")
        for recur in raw if isinstance(raw, list) else [] if raw is None else [raw]:
            self.rules.append(_Rule(recur, master.wall, master.is_date, zone, tz))
        for value in _values(event, "RDATE"):
            length: _Length | None = None
            if isinstance(value, tuple):
                begin, finish = value
                if not isinstance(begin, date):
                    raise ExpansionError("bad PERIOD", "RDATE")
                if isinstance(finish, timedelta):
                    length = _nominal(finish)
                else:
                    begin_zone = self._zone_of(begin)
                    finish_zone = self._zone_of(finish)
                    exact = _utc(_wall_of(finish, finish_zone), finish_zone) - _utc(_wall_of(begin, begin_zone),
                                                                                     begin_zone)
                    length = _Length(0, max(exact, timedelta(0)))
                value = begin
            if not isinstance(value, date):
                raise ExpansionError("not a date or date-time", "RDATE")
            self.rdates.append((self._rid_wall(value), length))
        self.rdates.sort(key=lambda r: r[0])
        self.rdate_walls = [w for w, _ in self.rdates]
        for value in _values(event, "EXDATE"):
            if not isinstance(value, date):
                raise ExpansionError("not a date or date-time", "EXDATE")
            if self.all_day:
                self.exkeys.add(_day_of(value, tz))
            elif isinstance(value, datetime):
                self.exkeys.add(self.key_of(value))
            else:
                self.exdays.add(value)

    def _zone_of(self, value: date | datetime) -> tzinfo:
        if isinstance(value, datetime) and value.tzinfo is not None:
            return value.tzinfo
        return self.zone

    def _rid_wall(self, value: date | datetime) -> datetime:
        if self.all_day and isinstance(value, datetime) and value.tzinfo is not None:
            day = _day_of(value, self.tz)
            return datetime(day.year, day.month, day.day)
        return _wall_of(value, self.zone)

    def key_of(self, value: date | datetime) -> Any:
        """How instances are identified: the date in an all-day series, else the UTC instant."""
        if self.all_day:
            return _day_of(value, self.tz)
        if isinstance(value, datetime) and value.tzinfo is not None:
            return _clamp(value)
        return _utc(_wall_of(value, self.zone), self.zone)

    def _wall_key(self, wall: datetime) -> Any:
        return wall.date() if self.all_day else _utc(wall, self.zone)

    def _excluded(self, key: Any, wall: datetime) -> bool:
        return key in self.exkeys or (bool(self.exdays) and wall.date() in self.exdays)

    def rids(self, lo: datetime, hi: datetime, cap: int = MAX_INSTANCES) -> list[_Rid]:
        """The master's recurrence set in wall-clock [lo, hi), EXDATEs removed, deduplicated by
        instant, in order. An RDATE PERIOD's own length replaces the master's for its instance."""
        master = self.master
        assert master is not None
        found: list[tuple[datetime, _Length | None]] = []
        if lo <= master.wall < hi:
            found.append((master.wall, None))
        for rule in self.rules:
            found.extend((v, None) for v in rule.values(lo, hi, cap))
        if self.rdates:
            found.extend(self.rdates[bisect.bisect_left(self.rdate_walls, lo):bisect.bisect_left(self.rdate_walls, hi)])
        if len(self.rules) > 1 or self.rdates:
            found.sort(key=lambda r: r[0])
        out: list[_Rid] = []
        seen: dict[Any, int] = {}
        for wall, length in found:
            key = self._wall_key(wall)
            index = seen.get(key)
            if index is not None:
                if length is not None:
                    out[index] = (out[index][0], key, length)
                continue
            if self._excluded(key, wall):
                continue
            seen[key] = len(out)
            out.append((wall, key, length))
        return out

    def _rid_value(self, wall: datetime, key: Any) -> date | datetime:
        """The RECURRENCE-ID the master would give this instance."""
        assert self.master is not None
        if self.all_day:
            return key  # type: ignore[no-any-return]
        return wall if self.master.floating else wall.replace(tzinfo=self.zone)

    def master_instance(self, rid: _Rid) -> Instance | None:
        """The instance of a master recurrence id, unless an individual override replaces it."""
        wall, key, period = rid
        if key in self.overrides:
            return None
        governing, shift = self.master, timedelta(0)
        assert governing is not None
        if self.future_keys:
            index = bisect.bisect_left(self.future_keys, key) - 1
            if index >= 0:
                governing, shift = self.future_parts[index], self.future_shifts[index]
        start_wall = _shift(wall, shift)
        start = key if not shift and not self.all_day else _utc(start_wall, self.zone)
        rid_value = self._rid_value(wall, key) if self.recurring else None
        return governing.instance(start_wall, start, self.zone, period or governing.length, rid_value)

    def override_instance(self, key: Any, part: _Part) -> Instance | None:
        """An override's own instance, unless an EXDATE removed the instance it names."""
        assert part.rid is not None
        if self.master is not None:
            if self._excluded(key, _wall_of(part.rid, self.zone)):
                return None
            if self.all_day:
                rid_value: date | datetime = key
            else:
                rid_value = _wall(key, self.zone) if self.master.floating else key.astimezone(self.zone)
        else:
            rid_value = part.rid
        return part.instance(part.wall, part.start, part.zone, part.length, rid_value)

    def _wall_range(self, lo: datetime, hi: datetime) -> tuple[datetime, datetime]:
        """Wall-clock recurrence ids whose instances may start in UTC [lo, hi)."""
        wall_lo = _wall(_minus(lo, self.max_shift), self.zone)
        wall_hi = _wall(_plus(hi, -self.min_shift), self.zone)
        return _shift(wall_lo, -_MARGIN), _shift(wall_hi, _MARGIN)

    def starting(self, lo: datetime, hi: datetime, cap: int) -> list[Instance]:
        """Every instance starting in UTC [lo, hi), unordered."""
        found: list[Instance] = []
        if self.master is not None:
            wall_lo, wall_hi = self._wall_range(lo, hi)
            for rid in self.rids(wall_lo, wall_hi, cap):
                inst = self.master_instance(rid)
                if inst is not None and lo <= inst.start < hi:
                    found.append(inst)
        for key, part in self.overrides.items():
            inst = self.override_instance(key, part)
            if inst is not None and lo <= inst.start < hi:
                found.append(inst)
        return found

    # -- span and materialisation --

    def _bound(self) -> datetime | None:
        """The latest wall-clock recurrence id the master can have (None: open-ended)."""
        master = self.master
        assert master is not None
        latest = max([master.wall, *self.rdate_walls])
        for rule in self.rules:
            if not rule.bounded:
                return None
            last = rule.last()
            if last is not None:
                latest = max(latest, last)
        return latest

    def _step(self) -> timedelta:
        """A first stretch to search that holds a few instances of the sparsest rule."""
        return max((4 * r.period for r in self.rules), default=timedelta(days=7))

    def _search(self, lo: datetime, hi: datetime, forward: bool) -> Instance | None:
        """The first (forward) or last master instance with recurrence id in wall [lo, hi),
        widening the searched stretch geometrically."""
        step = self._step()
        while lo < hi:
            a, b = (lo, hi if hi - lo <= step else lo + step) if forward else (lo if hi - lo <= step else hi - step, hi)
            found = [i for i in map(self.master_instance, self.rids(a, b)) if i is not None]
            if found:
                return found[0] if forward else found[-1]
            lo, hi = (b, hi) if forward else (lo, a)
            step = min(step * 4, _MAX_STEP)
        return None

    def span(self) -> tuple[datetime, datetime, bool]:
        """(first start, last end, bounded) over every instance."""
        found = [i for k, p in self.overrides.items() if (i := self.override_instance(k, p)) is not None]
        bounded = True
        if self.master is not None:
            master = self.master
            bound = self._bound()
            bounded = bound is not None
            top = _WALL_MAX if bound is None else _shift(bound, _TICK)
            edges = [min([master.wall, *self.rdate_walls[:1]]), *self.future_walls, top]
            for lo, hi in zip(edges, edges[1:], strict=False):  # THISANDFUTURE segments
                first = self._search(lo, hi, forward=True)
                if first is not None:
                    found.append(first)
                    if bounded:
                        last = self._search(lo, hi, forward=False)
                        found.append(last if last is not None else first)
            for wall, length in self.rdates:  # PERIODs may end after later instances
                if length is not None:
                    rid = self.rids(wall, _shift(wall, _TICK))
                    inst = self.master_instance(rid[0]) if rid else None
                    if inst is not None:
                        found.append(inst)
        if not found:
            assert self.master is not None
            master = self.master
            return master.start, _end(master.wall, master.start, master.zone, master.length), bounded
        first_start = min(i.start for i in found)
        return first_start, max(i.end for i in found) if bounded else UNBOUNDED, bounded

    def materialise(self, until: datetime, limit: int) -> tuple[list[Instance], datetime]:
        first, last_end, bounded = self.span()
        listed: list[Instance] = []
        stop = min(until, _plus(last_end, _TICK)) if bounded else until
        # a short COUNT/RDATE series is listed in one go, anything else in growing chunks
        small = bounded and all(r.count is not None and r.count <= limit for r in self.rules)
        lo, step = first, (stop - first if small and stop > first else self._step())
        while lo < stop and len(listed) <= limit:
            hi = min(stop, _plus(lo, step))
            listed.extend(sorted(self.starting(lo, hi, MAX_INSTANCES), key=_by_start))
            lo, step = hi, min(step * 2, _MAX_STEP)
        if len(listed) > limit:
            return listed[:limit], listed[limit].start
        if bounded and until > last_end:
            return listed, UNBOUNDED
        # everything before `until` is listed: find the first instance at or after it
        lo, step = until, self._step()
        while lo < UNBOUNDED and (not bounded or lo <= last_end):
            hi = _plus(lo, step)
            later = self.starting(lo, hi, MAX_INSTANCES)
            if later:
                return listed, min(i.start for i in later)
            lo, step = hi, min(step * 4, _MAX_STEP)
        return listed, UNBOUNDED
