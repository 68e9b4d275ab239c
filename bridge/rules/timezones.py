"""Option ``sync_timezone``: every stored time is RFC 5545-correct, with its VTIMEZONE.

- A floating date-time (no TZID, not UTC) in DTSTART, DTEND, RDATE, EXDATE or
  RECURRENCE-ID is read in the connection's zone (``sync_timezone``, else the
  calendar's; iCloud connections pass ``UTC``) and rewritten with that TZID,
  keeping its wall-clock time. A floating RRULE ``UNTIL`` becomes UTC, as
  RFC 5545 requires once DTSTART has a zone.
- A Windows zone name in TZID ("W. Europe Standard Time", from Outlook and
  Exchange) becomes its IANA name through icalendar's CLDR table, again keeping
  the wall-clock time; the Windows-named VTIMEZONE is then unused and dropped.
- A TZID that neither zoneinfo nor a VTIMEZONE of the item knows cannot be
  interpreted at all; its values are read like floating ones ("orphans").
- A TZID with a VTIMEZONE in the item (custom or IANA) is left as it is.
- DATE values (all-day) are never touched.

VTIMEZONEs: those in use are kept, unused ones dropped, and a missing one is
built from zoneinfo (``icalendar.Timezone.from_tzinfo``, cached), covering the
item's first year and the :data:`VTIMEZONE_YEARS` after it.
We decide by the TZID parameter text rather than by the parsed tzinfo,
because icalendar caches custom VTIMEZONEs process-wide by name.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta, tzinfo

from icalendar import Calendar, Component, Event, Timezone, vDDDLists, vDDDTypes, vRecur
from icalendar.prop.dt.types import DT_TYPE
from icalendar.timezone import tzid_from_tzinfo
from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

from bridge.ical.zones import iana_zone
from bridge.rules.markers import property_values
from bridge.rules.options import ConnectionOptions

DATETIME_PROPERTIES = ("DTSTART", "DTEND", "RECURRENCE-ID", "RDATE", "EXDATE")
VTIMEZONE_YEARS = 30
"""A VTIMEZONE built here covers the item's first year and this many years after it."""


def windows_to_iana(tzid: str) -> str | None:
    """The IANA name for a Windows zone name (CLDR mapping shipped with icalendar)."""
    return WINDOWS_TO_OLSON.get(tzid.strip())


def used_tzids(components: Iterable[Component]) -> set[str]:
    """Every TZID parameter used by the properties of ``components`` and their subcomponents."""
    found: set[str] = set()
    for component in components:
        for _name, value in component.property_items(sorted=False):
            tzid = getattr(value, "params", {}).get("TZID")
            if tzid:
                found.add(str(tzid))
    return found


def orphan_tzids(calendar: Calendar) -> frozenset[str]:
    """TZIDs the events use that no VTIMEZONE, Windows name or zoneinfo explains."""
    defined = {str(c.get("TZID")) for c in calendar.subcomponents if c.name == "VTIMEZONE"}
    events = [c for c in calendar.subcomponents if c.name != "VTIMEZONE"]
    return frozenset(
        tzid
        for tzid in used_tzids(events)
        if tzid not in defined and windows_to_iana(tzid) is None and iana_zone(tzid) is None
    )


def _target_zone(tzid: str | None, value: datetime, default: tzinfo, orphans: frozenset[str]) -> tzinfo | None:
    """The zone a date-time must be rewritten into, or None to leave it as it is."""
    if tzid is None:
        return default if value.tzinfo is None else None
    windows = windows_to_iana(tzid)
    if windows is not None:
        return iana_zone(windows)
    return default if tzid in orphans else None


def _rezone(value: datetime, zone: tzinfo) -> datetime:
    """The same wall-clock time in ``zone``."""
    return value.replace(tzinfo=zone)


def _tzid_param(zone: tzinfo) -> str | None:
    """The TZID parameter for ``zone``, as icalendar writes it for single values.

    None for UTC-equivalent zones, whose values icalendar writes with a ``Z``.
    """
    name = tzid_from_tzinfo(zone)
    return None if name == "UTC" else name


def _single(prop: vDDDTypes, default: tzinfo, orphans: frozenset[str]) -> vDDDTypes:
    value = prop.dt
    if not isinstance(value, datetime):
        return prop
    zone = _target_zone(prop.params.get("TZID"), value, default, orphans)
    if zone is None:
        return prop
    result = vDDDTypes(_rezone(value, zone))
    for key, param in prop.params.items():
        if key.upper() not in ("TZID", "VALUE"):
            result.params[key] = param
    return result


def _list(prop: vDDDLists, default: tzinfo, orphans: frozenset[str]) -> vDDDLists:
    values = [item.dt for item in prop.dts]
    starts = [v[0] if isinstance(v, tuple) else v for v in values]
    sample = next((v for v in starts if isinstance(v, datetime)), None)
    if sample is None:
        return prop
    zone = _target_zone(prop.params.get("TZID"), sample, default, orphans)
    if zone is None:
        return prop
    converted: list[DT_TYPE] = []
    for value in values:
        if isinstance(value, tuple):
            start, end = value
            if isinstance(end, timedelta):
                converted.append((_rezone(start, zone), end))
            else:
                converted.append((_rezone(start, zone), _rezone(end, zone)))
        elif isinstance(value, datetime):
            converted.append(_rezone(value, zone))
        else:
            converted.append(value)
    result = vDDDLists([vDDDTypes(v) for v in converted])
    for key, param in prop.params.items():
        if key.upper() != "TZID":
            result.params[key] = param
    result.params.pop("TZID", None)
    tzid = _tzid_param(zone)
    if tzid is not None:
        result.params["TZID"] = tzid
    return result


