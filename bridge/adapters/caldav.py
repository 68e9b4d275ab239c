"""Any CalDAV server (RFC 4791, RFC 6578 sync-collection), plus the iCloud preset.

Discovery follows RFC 6764: ``/.well-known/caldav`` (redirects followed), then
DAV:current-user-principal, CALDAV:calendar-home-set and a Depth 1 listing of the home.

Fetching. A full fetch (state None) reads the collection's DAV:sync-token or CS:getctag
*first* (a sync-collection with an empty token when the server has sync-collection but no
DAV:sync-token property) and then asks one calendar-query REPORT for the window's VEVENTs with getetag and
calendar-data together: the window bounds the answer, and etags-then-multiget would double
the round trips for no gain. A change made between the two reads is simply seen again by
the next incremental fetch (the engine applies changes idempotently).

Incremental fetches take one of two paths, chosen at the full fetch and recorded in the
state, so a later adapter never has to probe the server again:

* ``{"v":1,"t":<sync-token>}``: one sync-collection REPORT (getetag only), looping while
  the server truncates (507); changed hrefs are read with calendar-multiget in batches,
  404s are deletions. An unknown token (403/409/412 with DAV:valid-sync-token, or 410)
  raises TokenInvalid.
* ``{"v":1,"c":<ctag>,"e":{<href relative to the collection>:<etag>}}`` for servers
  without sync-collection: a Depth 0 PROPFIND of CS:getctag; unchanged means nothing
  else is asked. Otherwise a Depth 1 getetag listing is compared with the map (which
  covers the whole collection, not only the window, so an href missing from the listing
  is a real deletion) and what differs is read with calendar-multiget.

Either way a no-change cycle is exactly one upstream request. Incremental deltas are not
window-filtered: an event moved out of the window shows up as changed, and the engine
knows that leaving the window is no deletion. Resources that hold no VEVENT (tasks) are
reported as deleted, which is a no-op for hrefs the engine never mapped.

remote_id is the resource's href path in one canonical percent-encoding.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar
from urllib.parse import quote, unquote, urljoin, urlsplit
from xml.etree import ElementTree as ET

import defusedxml
import defusedxml.ElementTree
import httpx
import icalendar

from bridge.adapters.base import (
    Delta,
    Permanent,
    RateLimited,
    RemoteCalendar,
    RemoteEvent,
    RemoteNotFound,
    TokenInvalid,
    Window,
    retry_after_seconds,
)
from bridge.adapters.http import status_error, transport_error
from bridge.ical.zones import parse_calendar

log = logging.getLogger(__name__)

DAV = "DAV:"
CALDAV = "urn:ietf:params:xml:ns:caldav"
CS = "http://calendarserver.org/ns/"

_HREF = f"{{{DAV}}}href"
_GETETAG = f"{{{DAV}}}getetag"
_SYNC_TOKEN = f"{{{DAV}}}sync-token"
_GETCTAG = f"{{{CS}}}getctag"
_RESOURCETYPE = f"{{{DAV}}}resourcetype"
_CALENDAR_DATA = f"{{{CALDAV}}}calendar-data"
_CURRENT_USER_PRINCIPAL = f"{{{DAV}}}current-user-principal"
_CALENDAR_HOME_SET = f"{{{CALDAV}}}calendar-home-set"
_SUPPORTED_REPORT_SET = f"{{{DAV}}}supported-report-set"
_CALENDAR_PROPS = (
    _RESOURCETYPE,
    f"{{{DAV}}}displayname",
    f"{{{CALDAV}}}calendar-timezone",
    f"{{{CALDAV}}}calendar-timezone-id",
    f"{{{CALDAV}}}supported-calendar-component-set",
    f"{{{DAV}}}current-user-privilege-set",
)
_WRITE_PRIVILEGES = {f"{{{DAV}}}all", f"{{{DAV}}}write", f"{{{DAV}}}write-content"}
_XML = {"Content-Type": "application/xml; charset=utf-8"}  # Xandikos refuses PROPFIND/REPORT without it
_ICS = "text/calendar; charset=utf-8"
_SAFE = "/:@!$&'()*+,;=-._~"
_PLAIN_NAME = re.compile(r"[A-Za-z0-9@._-]{1,200}")
_MAX_SYNC_ROUNDS = 50
_DEFAULT_RETRY_AFTER = 60.0


@dataclass(frozen=True)
class Quirks:
    """How one provider's CalDAV differs from the RFCs (cf. python-caldav compatibility hints)."""

    sync_timezone: str | None = None  # floating times from this provider are read in this zone
    multiget_batch: int = 100  # hrefs per calendar-multiget
    sync_collection: bool = True  # False: ignore an advertised but unreliable sync-collection


