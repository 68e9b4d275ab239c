"""Google Calendar (API v3 over REST, OAuth 2.0 with google-auth), and the OAuth authorization flow.

Tokens. The connection keeps ``client_id``, ``client_secret``, ``refresh_token``, ``access_token``,
``expiry`` (ISO 8601, UTC) and ``token_uri``. A cached access token is used while google-auth considers
it valid, so a quiet cycle is one request (the events.list). It is refreshed when expired, or once when
the API answers 401; the renewed credentials (with a rotated refresh token, when Google sends one) are
handed to ``save_credentials`` at once. A revoked grant (``invalid_grant``) is :class:`AuthExpired`.
Token requests go through a ``requests.Session`` that trusts ``ca_bundle`` and count as requests.

Fetching. Google's sync guide makes the full sync the place for bounds ("you may want to limit your full
sync to only a certain date range", its sample sets timeMin) and refuses them beside a syncToken (400:
syncToken cannot be combined with iCalUID, orderBy, q, timeMin, timeMax, updatedMin, extended-property
filters, nor showDeleted=false). So a full fetch (state None) lists the window with timeMin/timeMax,
paging with pageToken until the last page names ``nextSyncToken``; an incremental fetch sends the token
alone and is not window-bounded (the engine knows that an event leaving the window is no deletion).
A token Google no longer knows is 410 Gone (``fullSyncRequired``): :class:`TokenInvalid`.
The window selects events by their own times, so an exception moved across the window's edge may be
missing from a full listing while its master is there (its original instance would then look busy): a full
fetch therefore reads every recurring series whole as well (``Quirks.whole_series``), one request per
series, which a baseline can afford.

Lists never ask for singleEvents: a recurring event comes as its master (with ``recurrence``) plus one
resource per exception instance (``recurringEventId`` and ``originalStartTime``); with showDeleted off
Google still lists cancelled instances of a series. One iCalendar object is made per ``iCalUID``: the
master, its exceptions as RECURRENCE-ID overrides, cancelled instances as EXDATEs on the master. When
an incremental page shows only part of a series (an exception changed, or a master with recurrence),
the series is read whole with one events.list by iCalUID. A cancelled master in an incremental page is
a deletion; a deleted single event, too.

Identity. ``remote_id`` is the master's event id. ``etag`` is the master's etag, followed, when the
series has exceptions, by ``~`` and a digest of the exceptions' ids and etags: it changes when any part
changes, and the part before ``~`` is what If-Match carries. ``key`` is the event id as well: creates use
a client-chosen id derived from the idempotency key (the engine's keys are already base32hex, so they
are the id itself), and an event made elsewhere has an id the engine's key prefix never matches.

Writes. Create is events.insert with that id; 409 (the id exists) means an earlier attempt landed (it is
read and returned) or that the event was deleted since (Google keeps deleted ids: an update with
status confirmed restores it). Update is events.update with If-Match (412: :class:`PreconditionFailed`);
delete is events.delete with If-Match, where 404 and 410 mean gone already. A series is written as its
master (``recurrence`` holds the RRULE/EXDATE/RDATE lines as iCalendar writes them), then each override
as an update of its instance (``<master id>_<original start, UTC basic format>``), each cancelled
override as a delete of its instance, and is then read back whole for its etag. Attendees and the
organizer are not written: they are Google's to manage (invitations), and a mirrored event's come from
Google anyway.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import re
import secrets
import uuid
import zoneinfo
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import parse_qs, quote, urlsplit

import google.auth.exceptions
import google.auth.transport.requests
import google.oauth2.credentials
import httpx
import icalendar
import requests
from google_auth_oauthlib.flow import Flow

from bridge.adapters.base import (
    AuthExpired,
    Channel,
    Delta,
    OAuthApp,
    Permanent,
    PreconditionFailed,
    RateLimited,
    RemoteCalendar,
    RemoteEvent,
    RemoteNotFound,
    TokenInvalid,
    Transient,
    Window,
    retry_after_seconds,
)
from bridge.adapters.http import status_error, transport_error
from bridge.ical.zones import parse_event

log = logging.getLogger(__name__)


class _NoTokenBodies(logging.Filter):
    """requests-oauthlib, under google_auth_oauthlib's Flow (the sign-in), logs the token request's body
    (client secret, code, verifier) and the answer (access and refresh token) at DEBUG: those records are
    dropped where they are made, whatever level a deployment or a library sets."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno > logging.DEBUG


