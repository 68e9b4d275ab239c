"""A calendar object resource as the /dav gate takes it: parsed once with icalendar.

``parse_object`` accepts only what needs no repair and returns None otherwise, so the
caller can leave the request to Radicale, whose checks give the reason for a refusal or
repair what it knows (a DATE EXDATE on a DATE-TIME series, DTEND with DURATION:PT0S).
A TZID without its VTIMEZONE (RFC 5545 §3.6.5 requires one) gets the IANA definition added.
"""

from __future__ import annotations

import functools
import re
import zoneinfo
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import icalendar

from bridge.ical.zones import iana_zone, parse_calendars

OBJECT_COMPONENTS = ("VEVENT", "VTODO", "VJOURNAL")
MAX_RRULE_OCCURRENCES = 10_000  # Radicale's default limit, so both paths refuse the same series
_FIRST_COMPONENT = re.compile(r"^BEGIN:(?:VEVENT|VTODO|VJOURNAL)\r?$", re.MULTILINE | re.IGNORECASE)
# Radicale's estimate of a series' size from UNTIL (radicale.item.RRULE_FREQUENCIES_TO_INTERVAL).
_SECONDS_PER = {"SECONDLY": 1, "MINUTELY": 60, "HOURLY": 3600, "DAILY": 86400, "WEEKLY": 604800,
                "MONTHLY": 2629746, "YEARLY": 31556952}


@dataclass(frozen=True)
class CalendarObject:
    text: str
    calendar: icalendar.Calendar
    uid: str
    component: str


def parse_object(text: str) -> CalendarObject | None:
    """The object in ``text``, or None where it is invalid or needs a repair."""
    try:
        parsed = parse_calendars(text)
    except (ValueError, KeyError, IndexError, TypeError):
        return None
    if len(parsed) != 1 or parsed[0].name != "VCALENDAR" or parsed[0].errors:
        return None
    calendar = parsed[0]
    components = [c for c in calendar.subcomponents if c.name != "VTIMEZONE"]
    names = {c.name for c in components}
    if len(names) != 1 or not names <= set(OBJECT_COMPONENTS):
        return None
    uids = {str(c.get("UID", "")) for c in components}
    if len(uids) != 1 or "" in uids:
        return None
    if not all(_clean(component) for component in components):
        return None
    missing = _tzids(components) - {str(tz.get("TZID", "")) for tz in calendar.walk("VTIMEZONE")}
    if missing:
        definitions = [_vtimezone(tzid) for tzid in sorted(missing)]
        if None in definitions:
            return None
        # The parsed object already resolved these TZIDs through zoneinfo: no second parse.
        text = _with_timezones(text, [d for d in definitions if d is not None])
    return CalendarObject(text, calendar, uids.pop(), names.pop())


def _clean(component: icalendar.Component) -> bool:
    """No parse errors, nothing Radicale would repair, and a series Radicale would not refuse."""
    if component.errors or any(sub.errors for sub in component.walk()):
        return False
    if "DTEND" in component and "DURATION" in component:
        return False
    start = component.get("DTSTART")
    start_value = start.dt if start is not None else None
    for name in ("EXDATE", "RDATE"):
        for values in _as_list(component.get(name)):
            if values.params.get("VALUE") == "PERIOD":
                continue
            for value in values.dts:
                if start_value is None or not _same_kind(value.dt, start_value):
                    return False
    return all(_series_within_limit(rule, start_value) for rule in _as_list(component.get("RRULE")))


def _same_kind(value: Any, reference: date | datetime) -> bool:
    if isinstance(value, datetime) != isinstance(reference, datetime) or isinstance(value, tuple):
        return False
    return not isinstance(value, datetime) or (value.tzinfo is None) == (reference.tzinfo is None)  # type: ignore[union-attr]


def _series_within_limit(rule: icalendar.vRecur, start: date | datetime | None) -> bool:
    count = rule.get("COUNT")
    if count and int(count[0]) > MAX_RRULE_OCCURRENCES:
        return False
    until, freq = rule.get("UNTIL"), rule.get("FREQ")
    if not until or not freq or start is None:
        return True
    end = until[0]
    if isinstance(start, datetime) != isinstance(end, datetime):
        return False
    if isinstance(start, datetime) and isinstance(end, datetime) and (start.tzinfo is None) != (end.tzinfo is None):
        end = end.replace(tzinfo=start.tzinfo)
    seconds = (end - start).total_seconds() if isinstance(end, datetime) else (end - start).days * 86400
    interval = _SECONDS_PER.get(str(freq[0]).upper())
    # An UNTIL before DTSTART is valid RFC 5545: the series is DTSTART alone (negative seconds).
    return interval is not None and seconds / interval <= MAX_RRULE_OCCURRENCES


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _tzids(components: list[icalendar.Component]) -> set[str]:
    found: set[str] = set()
    for component in components:
        for sub in component.walk():
            for prop in sub.property_items(recursive=False, sorted=False):
                params = getattr(prop[1], "params", None)
                if params and "TZID" in params:
                    found.add(str(params["TZID"]))
    return found


def _vtimezone(tzid: str) -> str | None:
    """The VTIMEZONE of an IANA zone as iCalendar text, built once per zone (only a name zoneinfo
    knows reaches the cache, so a made-up TZID cannot fill it with its text)."""
    return _iana_vtimezone(tzid) if iana_zone(tzid) is not None else None


@functools.lru_cache(maxsize=256)
def _iana_vtimezone(tzid: str) -> str | None:
    try:
        zoneinfo.ZoneInfo(tzid)
        return icalendar.Timezone.from_tzid(tzid).to_ical().decode()
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, KeyError):
        return None


def _with_timezones(text: str, definitions: list[str]) -> str:
    """Insert VTIMEZONE blocks before the first object component, in the text's line endings."""
    match = _FIRST_COMPONENT.search(text)
    if match is None:
        return text
    block = "".join(definitions)
    if "\r\n" not in text:
        block = block.replace("\r\n", "\n")
    return text[:match.start()] + block + text[match.start():]