QUIRKS: Mapping[str, Quirks] = {
    "caldav": Quirks(),
    # iCloud stores floating times as if they were UTC; it also answers a Depth 1 PROPFIND
    # on the principal with 400, which discovery never sends.
    "icloud": Quirks(sync_timezone="UTC"),
}


# -- errors -------------------------------------------------------------------------------

class _Refused(Exception):
    """An HTTP status the caller did not accept (from the status line, or a DAV:response
    about the request URL itself); ``_map_errors`` translates it."""

    def __init__(self, status: int, headers: httpx.Headers | None = None, content: bytes = b"") -> None:
        super().__init__(status)
        self.status = status
        self.headers = headers or httpx.Headers()
        self.content = content


@contextmanager
def _map_errors(what: str, *, sync_token: bool = False) -> Iterator[None]:
    """The one place where httpx failures and HTTP statuses become the base error tree.

    Messages name the operation and the status only: never a URL (it may carry
    credentials), a body or event content.
    """
    try:
        yield
    except _Refused as refused:
        status = refused.status
        message = f"{what}: HTTP {status}"
        if sync_token and (status == 410 or (status in (403, 409, 412) and b"valid-sync-token" in refused.content)):
            raise TokenInvalid(message) from None
        if status in (429, 503):
            retry_after = retry_after_seconds(refused.headers.get("Retry-After"))
            if retry_after is not None:
                raise RateLimited(message, retry_after) from None
            if status == 429:
                raise RateLimited(message, _DEFAULT_RETRY_AFTER) from None
        if status == 403 and b"need-privileges" in refused.content:  # a read-only calendar, not a revoked login
            raise Permanent(message) from None
        raise status_error(message, status, auth=(401, 403)) from None
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise transport_error(what, exc) from None



# -- XML ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Response:
    """One DAV:response of a multistatus: its href, its own status, and its found props."""

    href: str
    status: int | None
    props: dict[str, ET.Element]


def _canonical(href: str, base: str) -> str:
    """The path of ``href`` in one percent-encoding, so hrefs from different answers compare."""
    return quote(unquote(urlsplit(urljoin(base, href.strip())).path), safe=_SAFE)


def _status(text: str | None) -> int | None:
    parts = (text or "").split()
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None


def _parse(response: httpx.Response, what: str) -> ET.Element:
    try:
        root: ET.Element = defusedxml.ElementTree.fromstring(response.content, forbid_dtd=True,
                                                             forbid_entities=True, forbid_external=True)
    except (ET.ParseError, defusedxml.DefusedXmlException):
        raise Permanent(f"{what}: the server's XML answer is malformed") from None
    return root


def _responses(root: ET.Element, base: str) -> list[_Response]:
    found = []
    for element in root.iter(f"{{{DAV}}}response"):
        href = element.findtext(_HREF)
        if href is None:
            continue
        props: dict[str, ET.Element] = {}
        for propstat in element.findall(f"{{{DAV}}}propstat"):
            if _status(propstat.findtext(f"{{{DAV}}}status")) != 200:
                continue
            prop = propstat.find(f"{{{DAV}}}prop")
            for child in prop if prop is not None else ():
                props[child.tag] = child
        found.append(_Response(_canonical(href, base), _status(element.findtext(f"{{{DAV}}}status")), props))
    return found


