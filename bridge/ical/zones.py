"""Time zones per resource: each item's times come from its own definitions, never another's.

icalendar keeps one process-wide table of the VTIMEZONEs it has parsed, keyed by TZID, and the
first definition of a name wins for every later resource: one tenant's "Customized Time Zone"
at +14:00 would shift another tenant's 09:00 of the same name by 13 hours, and a new TZID on
every PUT would grow that table forever. This module switches that table off (at import, once
per process) and binds every date-time of a parsed resource to a zone chosen by these rules:

1. an IANA name (``Europe/Berlin``) is zoneinfo's zone, whatever the resource's VTIMEZONE says
   (zoneinfo is current; clients' VTIMEZONEs are often cut to a few years);
2. a Windows or CLDR name (``W. Europe Standard Time``, as Outlook and Exchange write them) is
   the IANA zone that CLDR maps it to, whatever the resource's VTIMEZONE says: such a name means
   one zone everywhere, and the sync rules rewrite these names to that IANA zone at ingest;
3. any other name is the resource's own VTIMEZONE of that TZID (if that has at most 64 KiB);
4. a name none of these explains but which ends in an IANA name (``/mozilla.org/.../Europe/Berlin``)
   is that IANA zone; otherwise the value stays floating (no zone), as if it had no TZID.

Radicale reads items with vobject for the filters it answers itself, and vobject has the same
first-wins table (``vobject.icalendar.registerTzid``). Here that table is made per thread and
emptied at the start of every parse, so a resource read by vobject sees only its own VTIMEZONEs
and the IANA zones vobject finds by name.

A DATE value that carries a TZID (``DTSTART;TZID=Europe/Paris:20130903``, which RFC 5545, 3.2.19,
forbids but Thunderbird has written) stays a DATE, as vobject and icalendar 6 read it; icalendar 7
would make it midnight in that zone and move the day by the zone's offset.

Name lookups (1, 2, 4) are cached in a bounded table; zones built from a VTIMEZONE are cached by
the definition's text, also bounded, so equal definitions share one zone and different ones never
do. Everything that reads iCalendar text parses it with :func:`parse_calendar` (or its siblings).
"""

from __future__ import annotations

import functools
import threading
import zoneinfo
import zoneinfo._common as zoneinfo_common
from collections.abc import Iterable, Iterator
from datetime import datetime, tzinfo
from typing import Any

import icalendar
import vobject
import vobject.base
import vobject.icalendar
from icalendar.timezone import tzp
from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

TIME_PROPERTIES = ("DTSTART", "DTEND", "DUE", "RECURRENCE-ID", "RDATE", "EXDATE")
"""The properties whose date-times a TZID parameter qualifies."""

NAME_CACHE_SIZE = 1024
MAX_NAME_CHARS = 300
DEFINITION_CACHE_SIZE = 256
MAX_DEFINITION_BYTES = 64 * 1024


def named_zone(tzid: str) -> tzinfo | None:
    """The zone a TZID names by itself (rules 1, 2 and 4), or None if only a definition can say.
    No IANA or Windows name is longer than MAX_NAME_CHARS; a longer TZID names nothing and is not
    cached (1,024 TZIDs of a megabyte each would hold a gigabyte)."""
    if len(tzid) > MAX_NAME_CHARS:
        return None
    return _cached_named_zone(tzid)


@functools.lru_cache(maxsize=NAME_CACHE_SIZE)
def _cached_named_zone(tzid: str) -> tzinfo | None:
    name = tzid.strip()
    zone = iana_zone(name.strip("/"))
    if zone is not None:
        return zone
    windows = WINDOWS_TO_OLSON.get(name)
    if windows is not None:
        return iana_zone(windows)
    return None


def guessed_zone(tzid: str) -> tzinfo | None:
    """Rule 4: an IANA name at the end of a "globally unique" TZID (RFC 5545, 3.2.19)."""
    parts = [part for part in tzid.strip().split("/") if part]
    for size in (3, 2, 1):
        if len(parts) > size:
            zone = named_zone("/".join(parts[-size:]))
            if zone is not None:
                return zone
    return None


def iana_zone(name: str) -> zoneinfo.ZoneInfo | None:
    """The zoneinfo zone named ``name``, or None; no IANA name is longer than 255 characters, so a
    longer one is not even looked up (callers may cache by name behind this check)."""
    if not name or len(name) > 255:
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return None


def _defined_zone(definition: bytes) -> tzinfo | None:
    """A zone built from one VTIMEZONE's text; None when the definition cannot be read, or is over
    MAX_DEFINITION_BYTES: real definitions have a few KB, and one of 50,000 RDATEs (800 KB) took
    seconds to build and 4 MB to keep, per distinct text, in each of the cache's 256 places."""
    if len(definition) > MAX_DEFINITION_BYTES:
        return None
    return _cached_zone(definition)


@functools.lru_cache(maxsize=DEFINITION_CACHE_SIZE)
def _cached_zone(definition: bytes) -> tzinfo | None:
    return _built_zone(definition)


