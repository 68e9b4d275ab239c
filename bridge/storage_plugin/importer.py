"""Import an iCalendar file into a calendar: one item per UID (with the VTIMEZONEs it uses),
each checked as a PUT of it would be; re-importing replaces items by UID instead of
duplicating them. The whole file goes in one transaction or not at all."""

from __future__ import annotations

import re
from collections.abc import Iterator

import icalendar
from radicale import config as radicale_config
from radicale import item as radicale_item

from bridge.ical.zones import parse_calendar
from bridge.settings import Settings
from bridge.storage_plugin.checks import InvalidICalendar, checked_components
from bridge.storage_plugin.collection import SqlCollection
from bridge.storage_plugin.storage import SqlStorage
from bridge.store import writers
from bridge.store.db import Store
from bridge.store.errors import ItemRefused

_TZID = re.compile(rb";TZID=(\"[^\"]*\"|[^:;]*)")
_OBJECTS = ("VEVENT", "VTODO", "VJOURNAL")


class NotImportable(ValueError):
    """The file is not importable iCalendar; the message says why."""


def split_by_uid(text: str) -> Iterator[str]:
    """One VCALENDAR text per UID, carrying the time zones its components name."""
    try:
        calendar = parse_calendar(text)
    except ValueError as exc:
        raise NotImportable(f"not importable iCalendar: {exc}") from exc
    timezones = {str(tz.get("TZID")): tz for tz in calendar.subcomponents if tz.name == "VTIMEZONE"}
    groups: dict[str, list[icalendar.cal.Component]] = {}
    for component in calendar.subcomponents:
        if component.name not in _OBJECTS:
            continue
        uid = str(component.get("UID", "")).strip()
        if not uid:
            raise NotImportable(f"not importable iCalendar: a {component.name} has no UID")
        groups.setdefault(uid, []).append(component)
    for components in groups.values():
        piece = icalendar.Calendar()
        piece.add("VERSION", "2.0")
        piece.add("PRODID", str(calendar.get("PRODID", "-//calbridge//import//EN")))
        body = b"".join(component.to_ical() for component in components)
        for tzid in dict.fromkeys(match.strip(b'"').decode() for match in _TZID.findall(body)):
            if tzid in timezones:
                piece.add_component(timezones[tzid])
        for component in components:
            piece.add_component(component)
        yield piece.to_ical().decode()


def _checked_item(owner: str, slug: str, text: str) -> radicale_item.Item:
    try:
        components = checked_components(text)
        item = radicale_item.Item(collection_path=f"{owner}/{slug}", vobject_item=components[0], text=text)
        item.prepare()
    except (InvalidICalendar, ValueError, RuntimeError) as exc:
        raise NotImportable(f"not importable iCalendar: {exc}") from exc
    return item


def import_calendar(store: Store, settings: Settings, owner: str, slug: str, text: str) -> tuple[int, int]:
    """Import ``text`` into /<owner>/<slug>/; returns (created, replaced).

    Items are checked and written one at a time (a large export need not fit in memory
    as parsed objects); the first bad one rolls the whole import back.
    """
    new_items = (_checked_item(owner, slug, piece) for piece in split_by_uid(text))
    storage = SqlStorage(store, settings, radicale_config.load())
    with storage.acquire_lock("w", owner, path=f"/{owner}/{slug}/"):
        collection = next(iter(storage.discover(f"/{owner}/{slug}/")), None)
        if not isinstance(collection, SqlCollection) or collection.calendar_row is None:
            raise NotImportable(f"no calendar /{owner}/{slug}/")
        try:
            return collection.upsert_by_uid(new_items, writers.IMPORTER)
        except ItemRefused as exc:  # a UID of a booking or of a connection's event: theirs to change
            raise NotImportable(f"not importable: an event with the UID of {exc.href!r} belongs to "
                                f"{_owner_of(exc.origin)} and is not replaced by an import") from exc


def _owner_of(origin: str) -> str:
    return "a booking" if origin == writers.BOOKING_ORIGIN else "a connected calendar"