logging.getLogger("requests_oauthlib.oauth2_session").addFilter(_NoTokenBodies())

API_URL = "https://www.googleapis.com/calendar/v3"
ENDPOINTS: Mapping[str, str] = {
    "auth_url": "https://accounts.google.com/o/oauth2/auth",
    "token_url": "https://oauth2.googleapis.com/token",
    "api_url": API_URL,
}
"""Google's public endpoints, used where an :class:`OAuthApp` leaves its fields empty."""

SCOPES = ("https://www.googleapis.com/auth/calendar",)
"""One scope: calendarList (to pick a calendar), events read/write and events.watch. The narrower pair
calendar.events + calendar.calendarlist.readonly would show the user two consent lines for the same
access; a connection that cannot write is made read-only by the bridge, not by the grant."""


@dataclass(frozen=True)
class Quirks:
    """Google's limits, as its documentation states them."""

    page_size: int = 250  # events.list maxResults: Google's default page (at most 2500)
    default_retry_after: float = 30.0  # a 429 or rate-limit 403 without Retry-After
    max_pages: int = 1000
    whole_series: bool = True  # a full fetch reads each recurring series by iCalUID (see the module text)


QUIRKS = Quirks()

_RATE_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
_READ_ONLY_ROLES = frozenset({"reader", "freeBusyReader"})
_ID = re.compile(r"[a-v0-9]{5,1024}")
_RECURRENCE = ("RRULE", "EXRULE", "RDATE", "EXDATE")
_PARTSTAT = {"needsAction": "NEEDS-ACTION", "declined": "DECLINED", "tentative": "TENTATIVE",
             "accepted": "ACCEPTED"}
_CLASS = {"private": "PRIVATE", "confidential": "CONFIDENTIAL", "public": "PUBLIC"}
_VISIBILITY = {value: key for key, value in _CLASS.items()}
_BUSY_TYPES = {"outOfOffice": "OPAQUE", "focusTime": "OPAQUE", "workingLocation": "TRANSPARENT"}


# -- errors -------------------------------------------------------------------------------

class _Refused(Exception):
    """An HTTP status the caller did not accept; ``_map_errors`` translates it."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(response.status_code)
        self.status = response.status_code
        self.headers = response.headers
        self.reasons = _reasons(response)


def _reasons(response: httpx.Response) -> frozenset[str]:
    """The ``reason`` codes of a Google error body (never logged: a message may quote content)."""
    try:
        body = response.json()
    except ValueError:
        return frozenset()
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return frozenset()
    return frozenset(str(e.get("reason")) for e in error.get("errors") or [] if isinstance(e, dict))


@contextmanager
def _map_errors(what: str, *, sync_token: bool = False) -> Iterator[None]:
    """The one place where httpx, google-auth and HTTP statuses become the base error tree. Messages
    name the operation and the status only: never a URL, a token, a body or event content."""
    try:
        yield
    except _Refused as refused:
        status = refused.status
        message = f"{what}: HTTP {status}"
        if status == 429 or (status == 403 and refused.reasons & _RATE_REASONS):
            retry_after = retry_after_seconds(refused.headers.get("Retry-After"))
            raise RateLimited(message, QUIRKS.default_retry_after if retry_after is None else retry_after) from None
        if status == 410 and sync_token:
            raise TokenInvalid(message) from None
        raise status_error(message, status) from None
    except google.auth.exceptions.RefreshError as exc:
        if getattr(exc, "retryable", False):
            raise Transient(f"{what}: the token refresh failed for now") from None
        raise AuthExpired(f"{what}: the grant was refused or revoked") from None
    except google.auth.exceptions.TransportError:
        raise Transient(f"{what}: the token endpoint is unreachable") from None
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise transport_error(what, exc) from None



# -- tokens -------------------------------------------------------------------------------

class _CountingSession(requests.Session):
    """The session google-auth refreshes through; counts its requests. Its ``verify`` is passed with each
    request: requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override a session's own ``verify``."""

    def __init__(self, on_request: Callable[[], None], verify: str | bool) -> None:
        super().__init__()
        self._on_request = on_request
        self.verify = verify

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self._on_request()
        kwargs.setdefault("verify", self.verify)
        return super().request(*args, **kwargs)