def _built_zone(definition: bytes) -> tzinfo | None:
    try:
        component = icalendar.Timezone.from_ical(definition)
        return tzp.create_timezone(component)  # type: ignore[arg-type]
    except Exception:  # a broken VTIMEZONE leaves its times floating, it does not fail the resource
        return None


def definitions(calendar: icalendar.Component) -> dict[str, icalendar.Component]:
    """The resource's own VTIMEZONEs by TZID (the first of a name, as RFC 5545 allows one)."""
    found: dict[str, icalendar.Component] = {}
    for component in calendar.subcomponents:
        if component.name == "VTIMEZONE" and "TZID" in component:
            found.setdefault(str(component["TZID"]), component)
    return found


def zone_for(tzid: str, own: dict[str, icalendar.Component]) -> tzinfo | None:
    """The zone of ``tzid`` in a resource whose VTIMEZONEs are ``own`` (rules 1 to 4)."""
    zone = named_zone(tzid)
    if zone is not None:
        return zone
    definition = own.get(tzid)
    if definition is not None:
        zone = _defined_zone(bytes(definition.to_ical()))
        if zone is not None:
            return zone
    return guessed_zone(tzid)


def bind(calendar: icalendar.Component) -> icalendar.Component:
    """Give every date-time with a TZID in ``calendar`` the zone this resource means by it (in place)."""
    own = definitions(calendar)
    chosen: dict[str, tzinfo | None] = {}
    for component in _timed_components(calendar):
        for name in TIME_PROPERTIES:
            for prop in _values(component.get(name)):
                tzid = getattr(prop, "params", {}).get("TZID")
                if not tzid:
                    continue
                tzid = str(tzid)
                if tzid not in chosen:
                    chosen[tzid] = zone_for(tzid, own)
                _rebind(prop, chosen[tzid])
    return calendar


def parse_calendar(text: str | bytes) -> icalendar.Calendar:
    """One VCALENDAR, its times bound per :func:`bind`. Raises ValueError as icalendar does."""
    calendar = icalendar.Calendar.from_ical(text)
    bind(calendar)
    return calendar  # type: ignore[return-value]


def parse_calendars(text: str | bytes) -> list[icalendar.Calendar]:
    """Every VCALENDAR in ``text``, each bound to its own definitions."""
    calendars = icalendar.Calendar.from_ical(text, multiple=True)
    for calendar in calendars:
        bind(calendar)
    return list(calendars)  # type: ignore[arg-type]


def parse_event(text: str | bytes) -> icalendar.Event:
    """A lone VEVENT (no VTIMEZONE can come with it: names only)."""
    event = icalendar.Event.from_ical(text)
    wrapper = icalendar.Calendar()
    wrapper.add_component(event)
    bind(wrapper)
    return event  # type: ignore[return-value]


def copy_calendar(calendar: icalendar.Component) -> icalendar.Calendar:
    """A deep copy through text (what the rules and the sync engine round-trip), bound again."""
    return parse_calendar(calendar.to_ical())


def _timed_components(calendar: icalendar.Component) -> Iterator[icalendar.Component]:
    for component in calendar.walk():
        if component.name not in ("VTIMEZONE", "STANDARD", "DAYLIGHT"):
            yield component


def _values(value: Any) -> Iterable[Any]:
    if value is None:
        return ()
    return value if isinstance(value, list) else (value,)


def _rezone(value: Any, zone: tzinfo | None) -> Any:
    if isinstance(value, datetime):
        return value.replace(tzinfo=zone)
    if isinstance(value, tuple) and len(value) == 2:
        return (_rezone(value[0], zone), _rezone(value[1], zone))
    return value


def _rebind(prop: Any, zone: tzinfo | None) -> None:
    if isinstance(prop, icalendar.vDDDLists):
        for item in prop.dts:
            item.dt = _rezone(item.dt, zone)
    elif hasattr(prop, "dt"):
        prop.dt = _rezone(prop.dt, zone)


def _no_process_wide_definitions(timezone_component: Any) -> None:
    """Replaces icalendar's ``cache_timezone_component``: a resource's VTIMEZONE is its own."""


class _PerParseTable:
    """vobject's TZID table, one per thread, emptied when that thread starts reading a resource."""

    def __init__(self) -> None:
        self._local = threading.local()

    def _table(self) -> dict[str, Any]:
        table: dict[str, Any] | None = getattr(self._local, "table", None)
        if table is None:
            table = self._local.table = {"UTC": vobject.icalendar.utc}
        return table

    def reset(self) -> None:
        self._local.table = None

    def get(self, key: str, default: Any = None) -> Any:
        """Rules 1 to 3 as :func:`zone_for` applies them (rule 4 in :func:`_guessing`): a name IANA or CLDR
        explains is that zone whatever the resource's VTIMEZONE says (vobject took the VTIMEZONE, so
        Radicale's own filters put Europe/Berlin 09:00 with a +14:00 definition 13 hours away from the
        bridge's index). vobject registers a VTIMEZONE only if this finds nothing for its TZID."""
        zone = named_zone(str(key))
        if zone is not None:
            return zone
        return self._table().get(key, default)

    def __setitem__(self, key: str, value: Any) -> None:
        self._table()[key] = value


