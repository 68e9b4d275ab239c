"""Write time: what one connection's item looks like when it is stored, or None.

An adapter hands over one item (one UID: a master VEVENT, maybe overrides
with RECURRENCE-ID, and VTIMEZONEs). The input is serialized and parsed
again first, so the rules see exactly what its text says and the caller's
object is never changed. Then, in this order:

1. times are normalized (:mod:`bridge.rules.timezones`);
2. every VEVENT runs through :data:`EVENT_RULES`; the first rule returning
   None drops it;
3. a dropped standalone event or master is simply gone. A dropped *override*
   must make only its instance disappear: its RECURRENCE-ID is added to the
   master as an EXDATE (chosen over a minimal ``STATUS:CANCELLED`` override
   because every CalDAV client and free/busy reader honours EXDATE, and none
   shows a struck-through ghost). A ``RANGE=THISANDFUTURE`` override loses only
   its own instance that way; the later ones fall back to the master. Without
   a surviving master the dropped override just vanishes, and an item may
   consist of overrides only (allowed by RFC 4791);
4. the UID of the whole item is hashed when ``no_personal_data`` is on or
   *any* component is private (see :mod:`bridge.rules.private`), so that all
   components keep one shared UID;
5. a new VCALENDAR holds VERSION, calbridge's PRODID, the VTIMEZONEs in use
   and the surviving VEVENTs. Other calendar properties (METHOD is forbidden
   in CalDAV resources; X-WR-CALNAME may name a person) and non-VEVENT
   components (VTODO, VJOURNAL, ...; no rule covers their contents) are not
   stored.

The result is deterministic, and ingesting it again gives the same text.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime

from icalendar import Calendar, Event, Timezone, vDDDLists, vDDDTypes

from bridge.ical.zones import copy_calendar
from bridge.rules.allday import apply_allday
from bridge.rules.location import apply_location
from bridge.rules.markers import property_values
from bridge.rules.options import ConnectionOptions
from bridge.rules.personal_data import apply_personal_data, hashed_uid
from bridge.rules.private import apply_private, is_private
from bridge.rules.status import apply_status
from bridge.rules.timezones import apply_timezone, orphan_tzids, timezones_for
from bridge.rules.transparency import apply_transparency

Rule = Callable[[Event, ConnectionOptions], Event | None]

EVENT_RULES: tuple[Rule, ...] = (
    apply_status,
    apply_transparency,
    apply_allday,
    apply_private,
    apply_personal_data,
    apply_location,
)
"""The per-event write-time rules, in the order ingest runs them."""

PRODID = "-//calbridge//calbridge//EN"


def apply_rules(event: Event, options: ConnectionOptions) -> Event | None:
    """Every rule of :data:`EVENT_RULES` on one event; None as soon as one drops it."""
    current = event
    for rule in EVENT_RULES:
        result = rule(current, options)
        if result is None:
            return None
        current = result
    return current


def ingest(calendar: Calendar, options: ConnectionOptions) -> Calendar | None:
    """The stored form of one item from a connection, or None if nothing of it may be stored."""
    source = copy_calendar(calendar)
    orphans = orphan_tzids(source)
    events = [apply_timezone(c, options, orphans) for c in source.subcomponents if isinstance(c, Event)]
    kept: list[Event] = []
    for components in _by_uid(events).values():
        kept.extend(_ingest_item(components, options))
    if not kept:
        return None
    result = Calendar()
    result.add("VERSION", "2.0")
    result.add("PRODID", PRODID)
    given = [c for c in source.subcomponents if isinstance(c, Timezone)]
    result.subcomponents = [*timezones_for(list(kept), given), *kept]
    return result


def _by_uid(events: list[Event]) -> dict[str, list[Event]]:
    """Components grouped by UID, in order of first appearance (one group for a well-formed item)."""
    groups: dict[str, list[Event]] = {}
    for event in events:
        groups.setdefault(str(event.get("UID", "")), []).append(event)
    return groups


def _ingest_item(components: list[Event], options: ConnectionOptions) -> list[Event]:
    """Steps 2 to 4 of the module docstring for the components of one UID."""
    hash_uid = options.no_personal_data or any(is_private(c, options) for c in components)
    results = [(c, apply_rules(c, options)) for c in components]
    master = next((r for c, r in results if r is not None and "RECURRENCE-ID" not in c), None)
    if master is not None:
        for component, result in results:
            if result is None and "RECURRENCE-ID" in component:
                add_exdate(master, property_values(component["RECURRENCE-ID"])[0])
    kept = [r for _, r in results if r is not None]
    if hash_uid:
        for event in kept:
            if "UID" in event:
                uid = hashed_uid(str(event["UID"]), options.uid_salt)
                del event["UID"]
                event.add("UID", uid)
    return kept


def add_exdate(master: Event, recurrence_id: vDDDTypes) -> None:
    """Exclude the instance ``recurrence_id`` names from ``master`` (in place), once."""
    value = recurrence_id.dt
    for exdates in property_values(master.get("EXDATE")):
        if any(item.dt == value for item in exdates.dts):
            return
    exdate = vDDDLists([vDDDTypes(value)])
    exdate.params.pop("TZID", None)
    if "TZID" in recurrence_id.params:  # the same TZID text, so a custom VTIMEZONE still applies
        exdate.params["TZID"] = recurrence_id.params["TZID"]
    if isinstance(value, date) and not isinstance(value, datetime):
        exdate.params["VALUE"] = "DATE"
    master.add("EXDATE", exdate, encode=False)