def _parse_expiry(text: str | None) -> datetime | None:
    """An ISO 8601 instant as google-auth keeps it (naive UTC)."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def credentials_dict(credentials: google.oauth2.credentials.Credentials) -> dict[str, str]:
    """What a connection keeps of google-auth credentials (the issue's keys, strings only)."""
    expiry = credentials.expiry
    return {
        "client_id": credentials.client_id or "",
        "client_secret": credentials.client_secret or "",
        "refresh_token": credentials.refresh_token or "",
        "access_token": credentials.token or "",
        "expiry": expiry.replace(tzinfo=UTC).isoformat() if expiry is not None else "",
        "token_uri": credentials.token_uri or ENDPOINTS["token_url"],
    }


class _Tokens:
    """The access token of one connection, refreshed through google-auth when needed."""

    def __init__(self, credentials: Mapping[str, str], session: requests.Session,
                 save: Callable[[Mapping[str, str]], None] | None) -> None:
        self._credentials = google.oauth2.credentials.Credentials(
            token=credentials.get("access_token") or None,
            refresh_token=credentials.get("refresh_token") or None,
            token_uri=credentials.get("token_uri") or ENDPOINTS["token_url"],
            client_id=credentials.get("client_id") or None,
            client_secret=credentials.get("client_secret") or None,
            expiry=_parse_expiry(credentials.get("expiry")),
        )
        self._session = session
        self._save = save

    def access_token(self) -> str:
        if not self._credentials.valid:
            self.refresh()
        return str(self._credentials.token)

    def refresh(self) -> None:
        if not self._credentials.refresh_token:
            raise AuthExpired("refresh the access token: the connection has no refresh token")
        self._credentials.refresh(google.auth.transport.requests.Request(self._session))
        if self._save is not None:
            self._save(credentials_dict(self._credentials))


# -- state --------------------------------------------------------------------------------

def _encode_state(token: str) -> str:
    return json.dumps({"v": 1, "t": token}, separators=(",", ":"), sort_keys=True)


def _decode_state(text: str) -> str:
    try:
        data = json.loads(text)
    except ValueError:
        raise TokenInvalid("the saved Google state is not readable") from None
    if not isinstance(data, dict) or data.get("v") != 1 or not isinstance(data.get("t"), str) or not data["t"]:
        raise TokenInvalid("the saved Google state has an unknown format")
    return str(data["t"])


# -- the adapter ----------------------------------------------------------------------------

class GoogleAdapter:
    """One Google calendar (``calendar_id``) of one account. The injected client belongs to the caller."""

    provider: ClassVar[str] = "google"
    read_only: ClassVar[bool] = False
    SYNC_TIMEZONE: ClassVar[str | None] = None

    def __init__(self, client: httpx.Client, calendar_id: str, credentials: Mapping[str, str], *,
                 api_url: str = API_URL, save_credentials: Callable[[Mapping[str, str]], None] | None = None,
                 ca_bundle: str | bool = True, quirks: Quirks = QUIRKS) -> None:
        self._client = client
        self._api = api_url.rstrip("/")
        self._calendar_id = calendar_id or "primary"
        self._calendar_path = f"/calendars/{quote(self._calendar_id, safe='')}"
        self._quirks = quirks
        self._requests = 0
        self._session = _CountingSession(self._count, ca_bundle)
        self._tokens = _Tokens(credentials, self._session, save_credentials)

    def _count(self) -> None:
        self._requests += 1

    @property
    def requests_made(self) -> int:
        return self._requests

    def close(self) -> None:
        """The token session is ours; the injected client is closed by whoever built it."""
        self._session.close()

    # -- HTTP --------------------------------------------------------------------------------

    def _call(self, method: str, path: str, what: str, *, params: Mapping[str, str] | None = None,
              body: Mapping[str, Any] | None = None, headers: Mapping[str, str] | None = None,
              accept: tuple[int, ...] = (), sync_token: bool = False) -> httpx.Response:
        """One API request with a Bearer token; a 401 refreshes the token and tries once more."""
        with _map_errors(what, sync_token=sync_token):
            for attempt in range(2):
                token = self._tokens.access_token()
                try:
                    response = self._client.request(
                        method, self._api + path, params=params, json=body,
                        headers={**(headers or {}), "Authorization": f"Bearer {token}"})
                finally:
                    self._requests += 1
                if response.status_code == 401 and attempt == 0:
                    self._tokens.refresh()
                    continue
                break
            if response.status_code >= 300 and response.status_code not in accept:
                raise _Refused(response)
            return response

    @staticmethod
    def _json(response: httpx.Response, what: str) -> dict[str, Any]:
        try:
            data = response.json()
        except ValueError:
            raise Permanent(f"{what}: the answer is not JSON") from None
        if not isinstance(data, dict):
            raise Permanent(f"{what}: the answer is not a JSON object")
        return data

    def _events(self, suffix: str = "") -> str:
        return f"{self._calendar_path}/events{suffix}"

    # -- calendars ---------------------------------------------------------------------------

    def list_calendars(self) -> list[RemoteCalendar]:
        found: list[RemoteCalendar] = []
        page: str | None = None
        for _ in range(self._quirks.max_pages):
            params = {"pageToken": page} if page else {}
            data = self._json(self._call("GET", "/users/me/calendarList", "list calendars", params=params),
                              "list calendars")
            for entry in data.get("items") or []:
                found.append(RemoteCalendar(
                    id=str(entry["id"]), name=str(entry.get("summaryOverride") or entry.get("summary") or entry["id"]),
                    timezone=entry.get("timeZone"), read_only=entry.get("accessRole") in _READ_ONLY_ROLES))
            page = data.get("nextPageToken")
            if not page:
                break
        return found

    # -- fetch -------------------------------------------------------------------------------

    def fetch(self, state: str | None, window: Window) -> Delta:
        if state is None:
            params = {"timeMin": _rfc3339(window.start), "timeMax": _rfc3339(window.end)}
            resources, token = self._list(params, "list the window")
            changed, _ = self._group(resources, incremental=False)
            return Delta(changed=changed, deleted=[], state=_encode_state(token), complete=True)
        resources, token = self._list({"syncToken": _decode_state(state)}, "sync the calendar", sync_token=True)
        deleted = sorted({str(r["id"]) for r in resources
                          if r.get("status") == "cancelled" and not r.get("recurringEventId")})
        changed, vanished = self._group([r for r in resources if str(r.get("id")) not in deleted
                                         and str(r.get("recurringEventId")) not in deleted], incremental=True)
        deleted = sorted(set(deleted) | set(vanished))
        return Delta(changed=changed, deleted=deleted, state=_encode_state(token), complete=False)

    def _list(self, params: Mapping[str, str], what: str, *, sync_token: bool = False,
              need_token: bool = True) -> tuple[list[dict[str, Any]], str]:
        """Every resource of an events.list, page by page; the nextSyncToken of its last page."""
        resources: list[dict[str, Any]] = []
        page: str | None = None
        for _ in range(self._quirks.max_pages):
            query = {**params, "maxResults": str(self._quirks.page_size)}
            if page:
                query["pageToken"] = page
            data = self._json(self._call("GET", self._events(), what, params=query, sync_token=sync_token), what)
            resources.extend(item for item in data.get("items") or [] if isinstance(item, dict) and "id" in item)
            page = data.get("nextPageToken")
            if not page:
                token = data.get("nextSyncToken")
                if not token and need_token:
                    raise Permanent(f"{what}: the last page names no sync token")
                return resources, str(token or "")
        raise Transient(f"{what}: too many pages")

    def _group(self, resources: list[dict[str, Any]], *, incremental: bool) -> tuple[list[RemoteEvent], list[str]]:
        """One RemoteEvent per series (master id), reading whole what a page shows only part of; and the
        master ids of series found gone when read whole."""
        vanished: list[str] = []
        series: dict[str, list[dict[str, Any]]] = {}
        for resource in resources:
            series.setdefault(str(resource.get("recurringEventId") or resource["id"]), []).append(resource)
        events = []
        for master_id, parts in sorted(series.items()):
            master = next((p for p in parts if p["id"] == master_id), None)
            recurring = master is not None and bool(master.get("recurrence"))
            partial = master is None or (recurring and (incremental or self._quirks.whole_series))
            if partial:
                parts = self._read_series(master_id, master, parts)
                if not parts:
                    vanished.append(master_id)
                    continue
            event = _remote_event(master_id, parts)
            if event is not None:
                events.append(event)
        return events, vanished

    def _read_series(self, master_id: str, master: dict[str, Any] | None,
                     parts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The master and every exception of a series: one events.list by iCalUID (a get of the master
        first when only exceptions are known and they carry no iCalUID). Empty when the master is gone."""
        uid = (master or parts[0]).get("iCalUID")
        if not uid:
            try:
                master = self._json(self._call("GET", self._events(f"/{quote(master_id, safe='')}"),
                                               "read a series"), "read a series")
            except RemoteNotFound:
                return []
            uid = master.get("iCalUID")
        found, _ = self._list({"iCalUID": str(uid)}, "read a series", need_token=False) if uid else ([], "")
        whole = [r for r in found if r["id"] == master_id or r.get("recurringEventId") == master_id]
        head = next((r for r in whole if r["id"] == master_id), None)
        if head is None or head.get("status") == "cancelled":
            return []
        return whole

    # -- writes ------------------------------------------------------------------------------

    def create(self, event: icalendar.Calendar, key: str) -> RemoteEvent:
        master, overrides = _split(event)
        event_id = event_id_for(key)
        body = {"id": event_id, "iCalUID": str(master.get("UID")), **to_google(master)}
        response = self._call("POST", self._events(), "create an event", body=body, accept=(409,))
        if response.status_code == 409:
            return self._existing(event_id, event, body)
        created = self._json(response, "create an event")
        if not overrides:
            return RemoteEvent(event_id, str(created.get("etag", "")), event, key=event_id)
        self._write_overrides(event_id, master, overrides, [])
        return self._reread(event_id, event)

    def _existing(self, event_id: str, event: icalendar.Calendar, body: dict[str, Any]) -> RemoteEvent:
        """After a 409: the first attempt's event, or one deleted since, restored by an update."""
        path = self._events(f"/{quote(event_id, safe='')}")
        found = self._json(self._call("GET", path, "read an existing event"), "read an existing event")
        if str(found.get("iCalUID")) != body["iCalUID"]:
            raise Permanent("create an event: the id is taken by another event")
        if found.get("status") == "cancelled":
            restored = {k: v for k, v in body.items() if k != "id"}
            restored.setdefault("status", "confirmed")
            self._call("PUT", path, "restore an event", body=restored)
            _, overrides = _split(event)
            if overrides:
                self._write_overrides(event_id, _split(event)[0], overrides, [])
        parts = self._read_series(event_id, None, [found])
        if not parts:
            raise Transient("create an event: the earlier attempt vanished")
        made = _remote_event(event_id, parts)
        if made is None:
            raise Transient("create an event: the earlier attempt vanished")
        return made

    def update(self, remote_id: str, etag: str, event: icalendar.Calendar) -> RemoteEvent:
        master, overrides = _split(event)
        path = self._events(f"/{quote(remote_id, safe='')}")
        own_etag, _, digest = etag.partition("~")
        current: list[dict[str, Any]] = []
        if overrides or digest:
            current = self._read_series(remote_id, None, [{"id": remote_id, "iCalUID": str(master.get("UID"))}])
            if not current:
                raise RemoteNotFound("update an event: HTTP 404")
            now = _remote_event(remote_id, current)
            if now is None or now.etag != etag:
                raise PreconditionFailed("update an event: the series changed")
        body = {"iCalUID": str(master.get("UID")), **to_google(master)}
        response = self._call("PUT", path, "update an event", body=body, headers={"If-Match": own_etag})
        if not overrides and not digest:
            return RemoteEvent(remote_id, str(self._json(response, "update an event").get("etag", "")), event,
                               key=remote_id)
        self._write_overrides(remote_id, master, overrides, current)
        return self._reread(remote_id, event)

    def _write_overrides(self, master_id: str, master: icalendar.Event, overrides: list[icalendar.Event],
                         current: list[dict[str, Any]]) -> None:
        """Each override as its instance; exceptions no longer overridden become plain instances again."""
        written = set()
        for override in overrides:
            instance = instance_id(master_id, override.decoded("RECURRENCE-ID"))
            written.add(instance)
            path = self._events(f"/{quote(instance, safe='')}")
            if str(override.get("STATUS", "")).upper() == "CANCELLED":
                self._call("DELETE", path, "cancel an instance", accept=(404, 410))
                continue
            body = {"iCalUID": str(master.get("UID")), "recurringEventId": master_id,
                    "originalStartTime": _google_time(override.decoded("RECURRENCE-ID")), **to_google(override)}
            self._call("PUT", path, "update an instance", body=body)
        for resource in current:
            if resource.get("recurringEventId") != master_id or resource["id"] in written \
                    or resource.get("status") == "cancelled":
                continue
            original = _from_google_time(resource["originalStartTime"])
            body = {"iCalUID": str(master.get("UID")), "recurringEventId": master_id,
                    "originalStartTime": resource["originalStartTime"], **to_google(master)}
            body["start"] = _google_time(original)
            body["end"] = _google_time(original + _duration(master))
            body.pop("recurrence", None)
            self._call("PUT", self._events(f"/{quote(str(resource['id']), safe='')}"), "reset an instance",
                       body=body)

    def _reread(self, master_id: str, event: icalendar.Calendar) -> RemoteEvent:
        master, _ = _split(event)
        parts = self._read_series(master_id, {"id": master_id, "iCalUID": str(master.get("UID"))}, [])
        read = _remote_event(master_id, parts) if parts else None
        if read is None:
            raise Transient("read back a series: it vanished")
        return RemoteEvent(master_id, read.etag, event, key=master_id)

    def delete(self, remote_id: str, etag: str | None) -> None:
        headers = {"If-Match": etag.partition("~")[0]} if etag else {}
        self._call("DELETE", self._events(f"/{quote(remote_id, safe='')}"), "delete an event", headers=headers,
                   accept=(404, 410))

    # -- push --------------------------------------------------------------------------------

    def watch(self, address: str, token: str) -> Channel:
        body = {"id": str(uuid.uuid4()), "type": "web_hook", "address": address, "token": token}
        data = self._json(self._call("POST", self._events("/watch"), "watch the calendar", body=body),
                          "watch the calendar")
        expiration = int(data.get("expiration") or 0)
        return Channel(id=str(data.get("id", body["id"])), resource_id=str(data.get("resourceId", "")),
                       expires_at=datetime.fromtimestamp(expiration / 1000, UTC))

    def unwatch(self, channel: Channel) -> None:
        body = {"id": channel.id, "resourceId": channel.resource_id}
        self._call("POST", "/channels/stop", "stop a channel", body=body, accept=(404,))


# -- ids ----------------------------------------------------------------------------------

def event_id_for(key: str) -> str:
    """A Google event id (base32hex, 5 to 1024 characters) for an idempotency key: the key itself when it
    is one (the engine's are), else the lowercase base32hex of its SHA-256."""
    if _ID.fullmatch(key):
        return key
    return base64.b32hexencode(hashlib.sha256(key.encode()).digest()).decode().rstrip("=").lower()


def instance_id(master_id: str, original: date | datetime) -> str:
    """The id Google gives the instance of a series that starts at ``original``."""
    if isinstance(original, datetime):
        moment = original if original.tzinfo is not None else original.replace(tzinfo=UTC)
        return f"{master_id}_{moment.astimezone(UTC):%Y%m%dT%H%M%SZ}"
    return f"{master_id}_{original:%Y%m%d}"


# -- Google -> iCalendar --------------------------------------------------------------------------

def _remote_event(master_id: str, parts: list[dict[str, Any]]) -> RemoteEvent | None:
    master = next((p for p in parts if p["id"] == master_id), None)
    if master is None or master.get("status") == "cancelled":
        return None
    exceptions = sorted((p for p in parts if p is not master), key=lambda p: str(p["id"]))
    etag = str(master.get("etag", ""))
    if exceptions:
        digest = hashlib.sha256("|".join(f"{p['id']}={p.get('etag', '')}" for p in exceptions).encode())
        etag += "~" + digest.hexdigest()[:20]
    try:
        calendar = to_icalendar(master, exceptions)
    except (KeyError, ValueError, TypeError):
        log.warning("skipped a Google event that could not be read")
        return None
    return RemoteEvent(remote_id=master_id, etag=etag, calendar=calendar, key=master_id)


def to_icalendar(master: Mapping[str, Any], exceptions: Sequence[Mapping[str, Any]] = ()) -> icalendar.Calendar:
    """The VCALENDAR of one series: the master, its exceptions as overrides (cancelled ones as EXDATEs
    on the master), and VTIMEZONEs for the named zones."""
    calendar = icalendar.Calendar()
    calendar.add("PRODID", "-//calbridge//Google Calendar//EN")
    calendar.add("VERSION", "2.0")
    head = _vevent(master)
    for line in master.get("recurrence") or []:
        parsed = parse_event(f"BEGIN:VEVENT\r\n{line}\r\nEND:VEVENT\r\n")
        for name, value in parsed.items():
            if name in _RECURRENCE:
                for single in value if isinstance(value, list) else [value]:
                    head.add(name, single)
    calendar.add_component(head)
    for exception in exceptions:
        original = _from_google_time(exception["originalStartTime"])
        if exception.get("status") == "cancelled":
            head.add("EXDATE", original)
            continue
        override = _vevent(exception)
        override.add("RECURRENCE-ID", original)
        calendar.add_component(override)
    calendar.add_missing_timezones()
    return calendar


def _vevent(resource: Mapping[str, Any]) -> icalendar.Event:
    event = icalendar.Event()
    event.add("UID", str(resource.get("iCalUID") or f"{resource['id']}@google.com"))
    stamp = resource.get("updated") or resource.get("created")
    event.add("DTSTAMP", _instant(stamp) if stamp else datetime.now(UTC))
    event.add("DTSTART", _from_google_time(resource["start"]))
    if "end" in resource:
        event.add("DTEND", _from_google_time(resource["end"]))
    for field, name in (("summary", "SUMMARY"), ("description", "DESCRIPTION"), ("location", "LOCATION")):
        if resource.get(field):
            event.add(name, str(resource[field]))
    kind = resource.get("eventType") or "default"
    if kind in _BUSY_TYPES:
        event.add("TRANSP", _BUSY_TYPES[kind])
        event.add("X-GOOGLE-EVENT-TYPE", kind)
    elif resource.get("transparency") == "transparent":
        event.add("TRANSP", "TRANSPARENT")
    if resource.get("visibility") in _CLASS:
        event.add("CLASS", _CLASS[resource["visibility"]])
    if resource.get("status") in ("tentative", "cancelled"):
        event.add("STATUS", str(resource["status"]).upper())
    if resource.get("sequence"):
        event.add("SEQUENCE", int(resource["sequence"]))
    organizer = resource.get("organizer") or {}
    if organizer.get("email"):
        params = {"CN": organizer["displayName"]} if organizer.get("displayName") else {}
        event.add("ORGANIZER", f"mailto:{organizer['email']}", parameters=params)
    for attendee in resource.get("attendees") or []:
        if not attendee.get("email"):
            continue
        params = {"PARTSTAT": _PARTSTAT.get(attendee.get("responseStatus", "needsAction"), "NEEDS-ACTION")}
        if attendee.get("displayName"):
            params["CN"] = attendee["displayName"]
        if attendee.get("optional"):
            params["ROLE"] = "OPT-PARTICIPANT"
        if attendee.get("resource"):
            params["CUTYPE"] = "RESOURCE"
        event.add("ATTENDEE", f"mailto:{attendee['email']}", parameters=params)
    return event


def _instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)).astimezone(UTC)