_VOBJECT_TABLE = _PerParseTable()


def _guessing(lookup: Any) -> Any:
    """vobject's getTzid, with rule 4 when the resource defines the name nowhere (not on the lookup
    vobject makes before registering a VTIMEZONE, ``smart=False``, so the definition still wins)."""

    def get_tzid(tzid: Any, smart: bool = True) -> Any:
        zone = lookup(tzid, False)
        if zone is None and smart and tzid:
            zone = guessed_zone(str(tzid))
        return zone

    get_tzid.__wrapped_by_calbridge__ = True  # type: ignore[attr-defined]
    return get_tzid


def _per_resource(read: Any) -> Any:
    @functools.wraps(read)
    def read_components(*args: Any, **kwargs: Any) -> Any:
        _VOBJECT_TABLE.reset()
        yield from read(*args, **kwargs)

    read_components.__wrapped_by_calbridge__ = True  # type: ignore[attr-defined]
    return read_components


def _dates_stay_dates(read: Any) -> Any:
    def from_ical(cls: Any, ical: Any, timezone: Any = None) -> Any:
        if timezone and isinstance(ical, str) and len(ical) == 8:
            return icalendar.vDate.from_ical(ical)
        return read.__func__(cls, ical, timezone=timezone)

    from_ical.__wrapped_by_calbridge__ = True  # type: ignore[attr-defined]
    return classmethod(from_ical)


def _install() -> None:
    """Switch icalendar's and vobject's process-wide VTIMEZONE tables off (see module doc)."""
    if not getattr(zoneinfo_common.load_tzdata, "__wrapped_by_calbridge__", False):
        zoneinfo_common.load_tzdata = _no_directories(zoneinfo_common.load_tzdata)
    if not getattr(icalendar.vDDDTypes.from_ical, "__wrapped_by_calbridge__", False):
        icalendar.vDDDTypes.from_ical = _dates_stay_dates(vars(icalendar.vDDDTypes)["from_ical"])  # type: ignore[method-assign]
    tzp.cache_timezone_component = _no_process_wide_definitions  # type: ignore[method-assign]
    tzp.timezone = _named_or_guessed  # type: ignore[method-assign]
    vars(vobject.icalendar)["__tzidMap"] = _VOBJECT_TABLE
    if not getattr(vobject.icalendar.getTzid, "__wrapped_by_calbridge__", False):
        vobject.icalendar.getTzid = _guessing(vobject.icalendar.getTzid)
    timezone_class = vobject.icalendar.TimezoneComponent
    if not getattr(timezone_class.tzinfo.fget, "__wrapped_by_calbridge__", False):
        timezone_class.tzinfo = property(_readable_or_none(timezone_class.tzinfo.fget), timezone_class.tzinfo.fset)
    if not getattr(vobject.base.readComponents, "__wrapped_by_calbridge__", False):
        vobject.base.readComponents = _per_resource(vobject.base.readComponents)
        vobject.readComponents = vobject.base.readComponents


def _readable_or_none(read: Any) -> Any:
    """vobject's VTIMEZONE to tzinfo (dateutil's tzical), None where it cannot read the definition (no
    STANDARD or DAYLIGHT, one without DTSTART): the times stay floating, as :func:`_defined_zone` leaves
    them, instead of failing every Radicale filter of the calendar that holds the item with a 500."""

    def tzinfo_or_none(component: Any) -> Any:
        try:
            return read(component)
        except Exception:  # dateutil raises ValueError, KeyError, IndexError... on what it cannot read
            return None

    tzinfo_or_none.__wrapped_by_calbridge__ = True  # type: ignore[attr-defined]
    return tzinfo_or_none


def _no_directories(load: Any) -> Any:
    """zoneinfo's tzdata loader, with a TZID that names a folder of the tz database ("Europe", "Etc")
    not found rather than an IsADirectoryError: every ``ZoneInfo(name)`` here catches
    ZoneInfoNotFoundError, and ``DTSTART;TZID=Europe:...`` answered a PUT with 500 (also MKCALENDAR,
    the sync rules, a Google event's timeZone)."""

    def load_tzdata(key: str) -> Any:
        try:
            return load(key)
        except (IsADirectoryError, NotADirectoryError, PermissionError) as exc:
            raise zoneinfo.ZoneInfoNotFoundError(f"No time zone found with key {key}") from exc

    load_tzdata.__wrapped_by_calbridge__ = True  # type: ignore[attr-defined]
    return load_tzdata


def _named_or_guessed(tz_id: str) -> tzinfo | None:
    return named_zone(tz_id) or guessed_zone(tz_id)


_install()
