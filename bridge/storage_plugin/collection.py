"""Radicale collections over the store: the root, a principal, or a calendar.

Every method runs inside the request transaction opened by
``SqlStorage.acquire_lock``; defaults of ``BaseCollection`` that walk
``get_all()`` are replaced by indexed queries.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import zoneinfo
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, overload
from xml.etree import ElementTree as ET

from radicale import item as radicale_item
from radicale import storage as radicale_storage
from radicale.item import filter as radicale_filter
from sqlalchemy.orm import Session

from bridge import expand
from bridge.ical.zones import parse_calendar
from bridge.store import calendars, changes, items, writers
from bridge.store.errors import CalendarProtected, InvalidSyncToken, ItemRefused, NotFound, StoreError
from bridge.store.index import describe, from_timestamp
from bridge.store.models import EARLIEST, UNBOUNDED, Calendar, Item, User
from bridge.store.writers import Writer

if TYPE_CHECKING:
    from bridge.storage_plugin.storage import SqlStorage


def http_date(moment: datetime) -> str:
    return moment.strftime("%a, %d %b %Y %H:%M:%S GMT")


def _timestamp(moment: datetime) -> int:
    if moment <= EARLIEST:
        return radicale_filter.TIMESTAMP_MIN
    if moment >= UNBOUNDED:
        return radicale_filter.TIMESTAMP_MAX
    return int(moment.timestamp())


class SqlCollection(radicale_storage.BaseCollection):
    """One collection; ``principal`` is set for principals and calendars, ``calendar`` for calendars."""

    def __init__(self, storage: SqlStorage, path: str, principal: User | None = None,
                 calendar: Calendar | None = None) -> None:
        self._storage = storage
        self._path = path
        self._principal = principal
        self._calendar = calendar

    # -- identity -----------------------------------------------------------------------

    @property
    def path(self) -> str:
        return self._path

    @property
    def calendar_row(self) -> Calendar | None:
        return self._calendar

    @property
    def _session(self) -> Session:
        return self._storage.session()

    def _require_calendar(self) -> Calendar:
        if self._calendar is None:
            raise ValueError(f"{self._path!r} holds no items")
        return self._calendar

    def to_radicale(self, row: Item) -> radicale_item.Item:
        return radicale_item.Item(
            collection=self,
            href=row.href,
            last_modified=http_date(row.modified_at),
            etag=row.etag,
            text=row.text,
            uid=row.uid,
            name="VCARD" if row.component == "VCARD" else "VCALENDAR",
            component_name="" if row.component == "VCARD" else row.component,
            time_range=(_timestamp(row.span_start), _timestamp(row.span_end)),
        )

    # -- reads --------------------------------------------------------------------------

    def get_multi(self, hrefs: Iterable[str]) -> Iterable[tuple[str, radicale_item.Item | None]]:
        wanted = list(hrefs)
        if self._calendar is None:
            return [(href, None) for href in wanted]
        calendar_id = self._calendar.id
        rows = self._storage.read(lambda session: items.by_hrefs(session, calendar_id, wanted))
        found = {row.href: row for row in rows}
        return [(href, self.to_radicale(found[href]) if href in found else None) for href in wanted]

    def get_all(self) -> Iterable[radicale_item.Item]:
        if self._calendar is None:
            return []
        calendar_id = self._calendar.id
        return [self.to_radicale(row) for row in self._storage.read(lambda s: items.all_of(s, calendar_id))]

    def get_filtered(self, filters: Iterable[ET.Element]) -> Iterable[tuple[radicale_item.Item, bool]]:
        """Answer time-range filters on events with bridge.expand's semantics (RFC 4791 9.9):
        from the span index, the stored instances, or an expansion of the few series stored
        instances do not reach. Other filters are left to Radicale's check (``matched`` False)."""
        if self._calendar is None or not self.tag:
            return
        tag, start, end, simple = radicale_filter.simplify_prefilters(filters, self.tag)
        calendar_id = self._calendar.id
        if start <= radicale_filter.TIMESTAMP_MIN and end >= radicale_filter.TIMESTAMP_MAX:
            for row in self._storage.read(lambda s: items.all_of(s, calendar_id)):
                if tag is None or tag == row.component:
                    yield self.to_radicale(row), simple and tag is not None
            return
        window = (from_timestamp(start), from_timestamp(end))
        rows = self._storage.read(lambda s: items.overlapping(s, calendar_id, *window, tag))
        stored = {row.id for row in rows if row.recurring and row.occurrences_until is not None
                  and row.occurrences_until >= window[1]}
        hits = self._storage.read(lambda s: items.with_occurrence_in(s, sorted(stored), *window))
        zone = zoneinfo.ZoneInfo(self._calendar.timezone)
        for row in rows:
            if tag is not None and tag != row.component:
                continue
            if not simple:
                yield self.to_radicale(row), False
            elif row.component != "VEVENT":
                # Tasks and journals keep Radicale's span: for a single task overlapping it is matching.
                # A journal's span is a superset (one without DTSTART spans everything but matches
                # no time range, RFC 4791 9.9): Radicale's own filter decides journals.
                item = self.to_radicale(row)
                istart, iend = item.time_range
                if istart < end and iend > start:
                    yield item, not row.recurring and row.component != "VJOURNAL"
            elif not row.recurring:
                if expand.overlaps(row.span_start, row.span_end, *window):
                    yield self.to_radicale(row), True
            elif row.id in stored:
                if row.id in hits:
                    yield self.to_radicale(row), True
            else:
                try:
                    found = expand.instances(parse_calendar(row.text), zone, *window, max_instances=1)
                except expand.TooManyInstances:
                    found = [None]  # type: ignore[list-item]
                except ValueError:  # stored before a rule tightened; let Radicale judge it
                    yield self.to_radicale(row), False
                    continue
                if found:
                    yield self.to_radicale(row), True

    def has_uid(self, uid: str) -> bool:
        if self._calendar is None:
            return False
        calendar_id = self._calendar.id
        return self._storage.read(lambda s: items.href_of_uid(s, calendar_id, uid)) is not None

    # -- writes -------------------------------------------------------------------------

    def upload(self, href: str, item: radicale_item.Item) -> tuple[radicale_item.Item, radicale_item.Item | None]:
        return self._write(href, item, writers.CLIENT)

    def _write(self, href: str, item: radicale_item.Item,
               writer: Writer) -> tuple[radicale_item.Item, radicale_item.Item | None]:
        """Store one item as ``writer``; ``ItemRefused`` (the origin rule) passes through unchanged,
        for the /dav surface to answer 403 (``bridge.web.dav_refusal``)."""
        calendar = self._require_calendar()
        session = self._session
        text = item.serialize()
        try:
            described = describe(text, item.time_range, calendar.timezone, name=item.name)
            row, replaced = items.write(session, calendar, items.NewItem(
                href=href, uid=item.uid, etag=item.etag, text=text, facts=described.facts,
                occurrences=described.instances, occurrences_until=described.instances_until), writer)
        except ItemRefused:
            raise
        except (StoreError, ValueError) as exc:  # ValueError: icalendar or bridge.expand refused it
            raise ValueError(str(exc)) from exc
        self._storage.prune_now_and_then(session, calendar)
        return self.to_radicale(row), self.to_radicale(replaced) if replaced is not None else None

    def upload_all(self, new_items: Iterable[radicale_item.Item]) -> list[str]:
        """Store items of a whole-collection PUT under hrefs derived from their UIDs."""
        hrefs: list[str] = []
        for item in new_items:
            href = _href_for_uid(item.uid, taken=set(hrefs))
            self.upload(href, item)
            hrefs.append(href)
        return hrefs

    def upsert_by_uid(self, new_items: Iterable[radicale_item.Item],
                      writer: Writer = writers.IMPORTER) -> tuple[int, int]:
        """Store items, replacing the one with the same UID wherever it is; (created, replaced)."""
        calendar = self._require_calendar()
        created = replaced = 0
        for item in new_items:
            href = items.href_of_uid(self._session, calendar.id, item.uid)
            if href is None:
                href = _href_for_uid(item.uid, taken=set())
                if items.by_href(self._session, calendar.id, href) is not None:
                    href = _href_for_uid(item.uid, taken={href})
                created += 1
            else:
                replaced += 1
            self._write(href, item, writer)
        return created, replaced

    def delete(self, href: str | None = None) -> None:
        session = self._session
        if href is None:
            calendar = self._require_calendar()
            if calendars.is_protected(session, calendar):  # the /dav gate refuses first; this is the backstop
                raise CalendarProtected(self._path)
            self._storage.remove_client_calendar(session, calendar)
            return
        calendar = self._require_calendar()
        try:
            items.delete(session, calendar, href, writers.CLIENT)
        except NotFound as exc:
            raise radicale_storage.ComponentNotFoundError(href) from exc
        self._storage.prune_now_and_then(session, calendar)

    # -- metadata -----------------------------------------------------------------------

    @overload
    def get_meta(self, key: None = None) -> Mapping[str, str]: ...

    @overload
    def get_meta(self, key: str) -> str | None: ...

    def get_meta(self, key: str | None = None) -> Mapping[str, str] | str | None:
        if self._calendar is not None:
            props = calendars.get_props(self._calendar)
        elif self._principal is not None:
            props = json.loads(self._principal.props)
        else:
            props = {}
        return props if key is None else props.get(key)

    def set_meta(self, props: Mapping[str, str]) -> None:
        if self._calendar is not None:
            if props.get("tag", "") != self._calendar.tag:  # RFC 4918, 15.9: MKCALENDAR/MKCOL decide it, not PROPPATCH
                raise ValueError("the resource type of a calendar cannot be changed")
            calendars.set_props(self._session, self._calendar, props)
        elif self._principal is not None:
            if props.get("tag"):
                raise ValueError("a principal cannot become a calendar")
            self._principal.props = json.dumps(dict(props), sort_keys=True)
        else:
            raise ValueError("the root collection has no properties")

    @property
    def etag(self) -> str:
        """The ctag: changes with every write to the calendar, from its change counter."""
        if self._calendar is not None:
            return f'"{self._calendar.sync_epoch}-{self._calendar.change_counter}"'
        digest = hashlib.sha256(json.dumps(self.get_meta(), sort_keys=True).encode()).hexdigest()
        return f'"{digest}"'

    @property
    def last_modified(self) -> str:
        if self._calendar is not None:
            return http_date(self._calendar.modified_at)
        if self._principal is not None:
            return http_date(self._principal.created_at)
        return http_date(EARLIEST)

    def sync(self, old_token: str = "") -> tuple[str, Iterable[str]]:
        """RFC 6578 from the change table: hrefs written or deleted since ``old_token``."""
        calendar = self._calendar
        if calendar is None:
            raise ValueError("sync-collection needs a calendar")
        upto = calendar.change_counter
        if not old_token:
            hrefs = self._storage.read(lambda s: [row.href for row in items.all_of(s, calendar.id)])
            return changes.token(calendar, upto), hrefs
        try:
            after = changes.parse_token(calendar, old_token)
        except InvalidSyncToken as exc:
            raise ValueError(str(exc)) from exc
        changed = self._storage.read(lambda s: changes.hrefs_changed(s, calendar, after, upto))
        return changes.token(calendar, upto), changed


def _href_for_uid(uid: str, taken: set[str]) -> str:
    candidate = uid if uid.lower().endswith(".ics") else f"{uid}.ics"
    if posixpath.basename(candidate) != candidate or not candidate.isprintable() or len(candidate) > 200 \
            or candidate in taken or candidate.startswith("."):
        candidate = hashlib.sha256(uid.encode()).hexdigest() + ".ics"
    return candidate