def _text(response: _Response, tag: str) -> str | None:
    element = response.props.get(tag)
    if element is None or element.text is None:
        return None
    return element.text.strip() or None


def _body(root_tag: str, props: Iterable[str], *, children: Iterable[ET.Element] = ()) -> bytes:
    root = ET.Element(root_tag)
    prop = ET.SubElement(root, f"{{{DAV}}}prop")
    for tag in props:
        ET.SubElement(prop, tag)
    root.extend(children)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _propfind_body(props: Iterable[str]) -> bytes:
    return _body(f"{{{DAV}}}propfind", props)


def _query_body(window: Window) -> bytes:
    vcalendar = ET.Element(f"{{{CALDAV}}}filter")
    comp = ET.SubElement(vcalendar, f"{{{CALDAV}}}comp-filter", name="VCALENDAR")
    vevent = ET.SubElement(comp, f"{{{CALDAV}}}comp-filter", name="VEVENT")
    ET.SubElement(vevent, f"{{{CALDAV}}}time-range", start=_stamp(window.start), end=_stamp(window.end))
    return _body(f"{{{CALDAV}}}calendar-query", (_GETETAG, _CALENDAR_DATA), children=[vcalendar])


def _multiget_body(hrefs: Iterable[str]) -> bytes:
    elements = []
    for href in hrefs:
        element = ET.Element(_HREF)
        element.text = href
        elements.append(element)
    return _body(f"{{{CALDAV}}}calendar-multiget", (_GETETAG, _CALENDAR_DATA), children=elements)


def _sync_body(token: str) -> bytes:
    root = ET.Element(f"{{{DAV}}}sync-collection")
    ET.SubElement(root, _SYNC_TOKEN).text = token
    ET.SubElement(root, f"{{{DAV}}}sync-level").text = "1"
    ET.SubElement(ET.SubElement(root, f"{{{DAV}}}prop"), _GETETAG)
    return ET.tostring(root, encoding="utf-8", xml_declaration=True)


