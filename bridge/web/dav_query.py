"""CalDAV calendar-query with ``expand`` (RFC 4791 §9.6.5), answered by the /dav gate.

Why: Radicale expands with vobject, which refuses RDATE;VALUE=PERIOD, ignores
RANGE=THISANDFUTURE and reads floating times as UTC, and it first drops the time-range
filter so that it reads every item of the calendar. Here the time range selects rows
through the span index and ``bridge.expand`` writes the instances. The gate takes only
the plain form clients send (getetag and calendar-data with expand, one time range on
VEVENT) and declines the rest, which Radicale answers as before.
"""

from __future__ import annotations

import io
import posixpath
import zoneinfo
from datetime import UTC, datetime
from xml.etree import ElementTree as ET

import defusedxml.ElementTree
from radicale import xmlutils

from bridge import expand
from bridge.ical.zones import parse_calendar
from bridge.storage_plugin.auth import SqlAuth
from bridge.storage_plugin.rights import SqlRights
from bridge.store import calendars, items, users
from bridge.store.db import Store
from bridge.web.dav_access import authenticated, may, segments
from bridge.web.dav_answer import Answer

_STAMP = "%Y%m%dT%H%M%SZ"
_C = "{urn:ietf:params:xml:ns:caldav}"
_D = "{DAV:}"
MAX_INSTANCES = 10_000  # per request, as Radicale's max_expand_occurrence guards against


class ExpandQuery:
    def __init__(self, store: Store, auth: SqlAuth, rights: SqlRights) -> None:
        self._store = store
        self._auth = auth
        self._rights = rights

    def answer(self, path: str, headers: dict[str, str], body: bytes, href_prefix: str) -> Answer | None:
        request = _parse(body)
        parts = segments(path, 2, trailing_slash=None)
        if request is None or parts is None or headers.get("depth", "1") != "1":
            return None
        login = authenticated(self._auth, headers)
        owner_login, slug = parts
        if login is None or not may(self._rights, login, owner_login, slug, "r"):
            return None
        (start, end), (expand_start, expand_end), wanted = request
        with self._store.read() as session:
            owner = users.user_by_login(session, owner_login)
            calendar = calendars.calendar_of(session, owner.id, slug) if owner is not None else None
            if calendar is None or calendar.tag != "VCALENDAR":
                return None
            zone = zoneinfo.ZoneInfo(calendar.timezone)
            rows = items.overlapping(session, calendar.id, start, end, "VEVENT")
        multistatus = ET.Element(_D + "multistatus")
        budget = MAX_INSTANCES
        for row in sorted(rows, key=lambda r: r.href):
            try:
                resource = parse_calendar(row.text)
                if not expand.instances(resource, zone, start, end, max_instances=budget):
                    continue
                expanded = expand.expanded_components(resource, zone, expand_start, expand_end,
                                                      max_instances=budget)
            except expand.TooManyInstances:
                return Answer(403, [(b"Content-Type", b"text/xml; charset=utf-8")],
                              _xml(xmlutils.webdav_error("C:expand")))
            except ValueError:
                return None  # stored text this engine cannot read: Radicale answers
            events = [c for c in expanded.subcomponents if c.name == "VEVENT"]
            if not events:
                continue
            budget -= len(events)
            multistatus.append(_response(href_prefix, f"/{owner_login}/{slug}/{row.href}", row.etag,
                                         expanded.to_ical().decode(), wanted))
        return Answer(207, [(b"Content-Type", b"text/xml; charset=utf-8")], _xml(multistatus))


Window = tuple[datetime, datetime]


def _parse(body: bytes) -> tuple[Window, Window, list[str]] | None:
    """(filter window, expand window, wanted props) of a plain calendar-query with expand."""
    try:
        root = defusedxml.ElementTree.fromstring(body, forbid_dtd=True, forbid_entities=True)
    except (ET.ParseError, defusedxml.DefusedXmlException):
        return None
    if root.tag != _C + "calendar-query":
        return None
    prop = root.find(_D + "prop")
    data = prop.find(_C + "calendar-data") if prop is not None else None
    if prop is None or data is None or any(p.tag not in (_D + "getetag", _C + "calendar-data") for p in prop):
        return None
    expand_element = data.find(_C + "expand")
    if expand_element is None or len(data) != 1 or (data.text or "").strip():
        return None
    filters = root.findall(_C + "filter")
    if len(filters) != 1 or len(filters[0]) != 1:
        return None
    outer = filters[0][0]
    if outer.tag != _C + "comp-filter" or outer.get("name", "").upper() != "VCALENDAR" or len(outer) != 1:
        return None
    inner = outer[0]
    if inner.tag != _C + "comp-filter" or inner.get("name", "").upper() != "VEVENT" or len(inner) != 1:
        return None
    time_range = inner[0]
    if time_range.tag != _C + "time-range":
        return None
    window, expand_window = _range(time_range), _range(expand_element)
    if window is None or expand_window is None:
        return None
    return window, expand_window, [p.tag for p in prop]


def _range(element: ET.Element) -> Window | None:
    try:
        start = datetime.strptime(element.get("start", ""), _STAMP).replace(tzinfo=UTC)
        end = datetime.strptime(element.get("end", ""), _STAMP).replace(tzinfo=UTC)
    except ValueError:
        return None
    return (start, end) if start < end else None


def _response(href_prefix: str, path: str, etag: str, text: str, wanted: list[str]) -> ET.Element:
    response = ET.Element(_D + "response")
    ET.SubElement(response, _D + "href").text = xmlutils.make_href(href_prefix, posixpath.normpath(path))
    propstat = ET.SubElement(response, _D + "propstat")
    found = ET.SubElement(propstat, _D + "prop")
    for tag in wanted:
        ET.SubElement(found, tag).text = etag if tag == _D + "getetag" else text
    ET.SubElement(propstat, _D + "status").text = xmlutils.make_response(200)
    return response


def _xml(element: ET.Element) -> bytes:
    buffer = io.BytesIO()
    ET.ElementTree(element).write(buffer, encoding="utf-8", xml_declaration=True)
    return buffer.getvalue()