def _from_google_time(value: Mapping[str, Any]) -> date | datetime:
    """An EventDateTime as iCalendar holds it: a date, a time in its named zone, or UTC."""
    if value.get("date"):
        return date.fromisoformat(str(value["date"]))
    moment = datetime.fromisoformat(str(value["dateTime"]))
    zone = _zone(value.get("timeZone"))
    if moment.tzinfo is None:
        return moment.replace(tzinfo=zone or UTC)
    return moment.astimezone(zone or UTC)


def _zone(name: object) -> zoneinfo.ZoneInfo | None:
    if not isinstance(name, str) or not name:
        return None
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return None


# -- iCalendar -> Google --------------------------------------------------------------------------

def _split(calendar: icalendar.Calendar) -> tuple[icalendar.Event, list[icalendar.Event]]:
    events = calendar.walk("VEVENT")
    if not events:
        raise Permanent("write an event: the object holds no VEVENT")
    master = next((e for e in events if "RECURRENCE-ID" not in e), None)
    if master is None:
        raise Permanent("write an event: a series without its master cannot be written to Google")
    return master, [e for e in events if e is not master and "RECURRENCE-ID" in e]


def _google_time(value: date | datetime) -> dict[str, str]:
    if not isinstance(value, datetime):
        return {"date": value.isoformat()}
    key = getattr(value.tzinfo, "key", None)
    if value.tzinfo is None:
        return {"dateTime": value.isoformat(), "timeZone": "UTC"}  # floating: read as UTC
    if key:
        return {"dateTime": value.isoformat(), "timeZone": str(key)}
    return {"dateTime": value.astimezone(UTC).isoformat().replace("+00:00", "Z"), "timeZone": "UTC"}


