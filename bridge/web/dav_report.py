"""CalDAV free-busy-query (RFC 4791 §7.10), answered by the /dav gate from bridge.freebusy.

Why not Radicale: its answer walks each item with vobject (refusing RDATE;VALUE=PERIOD,
missing RANGE=THISANDFUTURE and several RRULEs) and costs O(series × expansion); the JSON
API and this report must give the same busy time. The gate declines (None) whatever is
not a plain free-busy-query on a calendar it may read, and Radicale answers that.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from xml.etree import ElementTree as ET

import defusedxml.ElementTree

from bridge import freebusy, periods
from bridge.settings import Settings
from bridge.storage_plugin.auth import SqlAuth
from bridge.storage_plugin.rights import SqlRights
from bridge.store import calendars, users
from bridge.store.db import Store
from bridge.web.dav_access import authenticated, may, segments
from bridge.web.dav_answer import Answer

CALDAV = "urn:ietf:params:xml:ns:caldav"
_STAMP = "%Y%m%dT%H%M%SZ"
_ORDER = {"BUSY-UNAVAILABLE": 0, "BUSY": 1, "BUSY-TENTATIVE": 2}



class FreeBusyReport:
    def __init__(self, store: Store, settings: Settings, auth: SqlAuth, rights: SqlRights) -> None:
        self._store = store
        self._settings = settings
        self._auth = auth
        self._rights = rights

    def answer(self, path: str, headers: dict[str, str], body: bytes, now: datetime | None = None) -> Answer | None:
        window = _window(body)
        parts = segments(path, 2, trailing_slash=None)
        if window is None or parts is None:
            return None
        login = authenticated(self._auth, headers)
        owner_login, slug = parts
        if login is None or not may(self._rights, login, owner_login, slug, "r"):
            return None
        start, end = window
        if end - start > timedelta(days=self._settings.max_query_window_days):
            return None  # as long as the API allows; Radicale answers longer ones with its own limits
        with self._store.read() as session:
            owner = users.user_by_login(session, owner_login)
            calendar = calendars.calendar_of(session, owner.id, slug) if owner is not None else None
            if calendar is None or calendar.tag != "VCALENDAR":
                return None
            busy = freebusy.busy_periods(session, [calendar], start, end)[calendar.id]
        text = render(busy, start, end, now or datetime.now(UTC))
        return Answer(200, [(b"Content-Type", b"text/calendar; charset=utf-8")], text.encode())


def _window(body: bytes) -> tuple[datetime, datetime] | None:
    """The time range of a free-busy-query with both bounds, else None."""
    try:
        root = defusedxml.ElementTree.fromstring(body, forbid_dtd=True, forbid_entities=True)
    except (ET.ParseError, defusedxml.DefusedXmlException):
        return None
    if root.tag != f"{{{CALDAV}}}free-busy-query":
        return None
    element = root.find(f"{{{CALDAV}}}time-range")
    if element is None:
        return None
    try:
        start = datetime.strptime(element.get("start", ""), _STAMP).replace(tzinfo=UTC)
        end = datetime.strptime(element.get("end", ""), _STAMP).replace(tzinfo=UTC)
    except ValueError:
        return None
    return (start, end) if start < end else None


def render(busy: list[freebusy.BusyPeriod], start: datetime, end: datetime, now: datetime) -> str:
    """A VFREEBUSY with the busy time merged per FBTYPE (RFC 5545 §3.6.4), in UTC."""
    by_type: dict[str, list[tuple[datetime, datetime]]] = {}
    for period in busy:
        by_type.setdefault(period.busy, []).append((period.start, period.end))
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//calbridge//free-busy//EN", "BEGIN:VFREEBUSY",
             f"DTSTAMP:{now.astimezone(UTC):{_STAMP}}", f"DTSTART:{start:{_STAMP}}", f"DTEND:{end:{_STAMP}}"]
    merged = [(first, last, fbtype) for fbtype, spans in by_type.items() for first, last in periods.merge(spans)]
    for first, last, fbtype in sorted(merged, key=lambda p: (p[0], _ORDER.get(p[2], 9))):
        lines.append(f"FREEBUSY;FBTYPE={fbtype}:{first:{_STAMP}}/{last:{_STAMP}}")
    lines += ["END:VFREEBUSY", "END:VCALENDAR"]
    return "\r\n".join(lines) + "\r\n"