def _until_in_utc(event: Event) -> None:
    """Once DTSTART has a zone, a floating RRULE UNTIL must be UTC (RFC 5545, 3.3.10)."""
    start = getattr(event.get("DTSTART"), "dt", None)
    if not isinstance(start, datetime) or start.tzinfo is None or "RRULE" not in event:
        return
    fixed: list[object] = []
    for rule in property_values(event["RRULE"]):
        untils = rule.get("UNTIL", []) if isinstance(rule, vRecur) else []
        if any(isinstance(u, datetime) and u.tzinfo is None for u in untils):
            rule = copy.deepcopy(rule)
            rule["UNTIL"] = [
                u.replace(tzinfo=start.tzinfo).astimezone(UTC) if isinstance(u, datetime) and u.tzinfo is None else u
                for u in untils
            ]
        fixed.append(rule)
    event["RRULE"] = fixed if len(fixed) > 1 else fixed[0]


def apply_timezone(event: Event, options: ConnectionOptions, orphans: frozenset[str] = frozenset()) -> Event:
    """Read floating times in the connection's zone and map Windows zone names to IANA.

    ``orphans`` are TZIDs without any definition in the item (see :func:`orphan_tzids`);
    called on a lone event, no TZID is assumed to be an orphan.
    """
    result = event.copy(recursive=True)
    default = options.zone
    for name in DATETIME_PROPERTIES:
        if name not in result:
            continue
        props = property_values(result[name])
        fixed = [
            _list(p, default, orphans) if isinstance(p, vDDDLists) else _single(p, default, orphans)
            if isinstance(p, vDDDTypes) else p
            for p in props
        ]
        result[name] = fixed if len(fixed) > 1 else fixed[0]
    _until_in_utc(result)
    return result


@functools.lru_cache(maxsize=1024)
def _vtimezone_ical(tzid: str, first_year: int) -> bytes | None:
    """VTIMEZONE text for an IANA zone; building one takes milliseconds, so it is cached."""
    zone = iana_zone(tzid)
    if zone is None:
        return None
    first = date(first_year, 1, 1)
    last = date(first_year + VTIMEZONE_YEARS, 1, 1)
    return bytes(Timezone.from_tzinfo(zone, tzid, first, last).to_ical())


def vtimezone(tzid: str, first_year: int = Timezone.DEFAULT_FIRST_DATE.year) -> Timezone | None:
    """A fresh VTIMEZONE for an IANA zone, valid from ``first_year`` on; None if zoneinfo does not know it.

    icalendar lists every transition as an RDATE, so the range is kept to what
    an item needs: 1970 to 2038 (its default) would be ~2.3 KB and 10 ms to parse
    per item, the item's first year plus :data:`VTIMEZONE_YEARS` is well under half.
    """
    if iana_zone(tzid) is None:  # before the cache, which would keep any text as its key
        return None
    text = _vtimezone_ical(tzid, first_year)
    if text is None:
        return None
    component = Timezone.from_ical(text)
    assert isinstance(component, Timezone)
    return component


def first_year(components: Iterable[Component]) -> int:
    """The earliest year of any date-time in ``components`` (1970 if there is none)."""
    years = [
        (item.dt[0] if isinstance(item.dt, tuple) else item.dt).year
        for component in components
        for name in DATETIME_PROPERTIES
        for prop in property_values(component.get(name))
        for item in (prop.dts if isinstance(prop, vDDDLists) else [prop])
        if isinstance(item, vDDDTypes) and isinstance(item.dt, (datetime, tuple))
    ]
    return min(years, default=Timezone.DEFAULT_FIRST_DATE.year)


def timezones_for(components: list[Component], available: Iterable[Timezone] = ()) -> list[Timezone]:
    """New VTIMEZONEs for exactly the TZIDs ``components`` use.

    Definitions come from ``available`` (first match wins), then from zoneinfo;
    a TZID neither knows is left without one.
    """
    needed = used_tzids(components)
    chosen: dict[str, Timezone] = {}
    for timezone in available:
        tzid = str(timezone.get("TZID"))
        if tzid in needed and tzid not in chosen:
            chosen[tzid] = timezone.copy(recursive=True)
    year = first_year(components)
    for tzid in sorted(needed - chosen.keys()):
        built = vtimezone(tzid, year)
        if built is not None:
            chosen[tzid] = built
    return list(chosen.values())


def with_timezones(calendar: Calendar, available: Iterable[Timezone] = ()) -> Calendar:
    """A copy of ``calendar`` whose VTIMEZONEs are exactly those its components use (see :func:`timezones_for`)."""
    others = [c for c in calendar.subcomponents if c.name != "VTIMEZONE"]
    own = [c for c in calendar.subcomponents if isinstance(c, Timezone)]
    result = calendar.copy()
    result.subcomponents = [*timezones_for(others, [*own, *available]), *(c.copy(recursive=True) for c in others)]
    return result


def normalize_timezones(calendar: Calendar, options: ConnectionOptions) -> Calendar:
    """:func:`apply_timezone` on every event of ``calendar``, then :func:`with_timezones`."""
    orphans = orphan_tzids(calendar)
    result = calendar.copy()
    result.subcomponents = [
        apply_timezone(c, options, orphans) if isinstance(c, Event) else c.copy(recursive=True)
        for c in calendar.subcomponents
    ]
    return with_timezones(result)