def _duration(event: icalendar.Event) -> timedelta:
    start = event.decoded("DTSTART")
    if "DTEND" in event:
        return event.decoded("DTEND") - start  # type: ignore[no-any-return]
    if "DURATION" in event:
        return event.decoded("DURATION")  # type: ignore[no-any-return]
    return timedelta(days=1) if not isinstance(start, datetime) else timedelta(0)


def to_google(event: icalendar.Event) -> dict[str, Any]:
    """The Event resource fields of one VEVENT (no id): times, texts, recurrence, transparency,
    visibility and status."""
    start = event.decoded("DTSTART")
    body: dict[str, Any] = {"start": _google_time(start), "end": _google_time(start + _duration(event))}
    for name, field in (("SUMMARY", "summary"), ("DESCRIPTION", "description"), ("LOCATION", "location")):
        if name in event:
            body[field] = str(event[name])
    recurrence = []
    for name in _RECURRENCE:
        values = event.get(name)
        for value in values if isinstance(values, list) else ([values] if values is not None else []):
            recurrence.append(event.content_line(name, value).strip())
    if recurrence and "RECURRENCE-ID" not in event:
        body["recurrence"] = recurrence
    transp = str(event.get("TRANSP", "")).upper()
    if transp:
        body["transparency"] = "transparent" if transp == "TRANSPARENT" else "opaque"
    klass = str(event.get("CLASS", "")).upper()
    if klass in _VISIBILITY:
        body["visibility"] = _VISIBILITY[klass]
    status = str(event.get("STATUS", "")).upper()
    body["status"] = "tentative" if status == "TENTATIVE" else "confirmed"
    return body