def _stamp(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


# -- state --------------------------------------------------------------------------------

@dataclass(frozen=True)
class _State:
    """What the next fetch needs: a sync token, or a ctag with the collection's etags."""

    token: str | None = None
    ctag: str | None = None
    etags: dict[str, str] | None = None

    def encode(self) -> str:
        data: dict[str, object] = {"v": 1}
        if self.token is not None:
            data["t"] = self.token
        else:
            data["c"] = self.ctag
            data["e"] = self.etags or {}
        return json.dumps(data, separators=(",", ":"), sort_keys=True)

    @classmethod
    def decode(cls, text: str) -> _State:
        try:
            data = json.loads(text)
        except ValueError:
            raise TokenInvalid("the saved CalDAV state is not readable") from None
        if not isinstance(data, dict) or data.get("v") != 1:
            raise TokenInvalid("the saved CalDAV state has an unknown format")
        token, ctag, etags = data.get("t"), data.get("c"), data.get("e")
        if isinstance(token, str) and token:
            return cls(token=token)
        if (ctag is None or isinstance(ctag, str)) and isinstance(etags, dict) \
                and all(isinstance(k, str) and isinstance(v, str) for k, v in etags.items()):
            return cls(ctag=ctag, etags=etags)
        raise TokenInvalid("the saved CalDAV state has an unknown format")


# -- the adapter ----------------------------------------------------------------------------

class CalDavAdapter:
    """One calendar collection on a CalDAV server (and discovery of the account's others).

    ``url`` is where discovery starts (a host or any URL of the account); ``calendar_url``
    is the collection to sync (a ``RemoteCalendar.id``), ``url`` itself when not given.
    ``sync_collection=False`` forces the ctag path; ``quirks`` overrides the provider's row.
    The injected client belongs to the caller, who closes it.
    """

    provider: ClassVar[str] = "caldav"
    read_only: ClassVar[bool] = False
    SYNC_TIMEZONE: ClassVar[str | None] = QUIRKS["caldav"].sync_timezone

    def __init__(self, client: httpx.Client, url: str, *, calendar_url: str | None = None,
                 auth: httpx.Auth | None = None, sync_collection: bool | None = None,
                 quirks: Quirks | None = None) -> None:
        self._client = client
        self._url = url
        self._calendar = _collection(calendar_url or url)
        self._path = _canonical(self._calendar, self._calendar)
        self._auth = auth
        self._quirks = quirks or QUIRKS[self.provider]
        self._use_sync = self._quirks.sync_collection if sync_collection is None else sync_collection
        self._requests = 0

    @property
    def requests_made(self) -> int:
        return self._requests

    def close(self) -> None:
        """Nothing to release: the injected client is closed by whoever built it."""

    # -- HTTP --------------------------------------------------------------------------------

    def _send(self, method: str, url: str, what: str, *, headers: Mapping[str, str] | None = None,
              content: bytes | None = None, accept: Iterable[int] = (), follow: bool = False,
              sync_token: bool = False) -> httpx.Response:
        """One upstream request (redirects counted too); statuses not in ``accept`` raise."""
        with _map_errors(what, sync_token=sync_token):
            response: httpx.Response | None = None
            try:
                response = self._client.request(
                    method, url, headers=headers, content=content, follow_redirects=follow,
                    auth=self._auth if self._auth is not None else httpx.USE_CLIENT_DEFAULT)
            finally:
                self._requests += 1 + (len(response.history) if response is not None else 0)
            if response.status_code >= 300 and response.status_code not in accept:
                raise _Refused(response.status_code, response.headers, response.content)
        return response

    def _propfind(self, url: str, props: Iterable[str], depth: int, what: str, *,
                  follow: bool = False) -> tuple[list[_Response], str]:
        headers = {**_XML, "Depth": str(depth)}
        response = self._send("PROPFIND", url, what, headers=headers, content=_propfind_body(props), follow=follow)
        base = str(response.url)
        responses = _responses(_parse(response, what), base)
        target = _canonical(base, base).rstrip("/")
        for answer in responses:
            # Xandikos answers a PROPFIND of a missing resource with 207 and a 404 inside:
            # left alone, a vanished calendar would list as empty (every event deleted).
            if answer.href.rstrip("/") == target and answer.status is not None and answer.status >= 300:
                with _map_errors(what):
                    raise _Refused(answer.status)
        return responses, base

    def _report(self, body: bytes, depth: int, what: str, *, sync_token: bool = False) -> ET.Element:
        response = self._send("REPORT", self._calendar, what, headers={**_XML, "Depth": str(depth)},
                              content=body, sync_token=sync_token)
        return _parse(response, what)

    # -- discovery ---------------------------------------------------------------------------

    def list_calendars(self) -> list[RemoteCalendar]:
        principal = self._principal()
        homes, base = self._hrefs(principal, _CALENDAR_HOME_SET, "find the calendar home")
        found: list[RemoteCalendar] = []
        for home in [urljoin(base, href) for href in homes] or [principal]:
            found.extend(self._calendars_in(home))
        return found

    def _principal(self) -> str:
        """The principal URL from current-user-principal, trying the well-known URI first for
        a bare host, the given URL first otherwise; the URL itself for servers without it."""
        well_known = urljoin(self._url, "/.well-known/caldav")
        starts = [well_known, self._url] if urlsplit(self._url).path in ("", "/") else [self._url, well_known]
        for start in starts:
            try:
                hrefs, base = self._hrefs(start, _CURRENT_USER_PRINCIPAL, "find the principal", follow=True)
            except (RemoteNotFound, Permanent):
                continue
            if hrefs:
                return urljoin(base, hrefs[0])
        return self._url

    def _hrefs(self, url: str, prop: str, what: str, *, follow: bool = False) -> tuple[list[str], str]:
        responses, base = self._propfind(url, [prop], 0, what, follow=follow)
        hrefs = [h.text.strip() for r in responses if prop in r.props
                 for h in r.props[prop].iter(_HREF) if h.text and h.text.strip()]
        return hrefs, base

    def _calendars_in(self, home: str) -> list[RemoteCalendar]:
        responses, base = self._propfind(home, _CALENDAR_PROPS, 1, "list calendars")
        calendars = []
        for response in responses:
            kinds = response.props.get(_RESOURCETYPE)
            if kinds is None or kinds.find(f"{{{CALDAV}}}calendar") is None:
                continue
            components = response.props.get(f"{{{CALDAV}}}supported-calendar-component-set")
            if components is not None and "VEVENT" not in {c.get("name", "").upper() for c in components}:
                continue
            privileges = response.props.get(f"{{{DAV}}}current-user-privilege-set")
            read_only = privileges is not None and not any(p.tag in _WRITE_PRIVILEGES for p in privileges.iter())
            name = _text(response, f"{{{DAV}}}displayname") or unquote(response.href.rstrip("/").rsplit("/", 1)[-1])
            calendars.append(RemoteCalendar(id=urljoin(base, response.href), name=name,
                                            timezone=_timezone(response), read_only=read_only))
        return calendars

    # -- fetch -------------------------------------------------------------------------------

    def fetch(self, state: str | None, window: Window) -> Delta:
        if state is None:
            return self._fetch_all(window)
        saved = _State.decode(state)
        if saved.token is not None:
            if not self._use_sync:
                raise TokenInvalid("sync-collection is turned off for this server")
            return self._fetch_sync(saved.token)
        return self._fetch_ctag(saved)

    def _fetch_all(self, window: Window) -> Delta:
        probe = self._collection_props([_SUPPORTED_REPORT_SET, _SYNC_TOKEN, _GETCTAG], 0, "read the calendar")
        use_sync = self._use_sync and _has_sync_report(probe)
        token = _text(probe, _SYNC_TOKEN)
        if use_sync and token is None:  # no DAV:sync-token property: an initial sync-collection names it
            root = self._report(_sync_body(""), 0, "read the sync token", sync_token=True)
            token = (root.findtext(_SYNC_TOKEN) or "").strip() or None
            use_sync = token is not None
        root = self._report(_query_body(window), 1, "query the window")
        events = [_event(response, calendar) for response in _responses(root, self._calendar)
                  if (calendar := _calendar_data(response)) is not None and calendar.walk("VEVENT")]
        if use_sync:
            state = _State(token=token)
        else:
            state = _State(ctag=_text(probe, _GETCTAG), etags=self._relative(self._listing()))
        return Delta(changed=events, deleted=[], state=state.encode(), complete=True)

    def _fetch_sync(self, token: str) -> Delta:
        changed: dict[str, str] = {}
        deleted: set[str] = set()
        for _ in range(_MAX_SYNC_ROUNDS):
            root = self._report(_sync_body(token), 0, "sync the calendar", sync_token=True)
            truncated = False
            for response in _responses(root, self._calendar):
                if self._is_collection(response.href):
                    truncated = truncated or response.status == 507
                elif response.status in (404, 410):
                    deleted.add(response.href)
                    changed.pop(response.href, None)
                else:
                    changed[response.href] = _text(response, _GETETAG) or ""
                    deleted.discard(response.href)
            token = (root.findtext(_SYNC_TOKEN) or "").strip() or token
            if not truncated:
                break
        events, gone, tasks = self._multiget(changed)
        deleted |= gone | tasks
        return Delta(changed=list(events.values()), deleted=sorted(deleted),
                     state=_State(token=token).encode(), complete=False)

    def _fetch_ctag(self, saved: _State) -> Delta:
        ctag = saved.ctag
        if ctag is not None:
            ctag = _text(self._collection_props([_GETCTAG], 0, "read the calendar's ctag"), _GETCTAG)
            if ctag == saved.ctag:
                return Delta(changed=[], deleted=[], state=saved.encode(), complete=False)
        before = self._absolute(saved.etags or {})
        now = self._listing()
        todo = {href for href, etag in now.items() if before.get(href) != etag}
        events, gone, tasks = self._multiget(sorted(todo))
        # Unchanged hrefs and tasks keep their listed etag; read events keep the etag read
        # with them; an href the multiget left out stays out, so the next change reads it again.
        etags = {href: etag for href, etag in now.items() if href not in todo or href in tasks}
        etags.update({href: event.etag for href, event in events.items()})
        deleted = (before.keys() - now.keys()) | gone | tasks
        return Delta(changed=list(events.values()), deleted=sorted(deleted),
                     state=_State(ctag=ctag, etags=self._relative(etags)).encode(), complete=False)

    def _collection_props(self, props: list[str], depth: int, what: str) -> _Response:
        responses, _ = self._propfind(self._calendar, props, depth, what)
        for response in responses:
            if self._is_collection(response.href):
                return response
        raise Permanent(f"{what}: the server did not describe the calendar")

    def _listing(self) -> dict[str, str]:
        """Every member resource of the collection with its etag (Depth 1 PROPFIND)."""
        responses, _ = self._propfind(self._calendar, [_GETETAG, _RESOURCETYPE], 1, "list the calendar")
        listing = {}
        for response in responses:
            kinds = response.props.get(_RESOURCETYPE)
            if self._is_collection(response.href) or (kinds is not None and len(kinds)):
                continue
            etag = _text(response, _GETETAG)
            if etag is not None:
                listing[response.href] = etag
        return listing

    def _multiget(self, hrefs: Iterable[str]) -> tuple[dict[str, RemoteEvent], set[str], set[str]]:
        """The events at ``hrefs``, the hrefs that are gone, and those that hold no VEVENT."""
        todo = list(hrefs)
        events: dict[str, RemoteEvent] = {}
        gone: set[str] = set()
        tasks: set[str] = set()
        size = max(1, self._quirks.multiget_batch)
        for start in range(0, len(todo), size):
            root = self._report(_multiget_body(todo[start:start + size]), 1, "read changed events")
            for response in _responses(root, self._calendar):
                calendar = _calendar_data(response)
                if response.status in (404, 410):
                    gone.add(response.href)
                elif calendar is not None and calendar.walk("VEVENT"):
                    events[response.href] = _event(response, calendar)
                elif calendar is not None:
                    tasks.add(response.href)
        return events, gone, tasks

    def _is_collection(self, href: str) -> bool:
        return href.rstrip("/") == self._path.rstrip("/")

    def _relative(self, etags: Mapping[str, str]) -> dict[str, str]:
        """Hrefs without the collection prefix, to keep the state short."""
        return {href.removeprefix(self._path) if href.startswith(self._path) else href: etag
                for href, etag in etags.items()}

    def _absolute(self, etags: Mapping[str, str]) -> dict[str, str]:
        return {href if href.startswith("/") else self._path + href: etag for href, etag in etags.items()}

    # -- writes ------------------------------------------------------------------------------

    def create(self, event: icalendar.Calendar, key: str) -> RemoteEvent:
        """PUT under a name derived from ``key`` with If-None-Match: *, so a retry after a
        crash finds the first attempt (412) instead of creating a duplicate."""
        href = self._path + _resource_name(key) + ".ics"
        url = urljoin(self._calendar, href)
        response = self._send("PUT", url, "create an event", content=event.to_ical(),
                              headers={"Content-Type": _ICS, "If-None-Match": "*"}, accept=(412,))
        if response.status_code == 412:
            existing = self._get(href)
            if _uids(existing.calendar) != _uids(event):
                raise Permanent("create an event: the name is taken by another event")
            return existing
        return RemoteEvent(remote_id=href, etag=self._etag_of(response, url), calendar=event, key=_key_of(href))

    def update(self, remote_id: str, etag: str, event: icalendar.Calendar) -> RemoteEvent:
        url = urljoin(self._calendar, remote_id)
        response = self._send("PUT", url, "update an event", content=event.to_ical(),
                              headers={"Content-Type": _ICS, "If-Match": etag})
        return RemoteEvent(remote_id=remote_id, etag=self._etag_of(response, url), calendar=event,
                           key=_key_of(remote_id))

    def delete(self, remote_id: str, etag: str | None) -> None:
        headers = {"If-Match": etag} if etag else {}
        self._send("DELETE", urljoin(self._calendar, remote_id), "delete an event", headers=headers,
                   accept=(404, 410))

    def _get(self, href: str) -> RemoteEvent:
        response = self._send("GET", urljoin(self._calendar, href), "read an event")
        try:
            calendar = parse_calendar(response.content)
        except ValueError:
            raise Permanent("read an event: not valid iCalendar") from None
        url = urljoin(self._calendar, href)
        return RemoteEvent(remote_id=href, etag=self._etag_of(response, url), calendar=calendar, key=_key_of(href))

    def _etag_of(self, response: httpx.Response, url: str) -> str:
        """The ETag header, else (servers that rewrite what was PUT) a PROPFIND getetag."""
        etag = response.headers.get("ETag")
        if etag:
            return etag
        responses, _ = self._propfind(url, [_GETETAG], 0, "read an event's etag")
        for answer in responses:
            if (found := _text(answer, _GETETAG)) is not None:
                return found
        raise Permanent("read an event's etag: the server gave none")


class ICloudAdapter(CalDavAdapter):
    """iCloud: plain CalDAV behind an app-specific password, floating times read as UTC."""

    provider: ClassVar[str] = "icloud"
    SYNC_TIMEZONE: ClassVar[str | None] = QUIRKS["icloud"].sync_timezone


ICLOUD_URL = "https://caldav.icloud.com"


def icloud_adapter(client: httpx.Client, apple_id: str, app_password: str, *,
                   calendar_url: str | None = None) -> ICloudAdapter:
    """The iCloud preset: discovery from caldav.icloud.com with an app-specific password."""
    return ICloudAdapter(client, ICLOUD_URL, calendar_url=calendar_url, auth=httpx.BasicAuth(apple_id, app_password))


# -- helpers ------------------------------------------------------------------------------

def _collection(url: str) -> str:
    return url if url.endswith("/") else url + "/"


def _has_sync_report(response: _Response) -> bool:
    reports = response.props.get(_SUPPORTED_REPORT_SET)
    return reports is not None and reports.find(f".//{{{DAV}}}sync-collection") is not None


def _timezone(response: _Response) -> str | None:
    """The calendar's zone: calendar-timezone-id (RFC 7809), else the VTIMEZONE's TZID."""
    if (tzid := _text(response, f"{{{CALDAV}}}calendar-timezone-id")) is not None:
        return tzid
    text = _text(response, f"{{{CALDAV}}}calendar-timezone")
    if text is None:
        return None
    try:
        zones = parse_calendar(text).walk("VTIMEZONE")
    except ValueError:
        return None
    return str(zones[0]["TZID"]) if zones and "TZID" in zones[0] else None


def _calendar_data(response: _Response) -> icalendar.Calendar | None:
    """The parsed calendar-data of one answer; None when missing or not iCalendar (logged)."""
    data = response.props.get(_CALENDAR_DATA)
    if data is None or not data.text:
        return None
    try:
        return parse_calendar(data.text)
    except ValueError:
        log.warning("skipped a remote resource that is not valid iCalendar")
        return None


def _event(response: _Response, calendar: icalendar.Calendar) -> RemoteEvent:
    return RemoteEvent(remote_id=response.href, etag=_text(response, _GETETAG) or "", calendar=calendar,
                       key=_key_of(response.href))


def _key_of(href: str) -> str:
    """The resource name without ``.ics``: the key of an event :meth:`CalDavAdapter.create` made."""
    name = href.rstrip("/").rsplit("/", 1)[-1]
    return name[:-4] if name.endswith(".ics") else name


def _resource_name(key: str) -> str:
    """``key`` itself when it is a plain file name, else a hash of it: a "/" or "%" in a
    name is refused or mangled by servers, and the name must stay the same on a retry."""
    if _PLAIN_NAME.fullmatch(key) and not key.startswith("."):
        return key
    return "k" + hashlib.sha256(key.encode()).hexdigest()[:40]


def _uids(calendar: icalendar.Calendar) -> set[str]:
    return {str(event.get("UID")) for event in calendar.walk("VEVENT")}
