"""A stand-in for Microsoft Graph's calendar API and the Microsoft identity platform endpoints msal uses.

One :class:`GraphStandIn` holds everything in memory behind a lock (uvicorn serves it from a thread while the
tests poke it from theirs); :meth:`GraphStandIn.app` is the Starlette app, served over TLS by
``tests/standins/serve.py``.

Identity (what msal asks with ``instance_discovery=False``): ``/{tenant}/v2.0/.well-known/openid-configuration``,
``/{tenant}/oauth2/v2.0/authorize`` (consents at once and redirects with ``code`` and ``state``;
``refuse_consent`` answers ``error=access_denied``) and ``/{tenant}/oauth2/v2.0/token`` (``authorization_code``
with PKCE S256, ``refresh_token`` with rotation: a used refresh token is spent, a spent, revoked or unknown one
is ``invalid_grant``; the client authenticates with its secret or a certificate-signed client assertion).

Graph (``/v1.0``, Bearer tokens it issued): calendars, ``calendarView/delta`` (occurrences and exceptions of
series expanded inside the round's window, never masters; ``@removed`` entries; ``odata.maxpagesize``; opaque
skip and delta tokens, 410 ``syncStateNotFound`` for one it forgot), events (GET, PATCH and DELETE with
If-Match, 412 on a stale one; POST deduplicated by ``transactionId``), ``instances``, subscriptions with the
validation handshake, ``Prefer: outlook.timezone`` and ``outlook.body-content-type``. Liberties: ``iCalUId``
may be given on create (an event imported from an .ics file keeps its UID in Outlook; the REST API has no
import, so the scenario driver writes it this way), ids are shorter than Graph's, and occurrence ids are
derived from the master's (as Exchange's are; clients must treat them as opaque all the same).

Knobs for tests: :meth:`fail_next` (429/503 with Retry-After), :meth:`expire_delta_tokens`,
:meth:`forget_delta_token`, :meth:`revoke_refresh_tokens`, :meth:`expire_access_tokens`, ``refuse_consent``,
``validate_subscriptions``; ``token_requests`` and ``graph_requests`` count what was asked.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import zoneinfo
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from time import monotonic
from typing import Any
from urllib.parse import parse_qs, urlencode

import httpx
import jwt
from cryptography import x509
from dateutil import rrule
from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

ACCESS_TOKEN_SECONDS = 3600
MAX_SUBSCRIPTION_MINUTES = 4230
_DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_WEEKDAYS = [rrule.MO, rrule.TU, rrule.WE, rrule.TH, rrule.FR, rrule.SA, rrule.SU]
_INDEX = {"first": 1, "second": 2, "third": 3, "fourth": 4, "last": -1}
_OCCURRENCE = "AAMkO"
_FIELDS = ("subject", "body", "location", "showAs", "sensitivity", "isCancelled", "responseStatus", "categories")


class _Refusal(Exception):
    def __init__(self, status: int, code: str, message: str = "", headers: dict[str, str] | None = None) -> None:
        super().__init__(code)
        self.status, self.code, self.message, self.headers = status, code, message or code, headers or {}


def _zone(name: str) -> tzinfo:
    if name in ("UTC", "tzone://Microsoft/Utc", "Etc/UTC", "GMT"):
        return UTC
    iana = WINDOWS_TO_OLSON.get(name, name)
    try:
        return zoneinfo.ZoneInfo(iana)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise _Refusal(400, "TimeZoneNotSupportedException", "unknown time zone") from None


def _parse_local(value: str) -> datetime:
    text = value.rstrip("Z")
    if "." in text:
        text = text.split(".")[0]
    return datetime.fromisoformat(text)


def _graph_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.0000000")


def _occ_key(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


@dataclass
class _Event:
    """A single event or a series master, times as aware UTC (all-day: midnight UTC of its dates)."""

    id: str
    calendar: str
    change: int
    fields: dict[str, Any]
    start: datetime
    end: datetime
    start_zone: str
    end_zone: str
    all_day: bool = False
    recurrence: dict[str, Any] | None = None
    exceptions: dict[str, dict[str, Any]] = field(default_factory=dict)  # occ key -> {change, fields, start, end}
    cancelled: set[str] = field(default_factory=set)
    uid: str = ""
    transaction_id: str | None = None
    extended: list[dict[str, str]] = field(default_factory=list)
    created: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class _Round:
    calendar: str
    start: datetime
    end: datetime
    seen: dict[str, str]  # instance id -> version the client holds


@dataclass
class GraphStandIn:
    """The whole fake tenant: apps, tokens, calendars, events, delta rounds, subscriptions."""

    refuse_consent: bool = False
    validate_subscriptions: bool = True
    token_requests: int = 0
    graph_requests: int = 0
    default_page_size: int = 50
    request_log: list[tuple[float, str, str, int]] = field(default_factory=list, repr=False)  # Graph requests:
    # (arrival, time.monotonic(); method; path; status), for rate-limit tests
    issued: list[str] = field(default_factory=list, repr=False)  # every access and refresh token ever issued
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _clients: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    _codes: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    _refresh: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)  # token -> {client, scope, spent}
    _access: dict[str, datetime] = field(default_factory=dict, repr=False)
    _calendars: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    _events: dict[str, _Event] = field(default_factory=dict, repr=False)
    _rounds: dict[str, _Round] = field(default_factory=dict, repr=False)
    _pages: dict[str, tuple[list[dict[str, Any]], str]] = field(default_factory=dict, repr=False)
    _subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    _failures: list[tuple[int, str | None]] = field(default_factory=list, repr=False)
    _seq: int = 0

    # -- knobs --------------------------------------------------------------------------------------

    def register_client(self, client_id: str, *, secret: str | None = None, certificate_pem: bytes | None = None,
                        ) -> None:
        with self._lock:
            self._clients[client_id] = {"secret": secret, "certificate": certificate_pem}

    def issue_tokens(self, client_id: str, scope: str = "Calendars.ReadWrite offline_access") -> dict[str, Any]:
        """A fresh access and refresh token for ``client_id``, as a finished consent leaves them."""
        with self._lock:
            return self._grant(client_id, scope, None)

    def new_calendar(self, name: str = "Calendar", *, can_edit: bool = True) -> str:
        with self._lock:
            calendar_id = "AAMkC" + secrets.token_urlsafe(12)
            self._calendars[calendar_id] = {"name": name, "canEdit": can_edit}
            return calendar_id

    def drop_calendar(self, calendar_id: str) -> None:
        with self._lock:
            self._calendars.pop(calendar_id, None)
            for event_id in [e.id for e in self._events.values() if e.calendar == calendar_id]:
                del self._events[event_id]

    def fail_next(self, count: int, status: int = 429, retry_after: str | None = "2") -> None:
        """The next ``count`` Graph requests answer ``status`` (with Retry-After unless None)."""
        with self._lock:
            self._failures.extend([(status, retry_after)] * count)

    def expire_delta_tokens(self) -> None:
        with self._lock:
            self._rounds.clear()
            self._pages.clear()

    def forget_delta_token(self, token: str) -> None:
        with self._lock:
            self._rounds.pop(token, None)

    def revoke_refresh_tokens(self) -> None:
        with self._lock:
            for grant in self._refresh.values():
                grant["spent"] = True

    def expire_access_tokens(self) -> None:
        with self._lock:
            self._access.clear()

    def refresh_token_valid(self, token: str) -> bool:
        with self._lock:
            grant = self._refresh.get(token)
            return grant is not None and not grant["spent"]

    def subscriptions(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(s) for s in self._subscriptions.values()]

    def notify_subscribers(self, calendar_id: str) -> list[int]:
        """Post a change notification to every subscription to the calendar, as Graph does when one of its
        events changes (``value`` with subscriptionId, clientState, changeType, resource); the statuses the
        notification URLs answered."""
        statuses = []
        with httpx.Client(timeout=10, verify=_client_verify()) as client:
            for subscription in self.subscriptions():
                if calendar_id not in str(subscription["resource"]):
                    continue
                notice = {"subscriptionId": subscription["id"], "clientState": subscription["clientState"],
                          "changeType": "updated", "resource": subscription["resource"],
                          "subscriptionExpirationDateTime": subscription["expirationDateTime"],
                          "tenantId": "00000000-0000-0000-0000-000000000000"}
                statuses.append(client.post(subscription["notificationUrl"], json={"value": [notice]}).status_code)
        return statuses

    # -- what the driver reads in-process -------------------------------------------------------------

    def stored(self, calendar_id: str) -> list[dict[str, Any]]:
        """Every single event and series master of a calendar, as plain data (the driver's view)."""
        with self._lock:
            found = []
            for event in self._events.values():
                if event.calendar != calendar_id:
                    continue
                found.append({
                    "id": event.id, "uid": event.uid, "extended": {p["id"]: p["value"] for p in event.extended},
                    "fields": dict(event.fields), "start": event.start, "end": event.end,
                    "all_day": event.all_day, "start_zone": event.start_zone,
                    "recurrence": event.recurrence,
                    "exceptions": {k: dict(v) for k, v in event.exceptions.items()},
                    "cancelled": set(event.cancelled),
                    "occurrences": [(k, s, e) for k, s, e, _ in self._occurrences(event, None, None)],
                })
            return found

    # -- the app ------------------------------------------------------------------------------------

    def app(self) -> Starlette:
        graph = "/v1.0"
        routes = [
            Route("/{tenant}/v2.0/.well-known/openid-configuration", self._discovery),
            Route("/{tenant}/oauth2/v2.0/authorize", self._authorize),
            Route("/{tenant}/oauth2/v2.0/token", self._token, methods=["POST"]),
            Route(graph + "/me/calendars", self._graph(self._list_calendars)),
            Route(graph + "/me/calendars/{cal}/calendarView/delta", self._graph(self._delta)),
            Route(graph + "/me/calendars/{cal}/events", self._graph(self._calendar_events), methods=["GET", "POST"]),
            Route(graph + "/me/events/{id}", self._graph(self._event), methods=["GET", "PATCH", "DELETE"]),
            Route(graph + "/me/events/{id}/instances", self._graph(self._instances)),
            Route(graph + "/subscriptions", self._subscribe, methods=["POST"]),
            Route(graph + "/subscriptions/{id}", self._graph(self._unsubscribe), methods=["DELETE"]),
        ]
        return Starlette(routes=routes)

    # -- identity -----------------------------------------------------------------------------------

    def _discovery(self, request: Request) -> Response:
        base = f"{request.url.scheme}://{request.url.netloc}/{request.path_params['tenant']}"
        return JSONResponse({
            "issuer": f"{base}/v2.0", "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "token_endpoint": f"{base}/oauth2/v2.0/token", "response_types_supported": ["code"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
            "code_challenge_methods_supported": ["S256"],
        })

    def _authorize(self, request: Request) -> Response:
        query = request.query_params
        redirect = query.get("redirect_uri", "")
        if not redirect or query.get("response_type") != "code" or query.get("client_id") not in self._clients:
            return JSONResponse({"error": "invalid_request"}, status_code=400)
        answer: dict[str, str] = {"state": query.get("state", "")}
        if self.refuse_consent:
            answer.update(error="access_denied", error_description="The user declined to consent.")
        elif query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            answer.update(error="invalid_request", error_description="PKCE S256 is required.")
        else:
            code = secrets.token_urlsafe(24)
            with self._lock:
                self._codes[code] = {"client": query["client_id"], "redirect": redirect,
                                     "challenge": query["code_challenge"], "scope": query.get("scope", ""),
                                     "nonce": query.get("nonce")}
            answer["code"] = code
        separator = "&" if "?" in redirect else "?"
        return RedirectResponse(redirect + separator + urlencode(answer), status_code=302)

    async def _token(self, request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
        token_url = f"{request.url.scheme}://{request.url.netloc}{request.url.path}"
        with self._lock:
            self.token_requests += 1
            try:
                client = self._authenticate(form, token_url)
                grant_type = form.get("grant_type")
                if grant_type == "authorization_code":
                    return JSONResponse(self._redeem_code(client, form, request))
                if grant_type == "refresh_token":
                    grant = self._refresh.get(form.get("refresh_token", ""))
                    if grant is None or grant["spent"] or grant["client"] != client:
                        raise _Refusal(400, "invalid_grant", "AADSTS70000: The refresh token was revoked or used.")
                    grant["spent"] = True  # rotation: each refresh token works once
                    return JSONResponse(self._grant(client, form.get("scope") or grant["scope"], None))
                raise _Refusal(400, "unsupported_grant_type")
            except _Refusal as refused:
                return JSONResponse({"error": refused.code, "error_description": refused.message},
                                    status_code=refused.status)

    def _authenticate(self, form: dict[str, str], token_url: str) -> str:
        client_id = form.get("client_id", "")
        registered = self._clients.get(client_id)
        if registered is None:
            raise _Refusal(400, "unauthorized_client", "AADSTS700016: Application not found.")
        if "client_assertion" in form:
            if registered["certificate"] is None:
                raise _Refusal(401, "invalid_client", "AADSTS700027: No certificate registered.")
            certificate = x509.load_pem_x509_certificate(registered["certificate"])
            try:
                claims = jwt.decode(form["client_assertion"], certificate.public_key(),  # type: ignore[arg-type]
                                    algorithms=["RS256", "PS256"], audience=token_url)
            except jwt.PyJWTError:
                raise _Refusal(401, "invalid_client", "AADSTS700027: Client assertion failed signature validation.",
                               ) from None
            if claims.get("iss") != client_id or claims.get("sub") != client_id:
                raise _Refusal(401, "invalid_client", "AADSTS700027: Client assertion names another client.")
            return client_id
        if registered["secret"] is None or form.get("client_secret") != registered["secret"]:
            raise _Refusal(401, "invalid_client", "AADSTS7000215: Invalid client secret provided.")
        return client_id

    def _redeem_code(self, client: str, form: dict[str, str], request: Request) -> dict[str, Any]:
        pending = self._codes.pop(form.get("code", ""), None)
        if pending is None or pending["client"] != client or pending["redirect"] != form.get("redirect_uri"):
            raise _Refusal(400, "invalid_grant", "AADSTS70008: The authorization code is invalid or expired.")
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if challenge != pending["challenge"]:
            raise _Refusal(400, "invalid_grant", "AADSTS501481: The code verifier does not match the challenge.")
        issuer = f"{request.url.scheme}://{request.url.netloc}/{request.path_params['tenant']}/v2.0"
        return self._grant(client, pending["scope"], (issuer, pending["nonce"]))

    def _grant(self, client: str, scope: str, id_token: tuple[str, str | None] | None) -> dict[str, Any]:
        access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        self.issued.extend((access, refresh))
        self._access[access] = datetime.now(UTC) + timedelta(seconds=ACCESS_TOKEN_SECONDS)
        self._refresh[refresh] = {"client": client, "scope": scope, "spent": False}
        answer: dict[str, Any] = {"token_type": "Bearer", "scope": scope, "expires_in": ACCESS_TOKEN_SECONDS,
                                  "ext_expires_in": ACCESS_TOKEN_SECONDS, "access_token": access,
                                  "refresh_token": refresh}
        info = {"uid": "00000000-0000-0000-0000-0000000000aa", "utid": "9188040d-6c67-4c5b-b112-36a304b66dad"}
        answer["client_info"] = base64.urlsafe_b64encode(json.dumps(info).encode()).rstrip(b"=").decode()
        if id_token is not None:
            issuer, nonce = id_token
            now = int(datetime.now(UTC).timestamp())
            claims = {"iss": issuer, "aud": client, "sub": "standin-user", "iat": now, "nbf": now,
                      "exp": now + 3600, "oid": info["uid"], "tid": info["utid"],
                      "preferred_username": "erika@example.org", "name": "Erika"}
            if nonce:
                claims["nonce"] = nonce
            answer["id_token"] = jwt.encode(claims, "stand-in-id-tokens-are-not-checked-by-msal", algorithm="HS256")
        return answer

    # -- Graph plumbing -----------------------------------------------------------------------------

    def _graph(self, handler: Any) -> Any:
        def endpoint(request: Request) -> Response:
            at = monotonic()
            answer = self._answer(request, handler)
            with self._lock:
                self.request_log.append((at, request.method, request.url.path, answer.status_code))
            return answer
        return endpoint

    def _answer(self, request: Request, handler: Any, body: Any = None) -> Response:
        with self._lock:
            self.graph_requests += 1
            try:
                self._check(request)
                result = handler(request, body) if body is not None else handler(request)
            except _Refusal as refused:
                return JSONResponse({"error": {"code": refused.code, "message": refused.message}},
                                    status_code=refused.status, headers=refused.headers)
        return result if isinstance(result, Response) else JSONResponse(result)

    def _check(self, request: Request) -> None:
        if self._failures:
            status, retry_after = self._failures.pop(0)
            headers = {"Retry-After": retry_after} if retry_after is not None else {}
            raise _Refusal(status, "TooManyRequests" if status == 429 else "ServiceUnavailable", "throttled", headers)
        header = request.headers.get("Authorization", "")
        token = header[7:] if header.startswith("Bearer ") else ""
        expires = self._access.get(token)
        if expires is None or expires <= datetime.now(UTC):
            raise _Refusal(401, "InvalidAuthenticationToken", "Access token has expired or is not yet valid.",
                           {"WWW-Authenticate": 'Bearer realm=""'})

    @staticmethod
    def _prefer(request: Request) -> dict[str, str]:
        found = {}
        for part in ",".join(request.headers.getlist("Prefer")).split(","):
            name, _, value = part.strip().partition("=")
            if name:
                found[name.strip()] = value.strip().strip('"')
        return found

    def _page_size(self, request: Request) -> int:
        try:
            return max(1, int(self._prefer(request).get("odata.maxpagesize") or request.query_params.get("$top")
                              or self.default_page_size))
        except ValueError:
            return self.default_page_size

    def _paged(self, request: Request, items: list[dict[str, Any]], final: str | None = None) -> dict[str, Any]:
        """One page of ``items``; the rest is kept under a skip token; ``final``: the deltaLink."""
        size = self._page_size(request)
        page, rest = items[:size], items[size:]
        answer: dict[str, Any] = {"value": page}
        base = f"{request.url.scheme}://{request.url.netloc}{request.url.path}"
        if rest:
            skip = secrets.token_urlsafe(16)
            self._pages[skip] = (rest, final or "")
            answer["@odata.nextLink"] = base + "?" + urlencode({"$skiptoken": skip})
        elif final:
            answer["@odata.deltaLink"] = final
        return answer

    def _calendar_of(self, calendar_id: str) -> dict[str, Any]:
        calendar = self._calendars.get(calendar_id)
        if calendar is None:
            raise _Refusal(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        return calendar

    # -- calendars and events ------------------------------------------------------------------------

    def _list_calendars(self, request: Request) -> dict[str, Any]:
        skip = request.query_params.get("$skiptoken")
        if skip:
            rest, _ = self._pages.pop(skip, ([], ""))
            return self._paged(request, rest)
        return self._paged(request, [{"id": cid, "name": c["name"], "canEdit": c["canEdit"],
                                      "owner": {"address": "erika@example.org"}}
                                     for cid, c in self._calendars.items()])

    def _calendar_events(self, request: Request) -> Any:
        calendar = self._calendar_of(request.path_params["cal"])
        if request.method == "GET":
            return self._paged(request, [self._render(e, request) for e in self._events.values()
                                         if e.calendar == request.path_params["cal"]])
        if not calendar["canEdit"]:
            raise _Refusal(403, "ErrorAccessDenied", "Access is denied.")
        body = self._json(request)
        transaction = body.get("transactionId")
        if transaction:
            for event in self._events.values():
                if event.calendar == request.path_params["cal"] and event.transaction_id == transaction:
                    return JSONResponse(self._render(event, request), status_code=201)
        event = self._new_event(request.path_params["cal"], body)
        self._events[event.id] = event
        return JSONResponse(self._render(event, request), status_code=201)

    @staticmethod
    def _json(request: Request) -> dict[str, Any]:
        raw = getattr(request.state, "body", None)
        try:
            data = json.loads(raw or b"{}")
        except ValueError:
            raise _Refusal(400, "BadRequest", "Unable to read JSON request payload.") from None
        if not isinstance(data, dict):
            raise _Refusal(400, "BadRequest", "Unable to read JSON request payload.")
        return data

    def _bump(self) -> int:
        self._seq += 1
        return self._seq

    def _new_event(self, calendar: str, body: dict[str, Any]) -> _Event:
        if "start" not in body or "end" not in body:
            raise _Refusal(400, "ErrorInvalidRequest", "start and end are required.")
        all_day = bool(body.get("isAllDay"))
        start, start_zone = self._time(body["start"], all_day)
        end, end_zone = self._time(body["end"], all_day)
        if end < start:
            raise _Refusal(400, "ErrorInvalidRequest", "end before start.")
        event = _Event(id="AAMkE" + secrets.token_urlsafe(12), calendar=calendar, change=self._bump(),
                       fields={k: body[k] for k in _FIELDS if k in body}, start=start, end=end,
                       start_zone=start_zone, end_zone=end_zone, all_day=all_day,
                       uid=str(body.get("iCalUId") or "040000008200E00074C5B7101A82E008" + secrets.token_hex(16)),
                       transaction_id=body.get("transactionId"),
                       extended=list(body.get("singleValueExtendedProperties") or []))
        if body.get("recurrence"):
            event.recurrence = self._checked_recurrence(body["recurrence"])
        return event

    def _time(self, value: dict[str, Any], all_day: bool) -> tuple[datetime, str]:
        try:
            local = _parse_local(str(value["dateTime"]))
            zone_name = str(value.get("timeZone") or "UTC")
        except (KeyError, ValueError):
            raise _Refusal(400, "ErrorInvalidRequest", "bad dateTimeTimeZone") from None
        if all_day:
            if local.time() != time(0):
                raise _Refusal(400, "ErrorInvalidRequest", "all-day events start and end at midnight")
            _zone(zone_name)
            return local.replace(tzinfo=UTC), zone_name
        return local.replace(tzinfo=_zone(zone_name)).astimezone(UTC), zone_name

    @staticmethod
    def _checked_recurrence(value: dict[str, Any]) -> dict[str, Any]:
        pattern, span = value.get("pattern") or {}, value.get("range") or {}
        if pattern.get("type") not in ("daily", "weekly", "absoluteMonthly", "relativeMonthly", "absoluteYearly",
                                       "relativeYearly"):
            raise _Refusal(400, "ErrorInvalidRecurrence", "unknown pattern type")
        if span.get("type") not in ("endDate", "noEnd", "numbered") or not span.get("startDate"):
            raise _Refusal(400, "ErrorInvalidRecurrence", "bad range")
        return {"pattern": dict(pattern), "range": dict(span)}

    def _find(self, event_id: str) -> tuple[_Event, str | None]:
        """The stored event of an id, and the occurrence key when the id names an occurrence."""
        if event_id.startswith(_OCCURRENCE):
            try:
                master_id, key = base64.urlsafe_b64decode(event_id[len(_OCCURRENCE):] + "==").decode().split("|")
            except (ValueError, UnicodeDecodeError):
                raise _Refusal(400, "ErrorInvalidIdMalformed", "Id is malformed.") from None
            master = self._events.get(master_id)
            if master is not None and key not in master.cancelled and any(
                    k == key for k, _, _, _ in self._occurrences(master, None, None)):
                return master, key
        elif event_id in self._events:
            return self._events[event_id], None
        raise _Refusal(404, "ErrorItemNotFound", "The specified object was not found in the store.")

    def _event(self, request: Request) -> Any:
        event, key = self._find(request.path_params["id"])
        if request.method == "GET":
            if key is not None:
                return self._render_occurrence(event, key, request)
            return self._render(event, request)
        current = self._etag(event, key)
        wanted = request.headers.get("If-Match")
        if wanted and wanted != "*" and wanted not in (current, current[3:-1]):
            raise _Refusal(412, "ErrorIrresolvableConflict", "The change key passed in the request does not "
                                                             "match the current change key for the item.")
        if request.method == "DELETE":
            if key is None:
                del self._events[event.id]
            else:
                event.exceptions.pop(key, None)
                event.cancelled.add(key)
                event.change = self._bump()
            return Response(status_code=204)
        body = self._json(request)
        if key is None:
            self._patch(event, body)
            return self._render(event, request)
        self._patch_occurrence(event, key, body)
        return self._render_occurrence(event, key, request)

    def _patch(self, event: _Event, body: dict[str, Any]) -> None:
        event.fields.update({k: body[k] for k in _FIELDS if k in body})
        all_day = bool(body.get("isAllDay", event.all_day))
        if "start" in body or "isAllDay" in body:
            event.start, event.start_zone = self._time(body.get("start") or self._local(event.start, event),
                                                       all_day)
        if "end" in body or "isAllDay" in body:
            event.end, event.end_zone = self._time(body.get("end") or self._local(event.end, event), all_day)
        event.all_day = all_day
        if "recurrence" in body:
            recurrence = self._checked_recurrence(body["recurrence"]) if body["recurrence"] else None
            if recurrence != event.recurrence:  # a new pattern drops the exceptions, as Exchange does
                event.exceptions.clear()
                event.cancelled.clear()
            event.recurrence = recurrence
        if "singleValueExtendedProperties" in body:
            by_id = {p["id"]: p for p in event.extended}
            by_id.update({p["id"]: p for p in body["singleValueExtendedProperties"]})
            event.extended = list(by_id.values())
        event.change = self._bump()

    def _patch_occurrence(self, master: _Event, key: str, body: dict[str, Any]) -> None:
        exception = master.exceptions.get(key)
        if exception is None:
            original = datetime.strptime(key, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
            exception = {"fields": {}, "start": original, "end": original + (master.end - master.start)}
        exception["fields"].update({k: body[k] for k in _FIELDS if k in body})
        if "start" in body:
            exception["start"] = self._time(body["start"], master.all_day)[0]
        if "end" in body:
            exception["end"] = self._time(body["end"], master.all_day)[0]
        exception["change"] = self._bump()
        master.exceptions[key] = exception
        master.change = self._bump()

    @staticmethod
    def _local(moment: datetime, event: _Event) -> dict[str, str]:
        return {"dateTime": _graph_time(moment), "timeZone": "UTC"}

    def _instances(self, request: Request) -> dict[str, Any]:
        skip = request.query_params.get("$skiptoken")
        if skip:
            rest, _ = self._pages.pop(skip, ([], ""))
            return self._paged(request, rest)
        event, key = self._find(request.path_params["id"])
        if key is not None or event.recurrence is None:
            raise _Refusal(400, "ErrorInvalidRequest", "Not a series master.")
        start, end = self._range(request)
        return self._paged(request, [self._render_occurrence(event, k, request)
                                     for k, _, _, _ in self._occurrences(event, start, end)])

    @staticmethod
    def _range(request: Request) -> tuple[datetime, datetime]:
        try:
            start = datetime.fromisoformat(request.query_params["startDateTime"].replace("Z", "+00:00"))
            end = datetime.fromisoformat(request.query_params["endDateTime"].replace("Z", "+00:00"))
        except (KeyError, ValueError):
            raise _Refusal(400, "ErrorInvalidParameter", "startDateTime and endDateTime are required.") from None
        return (start if start.tzinfo else start.replace(tzinfo=UTC)), (end if end.tzinfo else end.replace(tzinfo=UTC))

    # -- expansion ----------------------------------------------------------------------------------

    def _occurrences(self, master: _Event, start: datetime | None,
                     end: datetime | None) -> Iterator[tuple[str, datetime, datetime, dict[str, Any] | None]]:
        """(key, start, end, exception) of each live occurrence of a series overlapping [start, end)."""
        if master.recurrence is None:
            return
        zone = UTC if master.all_day else _zone(master.start_zone)
        local_start = master.start.astimezone(zone).replace(tzinfo=None)
        duration = master.end - master.start
        for n, local in enumerate(self._rule(master.recurrence, local_start)):
            if n > 3000:
                break
            original = local.replace(tzinfo=zone).astimezone(UTC)
            key = _occ_key(original)
            if key in master.cancelled:
                continue
            exception = master.exceptions.get(key)
            s, e = (exception["start"], exception["end"]) if exception else (original, original + duration)
            if end is not None and original >= end + timedelta(days=366) and s >= end:
                break
            if (start is None or e > start or (s == e and s >= start)) and (end is None or s < end):
                yield key, s, e, exception

    @staticmethod
    def _rule(recurrence: dict[str, Any], dtstart: datetime) -> rrule.rrule:
        pattern, span = recurrence["pattern"], recurrence["range"]
        kind, interval = pattern["type"], int(pattern.get("interval") or 1)
        days = [_WEEKDAYS[_DAYS.index(d)] for d in pattern.get("daysOfWeek") or []]
        index = _INDEX.get(pattern.get("index") or "first", 1)
        options: dict[str, Any] = {"interval": interval}
        if kind == "daily":
            freq = rrule.DAILY
        elif kind == "weekly":
            freq = rrule.WEEKLY
            options["byweekday"] = days or [_WEEKDAYS[dtstart.weekday()]]
            options["wkst"] = _WEEKDAYS[_DAYS.index(pattern.get("firstDayOfWeek") or "sunday")]
        elif kind == "absoluteMonthly":
            freq, options["bymonthday"] = rrule.MONTHLY, int(pattern["dayOfMonth"])
        elif kind == "relativeMonthly":
            freq, options["byweekday"] = rrule.MONTHLY, [d(index) for d in days]
        elif kind == "absoluteYearly":
            freq, options["bymonth"], options["bymonthday"] = rrule.YEARLY, int(pattern["month"]), \
                int(pattern["dayOfMonth"])
        else:
            freq, options["bymonth"], options["byweekday"] = rrule.YEARLY, int(pattern["month"]), \
                [d(index) for d in days]
        first = date.fromisoformat(span["startDate"])
        start = datetime.combine(first, dtstart.time())
        if span["type"] == "numbered":
            options["count"] = int(span["numberOfOccurrences"])
        elif span["type"] == "endDate":
            options["until"] = datetime.combine(date.fromisoformat(span["endDate"]), time(23, 59, 59))
        return rrule.rrule(freq, dtstart=start, **options)

    # -- rendering ----------------------------------------------------------------------------------

    @staticmethod
    def _etag(event: _Event, key: str | None) -> str:
        change = event.change
        if key is not None and key in event.exceptions:
            change = event.exceptions[key]["change"]
        return f'W/"ck{change}"'

    def _when(self, moment: datetime, zone_name: str, all_day: bool, request: Request) -> dict[str, str]:
        wanted = self._prefer(request).get("outlook.timezone")
        if all_day:
            return {"dateTime": _graph_time(moment), "timeZone": wanted or zone_name}
        name = wanted or zone_name
        return {"dateTime": _graph_time(moment.astimezone(_zone(name))), "timeZone": name}

    def _body(self, fields: dict[str, Any], request: Request) -> dict[str, str]:
        body = dict(fields.get("body") or {"contentType": "text", "content": ""})
        if self._prefer(request).get("outlook.body-content-type") == "text" and body.get("contentType") == "html":
            body = {"contentType": "text", "content": body.get("content", "").replace("<br>", "\n")}
        return body

    def _base(self, event: _Event, fields: dict[str, Any], request: Request) -> dict[str, Any]:
        return {
            "@odata.type": "#microsoft.graph.event",
            "subject": fields.get("subject", ""), "body": self._body(fields, request),
            "bodyPreview": str((fields.get("body") or {}).get("content", ""))[:255],
            "location": fields.get("location") or {"displayName": ""},
            "showAs": fields.get("showAs", "busy"), "sensitivity": fields.get("sensitivity", "normal"),
            "isCancelled": bool(fields.get("isCancelled", False)),
            "responseStatus": fields.get("responseStatus") or {"response": "organizer"},
            "categories": fields.get("categories") or [], "isAllDay": event.all_day,
            "originalStartTimeZone": event.start_zone, "originalEndTimeZone": event.end_zone,
            "createdDateTime": event.created.isoformat().replace("+00:00", "Z"),
            "transactionId": event.transaction_id,
        }

    def _render(self, event: _Event, request: Request) -> dict[str, Any]:
        rendered = self._base(event, event.fields, request)
        rendered.update({
            "id": event.id, "@odata.etag": self._etag(event, None), "changeKey": f"ck{event.change}",
            "type": "seriesMaster" if event.recurrence else "singleInstance", "seriesMasterId": None,
            "start": self._when(event.start, event.start_zone, event.all_day, request),
            "end": self._when(event.end, event.end_zone, event.all_day, request),
            "recurrence": event.recurrence, "iCalUId": event.uid,
        })
        expand = request.query_params.get("$expand", "")
        if expand.startswith("singleValueExtendedProperties"):
            wanted = parse_qs("f=" + expand.partition("$filter=")[2].rstrip(")"))["f"][0] if "$filter=" in expand \
                else None
            rendered["singleValueExtendedProperties"] = [
                p for p in event.extended if wanted is None or f"id eq '{p['id']}'" in wanted]
        return rendered

    def _render_occurrence(self, master: _Event, key: str, request: Request) -> dict[str, Any]:
        exception = master.exceptions.get(key)
        original = datetime.strptime(key, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        start, end = (exception["start"], exception["end"]) if exception else \
            (original, original + (master.end - master.start))
        rendered = self._base(master, {**master.fields, **(exception["fields"] if exception else {})}, request)
        rendered.update({
            "id": _OCCURRENCE + base64.urlsafe_b64encode(f"{master.id}|{key}".encode()).decode().rstrip("="),
            "@odata.etag": self._etag(master, key), "changeKey": self._etag(master, key)[3:-1],
            "type": "exception" if exception else "occurrence", "seriesMasterId": master.id,
            "originalStart": original.isoformat().replace("+00:00", "Z"),
            "start": self._when(start, master.start_zone, master.all_day, request),
            "end": self._when(end, master.end_zone, master.all_day, request),
            "recurrence": None, "iCalUId": master.uid + key.encode().hex(),
        })
        return rendered

    # -- delta --------------------------------------------------------------------------------------

    def _snapshot(self, calendar: str, start: datetime, end: datetime) -> dict[str, tuple[_Event, str | None, str]]:
        """instance id -> (event, occurrence key, version) of everything in the window."""
        found: dict[str, tuple[_Event, str | None, str]] = {}
        for event in self._events.values():
            if event.calendar != calendar:
                continue
            if event.recurrence is None:
                if event.start < end and (event.end > start or event.start >= start):
                    found[event.id] = (event, None, str(event.change))
                continue
            for key, _, _, exception in self._occurrences(event, start, end):
                occ_id = _OCCURRENCE + base64.urlsafe_b64encode(f"{event.id}|{key}".encode()).decode().rstrip("=")
                found[occ_id] = (event, key, f"{event.change}.{exception['change'] if exception else 0}")
        return found

    def _delta(self, request: Request) -> dict[str, Any]:
        calendar = request.path_params["cal"]
        self._calendar_of(calendar)
        query = request.query_params
        if "$skiptoken" in query:
            if query["$skiptoken"] not in self._pages:
                raise _Refusal(410, "syncStateNotFound", "The sync state generation is not found.")
            rest, final = self._pages.pop(query["$skiptoken"])
            return self._paged(request, rest, final)
        if "$deltatoken" in query:
            known = self._rounds.get(query["$deltatoken"])
            if known is None or known.calendar != calendar:
                raise _Refusal(410, "syncStateNotFound", "The sync state generation is not found.")
            start, end, seen = known.start, known.end, known.seen
        else:
            start, end = self._range(request)
            seen = {}
        now = self._snapshot(calendar, start, end)
        items: list[dict[str, Any]] = []
        for instance_id, (event, key, version) in now.items():
            if seen.get(instance_id) != version:
                items.append(self._render(event, request) if key is None
                             else self._render_occurrence(event, key, request))
        items += [{"@odata.type": "#microsoft.graph.event", "id": gone, "@removed": {"reason": "deleted"}}
                  for gone in seen.keys() - now.keys()]
        token = secrets.token_urlsafe(18)
        self._rounds[token] = _Round(calendar, start, end, {i: v for i, (_, _, v) in now.items()})
        base = f"{request.url.scheme}://{request.url.netloc}{request.url.path}"
        return self._paged(request, items, base + "?" + urlencode({"$deltatoken": token}))

    # -- subscriptions ------------------------------------------------------------------------------

    async def _subscribe(self, request: Request) -> Response:
        raw = await request.body()
        with self._lock:
            try:
                self.graph_requests += 1
                self._check(request)
                body = json.loads(raw or b"{}")
                expires = datetime.fromisoformat(str(body["expirationDateTime"]).replace("Z", "+00:00"))
                if expires > datetime.now(UTC) + timedelta(minutes=MAX_SUBSCRIPTION_MINUTES):
                    raise _Refusal(400, "InvalidRequest", "Subscription expiration can only be 4230 minutes.")
                address = str(body["notificationUrl"])
            except (ValueError, KeyError, TypeError):
                return JSONResponse({"error": {"code": "InvalidRequest", "message": "bad subscription"}},
                                    status_code=400)
            except _Refusal as refused:
                return JSONResponse({"error": {"code": refused.code, "message": refused.message}},
                                    status_code=refused.status, headers=refused.headers)
        if self.validate_subscriptions:
            challenge = secrets.token_urlsafe(12)
            try:
                async with httpx.AsyncClient(timeout=10, verify=_client_verify()) as client:
                    answer = await client.post(address, params={"validationToken": challenge},
                                               headers={"Content-Type": "text/plain"})
                ok = answer.status_code == 200 and answer.text == challenge \
                    and answer.headers.get("content-type", "").startswith("text/plain")
            except httpx.HTTPError:
                ok = False
            if not ok:
                return JSONResponse({"error": {"code": "InvalidRequest", "message": "Subscription validation "
                                                                                   "request failed."}},
                                    status_code=400)
        with self._lock:
            subscription = {"id": secrets.token_hex(16), "resource": body.get("resource"),
                            "changeType": body.get("changeType"), "notificationUrl": address,
                            "clientState": body.get("clientState"),
                            "expirationDateTime": expires.astimezone(UTC).isoformat().replace("+00:00", "Z")}
            self._subscriptions[subscription["id"]] = subscription
        return JSONResponse(subscription, status_code=201)

    def _unsubscribe(self, request: Request) -> Response:
        if self._subscriptions.pop(request.path_params["id"], None) is None:
            raise _Refusal(404, "ResourceNotFound", "The object was not found.")
        return Response(status_code=204)


def _client_verify() -> Any:
    from tests.standins import tls  # the handshake may target a TLS stand-in of the tests

    return tls.client_context()


class _BodyReader:
    """ASGI middleware that reads request bodies up front, so the synchronous handlers can parse them."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PATCH"):
            await self.app(scope, receive, send)
            return
        chunks = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        scope.setdefault("state", {})["body"] = body
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def app_of(standin: GraphStandIn) -> Any:
    """The stand-in's ASGI app, bodies pre-read (handlers run synchronously under the lock)."""
    return _BodyReader(standin.app())
