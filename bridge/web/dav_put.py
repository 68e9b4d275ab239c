"""PUT of one calendar object resource, answered by the /dav gate without Radicale.

Why: Radicale parses the object with vobject and serialises it again (tens of milliseconds
when it generates a VTIMEZONE), and it refuses valid iCalendar such as RDATE;VALUE=PERIOD.
Here the object is parsed once with icalendar and stored as sent.

The gate only takes the plain case and declines (``None``) whatever it is not sure about, so
Radicale answers those exactly as before: requests without valid credentials or without
the right to write (Radicale adds its delay and its 401/403), paths other than
/<login>/<calendar>/<name>, objects Radicale would repair (a DATE EXDATE on a DATE-TIME
series, DTEND with DURATION:PT0S) and anything that does not parse. Whatever route a PUT takes,
the store's origin rule (``bridge.store.writers``) decides whether a client may replace the item;
a PUT over a booking's event is the booking's change (``bridge.web.dav_booking``).
"""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from bridge import expand
from bridge.settings import Settings
from bridge.storage_plugin.auth import SqlAuth
from bridge.storage_plugin.rights import SqlRights
from bridge.store import calendars, changes, items, writers
from bridge.store.db import Store
from bridge.store.errors import ItemRefused
from bridge.store.index import EventFacts, facts_of
from bridge.store.models import Calendar, Item
from bridge.store.objects import CalendarObject, parse_object
from bridge.web.dav_access import authenticated, may, segments
from bridge.web.dav_answer import Answer, xml_answer
from bridge.web.dav_booking import BookingEdits
from bridge.web.dav_refusal import refusal_of

_NO_UID_CONFLICT = (b'<?xml version="1.0" encoding="utf-8"?>\n'
                    b'<D:error xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:D="DAV:"><C:no-uid-conflict />'
                    b'</D:error>')


class ItemPut:
    def __init__(self, store: Store, settings: Settings, auth: SqlAuth, rights: SqlRights,
                 booking_edits: BookingEdits | None = None) -> None:
        self._store = store
        self._settings = settings
        self._auth = auth
        self._rights = rights
        self._booking_edits = booking_edits
        self._max_resource_size = int(settings.max_body_bytes * 0.8)  # as configured for Radicale

    def answer(self, path: str, headers: dict[str, str], body: bytes, href_prefix: str) -> Answer | None:
        """The answer to a PUT of ``path`` (relative to /dav), or None to let Radicale answer."""
        parts = segments(path, 3, trailing_slash=False)
        login = authenticated(self._auth, headers) if parts else None
        if parts is None or login is None:
            return None
        owner_login, slug, href = parts
        if not may(self._rights, login, owner_login, slug, "w"):
            return None
        if len(body) > self._max_resource_size:
            return None
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return None
        parsed = parse_object(text)
        if parsed is None or parsed.component != "VEVENT":  # tasks and journals keep Radicale's semantics
            return None
        # Parse and expand before taking the write lock (on SQLite it blocks every other writer);
        # the transaction then only re-reads the calendar, checks the preconditions and writes.
        with self._store.read() as session:
            calendar = calendars.calendar_by_path(session, owner_login, slug)
            if calendar is None or calendar.tag != "VCALENDAR":
                return None
            zone = calendar.timezone
        try:
            described = _describe(parsed, zone)
        except expand.ExpansionError:
            return None  # nothing written: Radicale's checks give the reason
        location = f"{href_prefix}/{owner_login}/{slug}/{href}"
        with self._store.write() as session:
            calendars.lock_for_write(session, [(owner_login, slug)])
            calendar = calendars.calendar_by_path(session, owner_login, slug)
            if calendar is None or calendar.tag != "VCALENDAR":
                return None
            if calendar.timezone != zone:  # the calendar's zone changed in between: expand again
                try:
                    described = _describe(parsed, calendar.timezone)
                except expand.ExpansionError:
                    return None
            current = items.by_href(session, calendar.id, href)
            refused = _precondition_refusal(headers, current.etag if current is not None else None)
            if refused is not None:
                return refused
            if current is not None and current.origin == writers.BOOKING_ORIGIN and self._booking_edits is not None:
                return self._booking_edits.put(session, calendar, current, parsed, location)
            try:
                writers.check(writers.CLIENT, href, current.origin if current is not None else None)
            except ItemRefused as exc:
                return refusal_of(exc, "PUT", location)
            holder = current.href if current is not None and current.uid == parsed.uid \
                else items.href_of_uid(session, calendar.id, parsed.uid)
            if holder is not None and holder != href or current is not None and current.uid != parsed.uid:
                return xml_answer(409, _NO_UID_CONFLICT)
            return self._store_object(session, calendar, href, parsed, described, current)

    def _store_object(self, session: Session, calendar: Calendar, href: str, parsed: CalendarObject,
                      described: EventFacts, current: Item | None) -> Answer:
        etag = items.etag_of(parsed.text)
        items.write_checked(session, calendar, items.NewItem(
            href=href, uid=parsed.uid, etag=etag, text=parsed.text, facts=described.facts,
            occurrences=described.instances, occurrences_until=described.instances_until), writers.CLIENT, current)
        changes.prune_now_and_then(session, calendar, self._settings.sync_token_max_age_days, datetime.now(UTC))
        return Answer(204 if current is not None else 201, [(b"ETag", etag.encode())])


def _describe(parsed: CalendarObject, timezone: str) -> EventFacts:
    """Index columns and stored instances of the object; raises expand.ExpansionError."""
    return facts_of(parsed.calendar, zoneinfo.ZoneInfo(timezone), datetime.now(UTC))


def _precondition_refusal(headers: dict[str, str], current_etag: str | None) -> Answer | None:
    """If-Match / If-None-Match as Radicale applies them (RFC 9110 §13.1)."""
    if_match = headers.get("if-match", "")
    if if_match and (current_etag is None or if_match not in ("*", current_etag)):
        return Answer(412, [(b"Content-Type", b"text/plain; charset=utf-8")], b"Precondition failed.")
    if headers.get("if-none-match", "") == "*" and current_etag is not None:
        return Answer(412, [(b"Content-Type", b"text/plain; charset=utf-8")], b"Precondition failed.")
    return None
