"""A stateful stand-in of Google Calendar API v3 and Google's OAuth 2.0 endpoints (a Starlette app).

What it follows (developers.google.com/calendar/api/v3/reference, /guides/sync, /identity/protocols/oauth2):

* OAuth: ``/o/oauth2/auth`` consents at once (a knob refuses: ``error=access_denied``) and redirects with
  ``code`` and ``state``; ``/token`` redeems a code once (PKCE S256 or plain checked, redirect URI equal)
  and refreshes (``invalid_grant`` for unknown, revoked or used grants; a knob rotates refresh tokens);
  ``/revoke`` revokes a refresh or access token. API calls need a valid Bearer token (401 otherwise).
* events.list: pageToken paging with maxResults (default 250, at most 2500), ``nextSyncToken`` on the
  last page only; a syncToken lists every change since it (deleted events as ``status: cancelled``) and
  refuses iCalUID, orderBy, q, timeMin, timeMax, updatedMin, extended-property filters and
  showDeleted=false beside it (400); an unknown or expired token is 410 ``fullSyncRequired``. Without a
  token, timeMin/timeMax select events (a series when any instance overlaps), deleted events only with
  showDeleted, except cancelled instances of a live series, which are listed as Google lists them.
  singleEvents=true is not implemented (400 says so).
* events.get/insert/update/patch/delete with etags (If-Match: 412 ``conditionNotMet``), client-chosen ids
  (base32hex, 5-1024 characters; 409 ``duplicate`` for an id ever used, deleted ones included, since Google
  keeps them; an update restores a deleted event), instances by id (``<master>_<UTC basic start>``):
  updating one makes an exception, deleting one a cancelled exception; delete of a deleted event is 410.
* events.watch and channels.stop; calendarList.list.
* Faults: the next N API requests answer 429 or 403 ``rateLimitExceeded`` (with Retry-After when set).

Every request and response body is validated against the discovery document's schemas
(tests/standins/google_schema.py); a response that breaks them is a 500 naming the violation, so tests
fail loudly. The discovery document itself is served for google-api-python-client.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import itertools
import json
import re
import secrets
import threading
import zoneinfo
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from time import monotonic
from typing import Any
from urllib.parse import parse_qsl, urlencode

from dateutil import rrule
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from bridge.adapters.base import OAuthApp
from tests.standins import google_schema
from tests.standins.serve import serve

CLIENT_ID = "calbridge-test.apps.googleusercontent.com"
CLIENT_SECRET = "stand-in-secret"
USER = "erika@example.com"
SCOPE = "https://www.googleapis.com/auth/calendar"
ACCESS_LIFETIME = 3599

_ID = re.compile(r"[a-v0-9]{5,1024}")
_SYNC_FORBIDDEN = ("iCalUID", "orderBy", "privateExtendedProperty", "q", "sharedExtendedProperty", "timeMin",
                   "timeMax", "updatedMin")
_READ_ONLY_FIELDS = ("kind", "etag", "htmlLink", "created", "updated", "creator", "organizer", "iCalUID", "id",
                     "recurringEventId", "originalStartTime")
_BASE32HEX = "0123456789abcdefghijklmnopqrstuv"


class ApiError(Exception):
    """An answer in Google's error format."""

    def __init__(self, status: int, reason: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message
        self.headers = headers or {}

    def response(self) -> JSONResponse:
        body = {"error": {"code": self.status, "message": self.message,
                          "errors": [{"domain": "global", "reason": self.reason, "message": self.message}]}}
        return JSONResponse(body, status_code=self.status, headers=self.headers)


@dataclass
class _Calendar:
    id: str
    summary: str
    time_zone: str
    roles: dict[str, str]  # user -> accessRole
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    seq: dict[str, int] = field(default_factory=dict)
    valid_from: int = 0  # sync tokens below this sequence number are expired


@dataclass
class _Grant:
    client_id: str
    user: str
    scope: str
    revoked: bool = False


@dataclass
class _Access:
    grant: _Grant
    expires: datetime
    revoked: bool = False


@dataclass
class _Code:
    client_id: str
    user: str
    redirect_uri: str
    scope: str
    challenge: str | None
    method: str
    offline: bool


@dataclass
class _Fault:
    status: int
    reason: str
    retry_after: str | None


class GoogleStandIn:
    """The state of the stand-in, shared by its app (uvicorn's thread) and the tests (one lock)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.clients: dict[str, str] = {CLIENT_ID: CLIENT_SECRET}
        self.calendars: dict[str, _Calendar] = {}
        self.grants: dict[str, _Grant] = {}  # refresh token -> grant
        self.access: dict[str, _Access] = {}  # access token -> its grant
        self.codes: dict[str, _Code] = {}
        self.channels: dict[str, str] = {}  # channel id -> resource id
        self.faults: list[_Fault] = []
        self.counter = itertools.count(1)
        self.refuse_consent = False
        self.rotate_refresh_tokens = False
        self.token_requests = 0
        self.api_requests: list[tuple[str, str]] = []  # (method, path) of every API request
        self.request_log: list[tuple[float, str, str, int]] = []  # every API request: (arrival, time.monotonic();
        # method; path; status), for rate-limit tests
        self.issued: list[str] = []  # every refresh and access token ever issued (tests grep for leaks)

    # -- knobs for tests -------------------------------------------------------------------------

    def new_calendar(self, summary: str = "Arbeit", *, time_zone: str = "Europe/Berlin", user: str = USER,
                     role: str = "owner") -> str:
        with self.lock:
            calendar_id = f"c_{secrets.token_hex(8)}@group.calendar.google.com"
            self.calendars[calendar_id] = _Calendar(calendar_id, summary, time_zone, {user: role})
            return calendar_id

    def share(self, calendar_id: str, user: str, role: str) -> None:
        with self.lock:
            self.calendars[calendar_id].roles[user] = role

    def issue_tokens(self, *, user: str = USER, client_id: str = CLIENT_ID,
                     lifetime: timedelta = timedelta(seconds=ACCESS_LIFETIME)) -> dict[str, str]:
        """A grant as if the user had consented: a refresh token and an access token with its expiry."""
        with self.lock:
            refresh = "1//" + secrets.token_urlsafe(24)
            self.issued.append(refresh)
            grant = _Grant(client_id, user, SCOPE)
            self.grants[refresh] = grant
            access, expires = self._new_access(grant, lifetime)
            return {"refresh_token": refresh, "access_token": access,
                    "expiry": expires.isoformat()}

    def revoke(self, token: str) -> None:
        with self.lock:
            if token in self.grants:
                self.grants[token].revoked = True
            if token in self.access:
                self.access[token].revoked = True

    def expire_access_tokens(self) -> None:
        with self.lock:
            for access in self.access.values():
                access.expires = datetime.now(UTC) - timedelta(seconds=1)

    def expire_sync_tokens(self, calendar_id: str) -> None:
        """Forget every sync token of the calendar issued so far (410 on their next use)."""
        with self.lock:
            self.calendars[calendar_id].valid_from = next(self.counter)

    def expire_all_sync_tokens(self) -> None:
        """Forget every sync token issued so far, of every calendar."""
        with self.lock:
            for calendar in self.calendars.values():
                calendar.valid_from = next(self.counter)

    def fail_next(self, count: int, status: int = 429, *, retry_after: int | None = None,
                  reason: str = "rateLimitExceeded") -> None:
        with self.lock:
            self.faults.extend([_Fault(status, reason, None if retry_after is None else str(retry_after))] * count)

    def events_of(self, calendar_id: str) -> list[dict[str, Any]]:
        """Every stored resource of a calendar (deleted ones too), copied."""
        with self.lock:
            return copy.deepcopy(list(self.calendars[calendar_id].events.values()))

    # -- tokens ------------------------------------------------------------------------------------

    def _new_access(self, grant: _Grant, lifetime: timedelta = timedelta(seconds=ACCESS_LIFETIME)) -> tuple[
            str, datetime]:
        token = "ya29." + secrets.token_urlsafe(32)
        self.issued.append(token)
        expires = (datetime.now(UTC) + lifetime).replace(microsecond=0)
        self.access[token] = _Access(grant, expires)
        return token, expires

    def user_of(self, request: Request) -> str:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        access = self.access.get(token) if scheme.lower() == "bearer" else None
        if access is None or access.revoked or access.grant.revoked or access.expires <= datetime.now(UTC):
            raise ApiError(401, "authError", "Request had invalid authentication credentials.",
                           {"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'})
        return access.grant.user

    # -- events --------------------------------------------------------------------------------------

    def calendar(self, calendar_id: str, user: str, *, write: bool = False) -> _Calendar:
        calendar = self.calendars.get(calendar_id)
        role = calendar.roles.get(user) if calendar is not None else None
        if calendar is None or role is None:
            raise ApiError(404, "notFound", "Not Found")
        if write and role not in ("owner", "writer"):
            raise ApiError(403, "requiredAccessLevel", "You need to have writer access to this calendar.")
        if role == "freeBusyReader" and not write:
            raise ApiError(403, "forbidden", "Forbidden")
        return calendar

    def touch(self, calendar: _Calendar, resource: dict[str, Any]) -> dict[str, Any]:
        """Store ``resource`` as a new version: a sequence number, an etag and ``updated``."""
        seq = next(self.counter)
        resource["etag"] = f'"{3180000000000000 + seq}"'
        resource["updated"] = _now()
        calendar.events[resource["id"]] = resource
        calendar.seq[resource["id"]] = seq
        return resource


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _random_id() -> str:
    return "".join(secrets.choice(_BASE32HEX) for _ in range(26))


def _parse_time(value: dict[str, Any]) -> date | datetime:
    if "date" in value:
        return date.fromisoformat(value["date"])
    moment = datetime.fromisoformat(value["dateTime"])
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zoneinfo.ZoneInfo(value["timeZone"]))
    elif value.get("timeZone"):
        moment = moment.astimezone(zoneinfo.ZoneInfo(value["timeZone"]))
    return moment


def _utc(value: date | datetime) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime(value.year, value.month, value.day, tzinfo=UTC)  # all-day: as UTC days (good enough here)


def _rule_set(resource: dict[str, Any]) -> rrule.rruleset:
    start = _parse_time(resource["start"])
    first = start if isinstance(start, datetime) else datetime(start.year, start.month, start.day)
    text = "\n".join(resource.get("recurrence") or [])
    parsed = rrule.rrulestr(text, dtstart=first, forceset=True, unfold=True,
                            tzids=lambda name: zoneinfo.ZoneInfo(name))
    assert isinstance(parsed, rrule.rruleset)
    return parsed


def _duration(resource: dict[str, Any]) -> timedelta:
    return _utc(_parse_time(resource["end"])) - _utc(_parse_time(resource["start"]))


def _overlaps(resource: dict[str, Any], master: dict[str, Any] | None, low: datetime | None,
              high: datetime | None) -> bool:
    """Whether the event (a series: any instance) overlaps [low, high)."""
    if resource.get("recurringEventId") and resource.get("status") == "cancelled":
        start = _utc(_parse_time(resource["originalStartTime"]))
        end = start + (_duration(master) if master else timedelta(0))
    elif resource.get("recurrence"):
        rules = _rule_set(resource)
        duration = _duration(resource)
        naive = not isinstance(_parse_time(resource["start"]), datetime)
        after = (low or datetime(1970, 1, 1, tzinfo=UTC)) - duration
        probe = rules.after(after.replace(tzinfo=None) if naive else after, inc=False)
        if probe is None:
            return False
        return high is None or _utc(probe if not naive else probe.replace(tzinfo=UTC)) < high
    else:
        start, end = _utc(_parse_time(resource["start"])), _utc(_parse_time(resource["end"]))
    return (low is None or end > low) and (high is None or start < high)


def _instance_stamp(original: date | datetime) -> str:
    if isinstance(original, datetime):
        return original.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return original.strftime("%Y%m%d")


def _original_of(master: dict[str, Any], stamp: str) -> dict[str, Any] | None:
    """The originalStartTime of the master's instance ``stamp``, if the series has one there."""
    start = _parse_time(master["start"])
    rules = _rule_set(master)
    if isinstance(start, datetime):
        try:
            moment = datetime.strptime(stamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except ValueError:
            return None
        found = rules.between(moment - timedelta(seconds=1), moment + timedelta(seconds=1), inc=True)
        if not found:
            return None
        zone = master["start"].get("timeZone")
        local = found[0].astimezone(zoneinfo.ZoneInfo(zone)) if zone else found[0]
        return {"dateTime": local.isoformat(), **({"timeZone": zone} if zone else {})}
    try:
        day = datetime.strptime(stamp, "%Y%m%d")
    except ValueError:
        return None
    if not rules.between(day - timedelta(seconds=1), day + timedelta(seconds=1), inc=True):
        return None
    return {"date": day.date().isoformat()}


def _check_times(body: dict[str, Any]) -> None:
    for name in ("start", "end"):
        value = body.get(name)
        if not value or not (value.get("date") or value.get("dateTime")):
            raise ApiError(400, "required", f"Missing {name} time.")
        if value.get("dateTime"):
            try:
                moment = datetime.fromisoformat(value["dateTime"])
                zone = value.get("timeZone")
                if zone:
                    zoneinfo.ZoneInfo(zone)
            except (ValueError, zoneinfo.ZoneInfoNotFoundError):
                raise ApiError(400, "invalid", f"Invalid {name} time.") from None
            if moment.tzinfo is None and not value.get("timeZone"):
                raise ApiError(400, "invalid", f"Missing time zone definition for {name} time.")
            if body.get("recurrence") and not value.get("timeZone"):
                raise ApiError(400, "invalid", f"Missing time zone definition for {name} time.")
    if _utc(_parse_time(body["end"])) < _utc(_parse_time(body["start"])):
        raise ApiError(400, "timeRangeEmpty", "The specified time range is empty.")
    for line in body.get("recurrence") or []:
        if not re.match(r"(RRULE|EXRULE|RDATE|EXDATE)[:;]", line):
            raise ApiError(400, "invalid", "Invalid recurrence rule.")
    if body.get("recurrence"):
        try:
            _rule_set(body)
        except (ValueError, TypeError):
            raise ApiError(400, "invalid", "Invalid recurrence rule.") from None


# -- the app -------------------------------------------------------------------------------------

def create_app(standin: GoogleStandIn) -> Starlette:
    """The stand-in's ASGI app over ``standin``'s state."""

    def answer(body: dict[str, Any], schema: str | None, status: int = 200) -> Response:
        if schema is not None:
            try:
                google_schema.validate(schema, body)
            except google_schema.SchemaViolation as violation:
                return Response(f"stand-in answer breaks the discovery schema: {violation}", status_code=500)
        return JSONResponse(body, status_code=status)

    def parse_body(raw: bytes, schema: str) -> dict[str, Any]:
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            raise ApiError(400, "parseError", "Parse Error") from None
        if not isinstance(body, dict):
            raise ApiError(400, "parseError", "Parse Error")
        try:
            google_schema.validate(schema, body)
        except google_schema.SchemaViolation as violation:
            raise ApiError(400, "invalid", f"Invalid value: {violation}") from None
        return body

    def api(handler: Any, schema: str | None = None) -> Any:
        """An API endpoint: the Bearer token first, then an injected fault, then the body (``schema``)."""
        async def endpoint(request: Request) -> Response:
            raw = await request.body() if schema is not None else b""
            with standin.lock:
                standin.api_requests.append((request.method, request.url.path))
                try:
                    user = standin.user_of(request)
                    if standin.faults:
                        fault = standin.faults.pop(0)
                        headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                        message = "Rate Limit Exceeded" if fault.status in (403, 429) else "Backend Error"
                        raise ApiError(fault.status, fault.reason, message, headers)
                    body = parse_body(raw, schema) if schema is not None else None
                    result: Response = handler(request, user, body)
                    return result
                except ApiError as error:
                    return error.response()
        endpoint.__name__ = handler.__name__
        return _logged(standin, endpoint)

    # -- OAuth ---------------------------------------------------------------------------------------

    async def oauth_auth(request: Request) -> Response:
        params = request.query_params
        client_id, redirect_uri = params.get("client_id", ""), params.get("redirect_uri", "")
        if client_id not in standin.clients or not redirect_uri or params.get("response_type") != "code":
            return Response("Error 400: invalid_request", status_code=400)
        state = params.get("state")
        extra = {"state": state} if state is not None else {}
        if standin.refuse_consent:
            return RedirectResponse(f"{redirect_uri}?{urlencode({'error': 'access_denied', **extra})}", 302)
        method = params.get("code_challenge_method", "plain")
        if params.get("code_challenge") and method not in ("S256", "plain"):
            return Response("Error 400: invalid_request", status_code=400)
        code = "4/" + secrets.token_urlsafe(24)
        with standin.lock:
            standin.codes[code] = _Code(client_id, USER, redirect_uri, params.get("scope", SCOPE),
                                        params.get("code_challenge"), method, params.get("access_type") == "offline")
        query = urlencode({**extra, "code": code, "scope": params.get("scope", SCOPE)})
        return RedirectResponse(f"{redirect_uri}?{query}", 302)

    def token_error(error: str, status: int = 400, description: str = "") -> JSONResponse:
        return JSONResponse({"error": error, "error_description": description or error}, status_code=status)

    async def token(request: Request) -> Response:
        fields = await form(request)
        client_id, secret = fields.get("client_id", ""), fields.get("client_secret", "")
        header = request.headers.get("Authorization", "")
        if header.lower().startswith("basic "):
            client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        with standin.lock:
            standin.token_requests += 1
            if standin.clients.get(client_id) != secret:
                return token_error("invalid_client", 401, "The OAuth client was not found.")
            grant_type = fields.get("grant_type")
            if grant_type == "authorization_code":
                code = standin.codes.pop(fields.get("code", ""), None)
                if code is None or code.client_id != client_id:
                    return token_error("invalid_grant", description="Malformed auth code.")
                if code.redirect_uri != fields.get("redirect_uri"):
                    return token_error("redirect_uri_mismatch", description="Bad Request")
                if code.challenge is not None:
                    verifier = fields.get("code_verifier", "")
                    if code.method == "S256":
                        digest = hashlib.sha256(verifier.encode("ascii")).digest()
                        expected = base64.urlsafe_b64encode(digest).decode().rstrip("=")
                    else:
                        expected = verifier
                    if not verifier or expected != code.challenge:
                        return token_error("invalid_grant", description="Missing code verifier.")
                grant = _Grant(client_id, code.user, code.scope)
                access, expires = standin._new_access(grant)
                body: dict[str, Any] = {"access_token": access, "expires_in": ACCESS_LIFETIME, "scope": code.scope,
                                        "token_type": "Bearer"}
                if code.offline:
                    refresh = "1//" + secrets.token_urlsafe(24)
                    standin.issued.append(refresh)
                    standin.grants[refresh] = grant
                    body["refresh_token"] = refresh
                return JSONResponse(body, headers={"Cache-Control": "no-store"})
            if grant_type == "refresh_token":
                refresh = fields.get("refresh_token", "")
                grant = standin.grants.get(refresh)
                if grant is None or grant.revoked or grant.client_id != client_id:
                    return token_error("invalid_grant", description="Token has been expired or revoked.")
                access, expires = standin._new_access(grant)
                body = {"access_token": access, "expires_in": ACCESS_LIFETIME, "scope": grant.scope,
                        "token_type": "Bearer"}
                if standin.rotate_refresh_tokens:
                    grant.revoked = True
                    new_grant = _Grant(grant.client_id, grant.user, grant.scope)
                    new_refresh = "1//" + secrets.token_urlsafe(24)
                    standin.issued.append(new_refresh)
                    standin.grants[new_refresh] = new_grant
                    standin.access[access].grant = new_grant
                    body["refresh_token"] = new_refresh
                return JSONResponse(body, headers={"Cache-Control": "no-store"})
            return token_error("unsupported_grant_type", description="Invalid grant_type.")

    async def revoke(request: Request) -> Response:
        value = (await form(request)).get("token") or request.query_params.get("token") or ""
        with standin.lock:
            if value not in standin.grants and value not in standin.access:
                return token_error("invalid_token", description="Token expired or revoked")
            standin.revoke(value)
        return JSONResponse({})

    async def discovery(request: Request) -> Response:
        origin = f"{request.url.scheme}://{request.url.netloc}/"
        return JSONResponse(google_schema.served_document(origin))

    # -- calendarList ----------------------------------------------------------------------------------

    def calendar_list(request: Request, user: str, _: Any) -> Response:
        entries = []
        for calendar in sorted(standin.calendars.values(), key=lambda c: c.id):
            role = calendar.roles.get(user)
            if role is None:
                continue
            entries.append({"kind": "calendar#calendarListEntry", "etag": f'"{abs(hash(calendar.id)) % 10**12}"',
                            "id": calendar.id, "summary": calendar.summary, "timeZone": calendar.time_zone,
                            "accessRole": role, "defaultReminders": [], "colorId": "1"})
        size = _page_size(request.query_params.get("maxResults"), 100, 250)
        offset = _offset(request.query_params.get("pageToken"))
        page = entries[offset:offset + size]
        body: dict[str, Any] = {"kind": "calendar#calendarList", "etag": f'"{len(entries)}"', "items": page}
        if offset + size < len(entries):
            body["nextPageToken"] = _token({"o": offset + size})
        else:
            body["nextSyncToken"] = _token({"cl": next(standin.counter)})
        return answer(body, "CalendarList")

    # -- events ------------------------------------------------------------------------------------------

    def events_list(request: Request, user: str, _: Any) -> Response:
        calendar = standin.calendar(request.path_params["calendarId"], user)
        params = request.query_params
        if params.get("singleEvents") == "true":
            raise ApiError(400, "badRequest", "singleEvents=true is not implemented by this stand-in.")
        if params.get("orderBy") == "startTime":
            raise ApiError(400, "badRequest", "The requested ordering is not available for the particular query.")
        size = _page_size(params.get("maxResults"), 250, 2500)
        page_state: dict[str, Any] = _decode(params["pageToken"]) if params.get("pageToken") else {}
        fingerprint = hashlib.sha256(json.dumps(sorted((k, v) for k, v in params.multi_items()
                                                       if k not in ("pageToken", "maxResults"))).encode()).hexdigest()
        if page_state and page_state.get("q") != fingerprint:
            raise ApiError(400, "invalid", "Invalid page token value.")
        snapshot = page_state.get("s", next(standin.counter))
        if params.get("syncToken"):
            if any(name in params for name in _SYNC_FORBIDDEN) or params.get("showDeleted") == "false":
                raise ApiError(400, "invalid", "Sync token cannot be used with other request restrictions.")
            try:
                since = _decode(params["syncToken"])
            except ApiError:
                raise ApiError(410, "fullSyncRequired", "Sync token is no longer valid, a full sync is required.")\
                    from None
            if since.get("c") != calendar.id or not isinstance(since.get("s"), int) or since["s"] < calendar.valid_from:
                raise ApiError(410, "fullSyncRequired", "Sync token is no longer valid, a full sync is required.")
            chosen = [r for r in calendar.events.values() if calendar.seq[r["id"]] > since["s"]]
        else:
            low = _bound(params.get("timeMin"), "timeMin")
            high = _bound(params.get("timeMax"), "timeMax")
            if low is not None and high is not None and low >= high:
                raise ApiError(400, "timeRangeEmpty", "The specified time range is empty.")
            show_deleted = params.get("showDeleted") == "true"
            chosen = []
            for resource in calendar.events.values():
                master = calendar.events.get(resource.get("recurringEventId", ""))
                if resource.get("status") == "cancelled" and not show_deleted:
                    live_instance = master is not None and master.get("status") != "cancelled"
                    if not (resource.get("recurringEventId") and live_instance):
                        continue
                if params.get("iCalUID") and resource.get("iCalUID") != params["iCalUID"]:
                    continue
                if params.get("updatedMin") and _utc(datetime.fromisoformat(resource["updated"])) < \
                        _bound(params["updatedMin"], "updatedMin"):  # type: ignore[operator]
                    continue
                if (low is not None or high is not None) and resource.get("status") != "cancelled" \
                        and not _overlaps(resource, master, low, high):
                    continue
                if (low is not None or high is not None) and resource.get("status") == "cancelled" \
                        and resource.get("recurringEventId") and not _overlaps(resource, master, low, high):
                    continue
                chosen.append(resource)
        chosen.sort(key=lambda r: str(r["id"]))
        after = page_state.get("a")
        if after is not None:
            chosen = [r for r in chosen if str(r["id"]) > after]
        page = chosen[:size]
        body: dict[str, Any] = {"kind": "calendar#events", "etag": f'"{snapshot}"', "summary": calendar.summary,
                                "updated": _now(), "timeZone": calendar.time_zone,
                                "accessRole": calendar.roles[user], "defaultReminders": [],
                                "items": copy.deepcopy(page)}
        if len(chosen) > size:
            body["nextPageToken"] = _token({"a": page[-1]["id"], "s": snapshot, "q": fingerprint})
        else:
            body["nextSyncToken"] = _token({"c": calendar.id, "s": snapshot})
        return answer(body, "Events")

    def find(calendar: _Calendar, event_id: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
        """(the stored resource, or a virtual instance of a series) for an id; (None, None) if unknown."""
        if event_id in calendar.events:
            return calendar.events[event_id], None
        master_id, _, stamp = event_id.rpartition("_")
        master = calendar.events.get(master_id)
        if not master_id or master is None or not master.get("recurrence") or master.get("status") == "cancelled":
            return None, None
        original = _original_of(master, stamp)
        if original is None:
            return None, None
        instance = {key: copy.deepcopy(value) for key, value in master.items() if key != "recurrence"}
        instance.update({"id": event_id, "recurringEventId": master_id, "originalStartTime": original})
        begin = _parse_time(original)
        length = _utc(_parse_time(master["end"])) - _utc(_parse_time(master["start"]))
        if isinstance(begin, datetime):
            instance["start"] = {**original}
            end = begin + length
            instance["end"] = {"dateTime": end.isoformat(), **({"timeZone": original["timeZone"]}
                                                               if "timeZone" in original else {})}
        else:
            instance["start"] = {"date": begin.isoformat()}
            instance["end"] = {"date": (begin + length).isoformat() if isinstance(length, timedelta) else ""}
        return None, instance

    def events_get(request: Request, user: str, _: Any) -> Response:
        calendar = standin.calendar(request.path_params["calendarId"], user)
        stored, virtual = find(calendar, request.path_params["eventId"])
        if stored is None and virtual is None:
            raise ApiError(404, "notFound", "Not Found")
        return answer(copy.deepcopy(stored or virtual), "Event")

    def new_resource(calendar: _Calendar, body: dict[str, Any], event_id: str) -> dict[str, Any]:
        fields = {k: copy.deepcopy(v) for k, v in body.items() if k not in _READ_ONLY_FIELDS}
        return {"kind": "calendar#event", "id": event_id, "status": "confirmed",
                "htmlLink": f"https://calendar.google.com/calendar/event?eid={event_id}", "created": _now(),
                "creator": {"email": USER, "self": True},
                "organizer": {"email": calendar.id, "displayName": calendar.summary, "self": True},
                "iCalUID": body.get("iCalUID") or f"{event_id}@google.com", "sequence": 0,
                "reminders": {"useDefault": True}, "eventType": "default", **fields}

    def events_insert(request: Request, user: str, body: dict[str, Any]) -> Response:
        calendar = standin.calendar(request.path_params["calendarId"], user, write=True)
        event_id = body.get("id") or _random_id()
        if not _ID.fullmatch(event_id):
            raise ApiError(400, "invalid", "Invalid resource id value.")
        if event_id in calendar.events:
            raise ApiError(409, "duplicate", "The requested identifier already exists.")
        _check_times(body)
        resource = new_resource(calendar, body, event_id)
        return answer(copy.deepcopy(standin.touch(calendar, resource)), "Event")

    def check_match(request: Request, current: dict[str, Any] | None) -> None:
        wanted = request.headers.get("If-Match")
        if wanted and wanted != "*" and (current is None or current.get("etag") != wanted):
            raise ApiError(412, "conditionNotMet", "Precondition Failed")

    def events_write(request: Request, user: str, body: dict[str, Any]) -> Response:
        calendar = standin.calendar(request.path_params["calendarId"], user, write=True)
        event_id = request.path_params["eventId"]
        stored, virtual = find(calendar, event_id)
        current = stored or virtual
        if current is None:
            raise ApiError(404, "notFound", "Not Found")
        check_match(request, current)
        if request.method == "PATCH":
            merged = {k: v for k, v in copy.deepcopy(current).items() if k not in _READ_ONLY_FIELDS}
            merged.update(body)
            body = merged
        if "sequence" in body and body["sequence"] < current.get("sequence", 0):
            raise ApiError(400, "invalidSequence", "Invalid sequence value.")
        if current.get("recurringEventId") and body.get("recurrence"):
            raise ApiError(400, "invalid", "Invalid recurrence: an instance cannot recur.")
        _check_times(body)
        resource = new_resource(calendar, body, event_id)
        resource.update({key: current[key] for key in ("created", "creator", "organizer", "iCalUID", "htmlLink")
                         if key in current})
        resource["sequence"] = max(body.get("sequence", 0), current.get("sequence", 0))
        if current.get("recurringEventId"):
            resource["recurringEventId"] = current["recurringEventId"]
            resource["originalStartTime"] = current["originalStartTime"]
        return answer(copy.deepcopy(standin.touch(calendar, resource)), "Event")

    def events_delete(request: Request, user: str, _: Any) -> Response:
        calendar = standin.calendar(request.path_params["calendarId"], user, write=True)
        event_id = request.path_params["eventId"]
        stored, virtual = find(calendar, event_id)
        current = stored or virtual
        if current is None:
            raise ApiError(404, "notFound", "Not Found")
        if current.get("status") == "cancelled":
            raise ApiError(410, "deleted", "Resource has been deleted")
        check_match(request, current)
        if current.get("recurringEventId"):
            standin.touch(calendar, {key: copy.deepcopy(current[key]) for key in
                                     ("kind", "id", "iCalUID", "recurringEventId", "originalStartTime")}
                          | {"status": "cancelled"})
            return Response(status_code=204)
        for resource in list(calendar.events.values()):
            if resource.get("recurringEventId") == event_id and resource.get("status") != "cancelled":
                standin.touch(calendar, {**resource, "status": "cancelled"})
        standin.touch(calendar, {**current, "status": "cancelled"})
        return Response(status_code=204)

    def events_watch(request: Request, user: str, body: dict[str, Any]) -> Response:
        calendar = standin.calendar(request.path_params["calendarId"], user)
        if body.get("type") not in ("web_hook", "webhook") or not str(body.get("address", "")).startswith("https://"):
            raise ApiError(400, "invalid", "WebHook callback must be HTTPS.")
        if not body.get("id"):
            raise ApiError(400, "required", "Required channel id.")
        resource_id = secrets.token_urlsafe(20)
        standin.channels[str(body["id"])] = resource_id
        expiration = int((datetime.now(UTC) + timedelta(days=7)).timestamp() * 1000)
        channel = {"kind": "api#channel", "id": body["id"], "resourceId": resource_id,
                   "resourceUri": f"https://www.googleapis.com/calendar/v3/calendars/{calendar.id}/events",
                   "expiration": str(expiration)}
        if body.get("token"):
            channel["token"] = body["token"]
        return answer(channel, "Channel")

    def channels_stop(request: Request, user: str, body: dict[str, Any]) -> Response:
        if standin.channels.get(str(body.get("id"))) != body.get("resourceId"):
            raise ApiError(404, "notFound", "Channel not found")
        del standin.channels[str(body["id"])]
        return Response(status_code=204)

    events = "/calendar/v3/calendars/{calendarId}/events"
    routes = [
        Route("/discovery/v1/apis/calendar/v3/rest", discovery),
        Route("/o/oauth2/auth", oauth_auth),
        Route("/token", token, methods=["POST"]),
        Route("/revoke", revoke, methods=["POST"]),
        Route("/calendar/v3/users/me/calendarList", api(calendar_list)),
        Route(events + "/watch", api(events_watch, "Channel"), methods=["POST"]),
        Route(events, api(events_list), methods=["GET"]),
        Route(events, api(events_insert, "Event"), methods=["POST"]),
        Route(events + "/{eventId}", api(events_get), methods=["GET"]),
        Route(events + "/{eventId}", api(events_write, "Event"), methods=["PUT", "PATCH"]),
        Route(events + "/{eventId}", api(events_delete), methods=["DELETE"]),
        Route("/calendar/v3/channels/stop", api(channels_stop, "Channel"), methods=["POST"]),
    ]
    return Starlette(routes=routes)


def _logged(standin: GoogleStandIn, endpoint: Any) -> Any:
    """``endpoint`` with each request kept in ``standin.request_log`` (arrival time, method, path, status)."""
    async def logged(request: Request) -> Response:
        at = monotonic()
        response: Response = await endpoint(request)
        with standin.lock:
            standin.request_log.append((at, request.method, request.url.path, response.status_code))
        return response
    logged.__name__ = endpoint.__name__
    return logged


async def form(request: Request) -> dict[str, str]:
    """An application/x-www-form-urlencoded body (the token endpoint's only format)."""
    return dict(parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True))


def _token(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode(text: str) -> dict[str, Any]:
    try:
        data = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except ValueError:
        raise ApiError(400, "invalid", "Invalid token value.") from None
    if not isinstance(data, dict):
        raise ApiError(400, "invalid", "Invalid token value.")
    return data


def _offset(text: str | None) -> int:
    return int(_decode(text).get("o", 0)) if text else 0


def _page_size(text: str | None, default: int, most: int) -> int:
    if text is None:
        return default
    if not text.isdigit() or int(text) < 1:
        raise ApiError(400, "invalid", "Invalid value for maxResults.")
    return min(int(text), most)


def _bound(text: str | None, name: str) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ApiError(400, "invalid", f"Bad Request: {name}") from None
    if moment.tzinfo is None:
        raise ApiError(400, "invalid", f"Bad Request: {name} needs an offset")
    return moment.astimezone(UTC)


# -- running it ------------------------------------------------------------------------------------

@dataclass
class RunningGoogle:
    """The stand-in served over TLS at ``origin``."""

    standin: GoogleStandIn
    origin: str

    @property
    def api_root(self) -> str:
        return self.origin + "/calendar/v3"

    @property
    def token_uri(self) -> str:
        return self.origin + "/token"

    def oauth_app(self) -> OAuthApp:
        return OAuthApp(client_id=CLIENT_ID, client_secret=CLIENT_SECRET, auth_url=self.origin + "/o/oauth2/auth",
                        token_url=self.token_uri, api_url=self.api_root)

    def credentials(self, *, via: str | None = None, **issue: Any) -> dict[str, str]:
        """A connection's credentials dict with a fresh grant (token requests through ``via`` when given)."""
        tokens = self.standin.issue_tokens(**issue)
        return {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, **tokens,
                "token_uri": (via or self.origin) + "/token"}


@contextmanager
def google_standin() -> Iterator[RunningGoogle]:
    standin = GoogleStandIn()
    with serve(create_app(standin), https=True) as origin:
        yield RunningGoogle(standin, origin)