def _rfc3339(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- connecting an account --------------------------------------------------------------------------

class GoogleAuthorization:
    """One pending authorization-code grant with PKCE, made by :func:`authorize`."""

    def __init__(self, flow: Flow, url: str, state: str, verify: str | bool) -> None:
        self._flow = flow
        self.url = url
        self._state = state
        self._verify = verify

    def complete(self, redirect_url: str) -> dict[str, str]:
        """Redeem the code of Google's redirect. The redirect is parsed here, not by oauthlib: oauthlib
        refuses an ``http://`` authorization response, but Google's loopback redirect for installed apps
        (``http://127.0.0.1:<port>/``) is plain HTTP by design and never leaves the machine, so rather than
        set OAUTHLIB_INSECURE_TRANSPORT for the whole process the state is checked here and only the code is
        passed on (the token request itself still requires HTTPS)."""
        query = parse_qs(urlsplit(redirect_url).query)
        if query.get("state", [""])[0] != self._state:
            raise AuthExpired("complete the authorization: the state does not match")
        if "error" in query:
            raise AuthExpired(f"complete the authorization: {query['error'][0][:40]}")
        code = query.get("code", [""])[0]
        if not code:
            raise AuthExpired("complete the authorization: the redirect holds no code")
        try:
            self._flow.fetch_token(code=code, verify=self._verify)  # per request: the environment's bundle
            # would otherwise win over the session's
        except Exception as exc:  # oauthlib's and requests' errors: the code was refused or unreachable
            if isinstance(exc, requests.RequestException):
                raise Transient("complete the authorization: the token endpoint is unreachable") from None
            raise AuthExpired(f"complete the authorization: {type(exc).__name__}") from None
        finally:
            self._flow.oauth2session.close()  # one grant, one token request: keep no connection open
        return credentials_dict(self._flow.credentials)

    def saved(self) -> dict[str, Any]:
        """What :func:`authorize` needs to resume this grant in another request or process (secret: the
        PKCE verifier; the caller keeps it encrypted)."""
        return {"state": self._state, "verifier": self._flow.code_verifier, "url": self.url}


def authorize(app: OAuthApp, redirect_uri: str, *, ca_bundle: str | bool = True,
              resume: Mapping[str, Any] | None = None) -> GoogleAuthorization:
    """Start connecting a Google account: the consent URL (offline access, consent forced so that Google
    issues a refresh token again) with a PKCE S256 challenge; the endpoints of ``app`` where it sets them.
    ``resume`` (what :meth:`GoogleAuthorization.saved` gave) continues a grant started elsewhere."""
    config = {"installed": {
        "client_id": app.client_id, "client_secret": app.client_secret,
        "auth_uri": app.auth_url or ENDPOINTS["auth_url"], "token_uri": app.token_url or ENDPOINTS["token_url"],
        "redirect_uris": [redirect_uri]}}
    if resume is not None:
        flow = Flow.from_client_config(config, scopes=list(SCOPES), redirect_uri=redirect_uri,
                                       code_verifier=str(resume["verifier"]))
        return GoogleAuthorization(flow, str(resume["url"]), str(resume["state"]), ca_bundle)
    flow = Flow.from_client_config(config, scopes=list(SCOPES), redirect_uri=redirect_uri,
                                   autogenerate_code_verifier=True)
    state = secrets.token_urlsafe(24)
    url, _ = flow.authorization_url(access_type="offline", prompt="consent", state=state)
    return GoogleAuthorization(flow, url, state, ca_bundle)
