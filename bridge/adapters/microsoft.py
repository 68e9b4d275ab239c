"""Microsoft 365 and Outlook.com calendars through Microsoft Graph, signed in with msal.

Tokens. The credentials (``client_id``, ``client_secret`` or ``certificate`` (the private key PEM) with
``thumbprint``, ``authority``, ``refresh_token``, ``access_token``, ``expires_at``, ``scope``) hold the last
access token: while it is valid nothing else is asked, not even the msal application is built, so a quiet
cycle is one request (the delta call). Otherwise, or when Graph answers 401 (once per run), msal redeems the
refresh token with ``acquire_token_by_refresh_token``; the OpenID discovery it needs is kept in a
process-wide ``http_cache`` per authority. Microsoft rotates refresh tokens, so the new credentials go to
``Account.save_credentials`` at once. No msal ``SerializableTokenCache``: the credentials dict already is the
cache of one account, and the connection, not msal, owns where it is stored. ``invalid_grant`` and other
refusals of the grant are AuthExpired. Token requests count in ``requests_made``.

Fetching. A round starts with ``calendarView/delta`` over the sync window (``startDateTime``/``endDateTime``
are baked into the delta link, so the round's window travels in the state); nextLinks are followed to the
deltaLink. When the engine's window has rolled more than a day past the round's, a new round starts with a
complete Delta: the engine knows that a complete listing without an event whose item lies outside the window
is not a deletion. Links are rebased onto the configured Graph root (a proxy, a sovereign cloud), and the
state keeps them relative to it. 410 and ``syncStateNotFound``/``resyncRequired`` are TokenInvalid.

Series. Delta lists occurrences and exceptions (with ``seriesMasterId``), never masters. The engine wants one
object per UID, so an event whose occurrence changed is rebuilt from its master (``GET /me/events/{id}``,
whose ``recurrence`` becomes RRULE) and its instances in the round's window (the delta's own in a new round,
``/instances`` otherwise): exceptions become RECURRENCE-ID overrides, occurrences the pattern has and Graph
no longer lists become EXDATEs. Masters are read only for series that changed. A ``@removed`` id carries no
master id, so the state keeps a short hash of each occurrence id per master: a removed occurrence names its
series to re-read (a 404 on the master is the series' deletion); any other removed id is read once
(404: deleted; found: changed, e.g. moved out of the window, which is no deletion). ``remote_id`` is the
master's id (series) or the event's; the etag of a series is the master's @odata.etag (which Exchange bumps
with every change to an occurrence) plus a digest of its exceptions and removed occurrences.

UIDs and keys. Graph's ``iCalUId`` is read-only and differs per occurrence, so events the bridge writes keep
their iCalendar UID and the idempotency key in two single-value extended properties; others show their
master's ``iCalUId``. ``transactionId`` (a uuid5 of the key) makes Graph return the first event when a create
is retried; an event carrying one is read once with its extended properties to recover the key, unless this
adapter created it.

Content (module tables below): subject, body as text, location, start/end in UTC (``Prefer:
outlook.timezone="UTC"``; all-day as dates; series in their ``originalStartTimeZone``, Windows names mapped
to IANA by icalendar's CLDR table), showAs (free: TRANSP:TRANSPARENT; the others as
X-MICROSOFT-CDO-BUSYSTATUS, which the rules read), sensitivity (CLASS), isCancelled (STATUS:CANCELLED) and
a declined invitation (marked free: Graph does not say which attendee the mailbox is).
"""

from __future__ import annotations

import hashlib
import json
import logging
import uuid
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any, ClassVar
from urllib.parse import parse_qsl, quote, urlsplit

import httpx
import icalendar
import msal
import requests
from dateutil import rrule as dateutil_rrule

from bridge.adapters.base import (
    AuthExpired,
    Channel,
    Delta,
    OAuthApp,
    Permanent,
    RateLimited,
    RemoteCalendar,
    RemoteEvent,
    TokenInvalid,
    Transient,
    Window,
    retry_after_seconds,
)
from bridge.adapters.http import status_error, transport_error
from bridge.adapters.ical import instance_changes, split_series, utc, zone_of
from bridge.adapters.zones import zone_named

log = logging.getLogger(__name__)

GRAPH_URL = "https://graph.microsoft.com/v1.0"
LOGIN_URL = "https://login.microsoftonline.com"
SCOPES = ["Calendars.ReadWrite"]  # msal adds offline_access, openid and profile itself
_PUBLIC_STRINGS = "{00020329-0000-0000-C000-000000000046}"
UID_PROPERTY = f"String {_PUBLIC_STRINGS} Name calbridge.uid"
KEY_PROPERTY = f"String {_PUBLIC_STRINGS} Name calbridge.key"
_EXPAND = f"singleValueExtendedProperties($filter=id eq '{UID_PROPERTY}' or id eq '{KEY_PROPERTY}')"
_TRANSACTIONS = uuid.UUID("6b1f3c2e-8f0a-4c1e-9d57-3a7c2f0b9e41")
_GRAPH_DAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_ICAL_DAYS = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]
_INDEX = {"first": 1, "second": 2, "third": 3, "fourth": 4, "last": -1}
_INDEX_NAMES = {n: name for name, n in _INDEX.items()}
_STAMP = "%Y%m%dT%H%M%SZ"
_MAX_PAGES = 500

SHOW_AS_BUSYSTATUS = {"free": "FREE", "busy": "BUSY", "tentative": "TENTATIVE", "oof": "OOF",
                      "workingElsewhere": "WORKINGELSEWHERE"}
"""Graph showAs -> X-MICROSOFT-CDO-BUSYSTATUS (bridge/rules/markers.py reads FREE and WORKINGELSEWHERE as free)."""
SENSITIVITY_CLASS = {"private": "PRIVATE", "confidential": "CONFIDENTIAL"}


@dataclass(frozen=True)
class Quirks:
    """Graph's limits and our margins."""

    page_size: int = 100  # odata.maxpagesize asked for
    token_margin: timedelta = timedelta(minutes=5)  # an access token this close to expiry is renewed first
    window_roll: timedelta = timedelta(days=1)  # a window moved further than this starts a new delta round
    default_retry_after: float = 30.0
    subscription_lifetime: timedelta = timedelta(minutes=4230) - timedelta(hours=2)


QUIRKS: Mapping[str, Quirks] = {"microsoft": Quirks()}

_HTTP_CACHES: dict[str, dict[Any, Any]] = {}
"""msal's http_cache per authority, for the process: the OpenID discovery is not fetched at every run."""


# -- errors -------------------------------------------------------------------------------

class _Refused(Exception):
    def __init__(self, status: int, headers: httpx.Headers, code: str) -> None:
        super().__init__(status)
        self.status, self.headers, self.code = status, headers, code


def _error_code(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return ""
    error = data.get("error") if isinstance(data, dict) else None
    return str(error.get("code", "")) if isinstance(error, dict) else ""


@contextmanager
def _map_errors(what: str, *, delta: bool = False) -> Iterator[None]:
    """HTTP statuses and httpx failures -> the base error tree; messages name the operation, status and
    Graph's error code only (never a URL, a token or event content)."""
    try:
        yield
    except _Refused as refused:
        status, code = refused.status, refused.code
        message = f"{what}: HTTP {status}" + (f" {code}" if code else "")
        if delta and (status == 410 or code in ("syncStateNotFound", "resyncRequired", "SyncStateNotFound")):
            raise TokenInvalid(message) from None
        if status in (429, 503):
            retry_after = retry_after_seconds(refused.headers.get("Retry-After"))
            raise RateLimited(message, QUIRKS["microsoft"].default_retry_after if retry_after is None
                              else retry_after) from None
        raise status_error(message, status) from None
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise transport_error(what, exc) from None
    except (requests.RequestException, msal.exceptions.MsalServiceError) as exc:  # msal's transport, its 5xx
        raise Transient(f"{what}: {type(exc).__name__}") from None



# -- tokens -------------------------------------------------------------------------------

class _CountingSession(requests.Session):
    """msal's HTTP client: trusts ``verify`` and counts what it sends. ``verify`` goes with every request:
    requests lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE override a session's own ``verify``."""

    def __init__(self, verify: str | bool, count: Any) -> None:
        super().__init__()
        self.verify = verify
        self._count = count

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self._count()
        kwargs.setdefault("verify", self.verify)
        return super().request(*args, **kwargs)


def client_credential(credentials: Mapping[str, str]) -> str | dict[str, str]:
    """msal's ``client_credential``: the secret, or the certificate's private key and thumbprint."""
    if credentials.get("certificate"):
        return {"private_key": credentials["certificate"], "thumbprint": credentials.get("thumbprint", "")}
    return credentials.get("client_secret", "")


def _msal_app(client_id: str, credential: str | dict[str, str], authority: str,
              session: requests.Session) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(
        client_id, client_credential=credential, authority=authority, instance_discovery=False,
        http_client=session, http_cache=_HTTP_CACHES.setdefault(authority, {}))


def _grant_failure(result: Mapping[str, Any], what: str) -> Exception:
    """An msal error answer as an adapter error (the error code only: descriptions may name the user)."""
    code = str(result.get("error", "unknown"))
    if code in ("invalid_grant", "invalid_client", "unauthorized_client", "interaction_required",
                "consent_required", "access_denied", "invalid_scope"):
        return AuthExpired(f"{what}: {code}")
    return Transient(f"{what}: {code}")


def _credentials_from(result: Mapping[str, Any], base: Mapping[str, str]) -> dict[str, str]:
    expires = datetime.now(UTC) + timedelta(seconds=int(result.get("expires_in") or 3600))
    fresh = dict(base)
    fresh.update(access_token=str(result["access_token"]), expires_at=expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
                 refresh_token=str(result.get("refresh_token") or base.get("refresh_token", "")),
                 scope=str(result.get("scope") or base.get("scope") or " ".join(SCOPES)))
    return fresh


class _Tokens:
    """The connection's access token, renewed through msal only when needed."""

    def __init__(self, credentials: Mapping[str, str], save: Any, verify: str | bool, count: Any,
                 quirks: Quirks) -> None:
        self.credentials = dict(credentials)
        self._save = save
        self._verify = verify
        self._count = count
        self._quirks = quirks
        self._app: msal.ConfidentialClientApplication | None = None

    def bearer(self) -> str:
        token, expires = self.credentials.get("access_token"), self.credentials.get("expires_at", "")
        try:
            valid = bool(token) and datetime.fromisoformat(expires.replace("Z", "+00:00")) \
                > datetime.now(UTC) + self._quirks.token_margin
        except ValueError:
            valid = False
        return str(token) if valid else self.refresh()

    def refresh(self) -> str:
        refresh_token = self.credentials.get("refresh_token")
        if not refresh_token or not self.credentials.get("client_id"):
            raise AuthExpired("renew the access token: no refresh token")
        with _map_errors("renew the access token"):
            if self._app is None:
                self._app = _msal_app(self.credentials["client_id"], client_credential(self.credentials),
                                      self.credentials.get("authority") or f"{LOGIN_URL}/common",
                                      _CountingSession(self._verify, self._count))
            try:
                result = self._app.acquire_token_by_refresh_token(refresh_token, scopes=SCOPES)
            except ValueError as exc:  # msal refuses an authority or a credential it cannot use
                raise Permanent(f"renew the access token: {type(exc).__name__}") from None
        if "access_token" not in result:
            raise _grant_failure(result, "renew the access token")
        self.credentials = _credentials_from(result, self.credentials)
        if self._save is not None:
            self._save(dict(self.credentials))  # the old refresh token is spent: keep the new one now
        return self.credentials["access_token"]


# -- state --------------------------------------------------------------------------------

@dataclass
class _State:
    """A delta round: its link (relative to the Graph root), its window, and hashes of series' occurrences."""

    link: str
    start: datetime
    end: datetime
    series: dict[str, str] = field(default_factory=dict)  # master id -> concatenated 8-char occurrence hashes

    def encode(self) -> str:
        return json.dumps({"v": 1, "d": self.link, "w": [self.start.isoformat(), self.end.isoformat()],
                           "s": self.series}, separators=(",", ":"), sort_keys=True)

    @classmethod
    def decode(cls, text: str) -> _State:
        try:
            data = json.loads(text)
            if not isinstance(data, dict) or data.get("v") != 1 or not isinstance(data.get("d"), str):
                raise ValueError
            start, end = (datetime.fromisoformat(w) for w in data["w"])
            series = data.get("s") or {}
            if not all(isinstance(k, str) and isinstance(v, str) for k, v in series.items()):
                raise ValueError
        except (ValueError, TypeError, KeyError, AttributeError):
            raise TokenInvalid("the saved Graph state is not readable") from None
        return cls(data["d"], start, end, dict(series))

    def master_of(self, instance_id: str) -> str | None:
        digest = _short(instance_id)
        for master, hashes in self.series.items():
            if any(hashes[i:i + 8] == digest for i in range(0, len(hashes), 8)):
                return master
        return None


def _short(instance_id: str) -> str:
    return hashlib.sha256(instance_id.encode()).hexdigest()[:8]


# -- the adapter ----------------------------------------------------------------------------

class MicrosoftAdapter:
    """One calendar of a Microsoft 365 or Outlook.com mailbox (module docstring). ``verify``: what msal's
    requests session trusts (a PEM path); the injected httpx client is the caller's."""

    provider: ClassVar[str] = "microsoft"
    read_only: ClassVar[bool] = False

    def __init__(self, client: httpx.Client, credentials: Mapping[str, str], calendar_id: str, *,
                 graph_url: str = GRAPH_URL, save_credentials: Any = None, verify: str | bool = True,
                 quirks: Quirks | None = None) -> None:
        self._client = client
        self._root = graph_url.rstrip("/")
        self._calendar = calendar_id
        self._quirks = quirks or QUIRKS[self.provider]
        self._requests = 0
        self._tokens = _Tokens(credentials, save_credentials, verify, self._counted, self._quirks)
        self._created: dict[str, tuple[str, str]] = {}  # event id -> (uid, key) of events this adapter created

    def _counted(self) -> None:
        self._requests += 1

    @property
    def requests_made(self) -> int:
        return self._requests

    def close(self) -> None:
        """Nothing to release: the injected client is closed by whoever built it."""

    # -- HTTP --------------------------------------------------------------------------------

    def _url(self, path_or_link: str) -> str:
        """A path under the root, or a link Graph gave, rebased onto the root (proxies, sovereign clouds)."""
        if path_or_link.startswith(("http://", "https://")):
            parts, root = urlsplit(path_or_link), urlsplit(self._root)
            path = parts.path
            prefix = root.path.rstrip("/")
            version = "/" + prefix.rsplit("/", 1)[-1] if prefix else ""
            if version and version in path:
                path = path[path.index(version) + len(version):]
            path_or_link = path + ("?" + parts.query if parts.query else "")
        return self._root + path_or_link

    def _relative(self, link: str) -> str:
        return self._url(link)[len(self._root):]

    def _send(self, method: str, path: str, what: str, *, body: Any = None, headers: Mapping[str, str] | None = None,
              params: Mapping[str, str] | None = None, accept: tuple[int, ...] = (),
              delta: bool = False) -> httpx.Response:
        url = self._url(path)
        with _map_errors(what, delta=delta):
            for attempt in (1, 2):
                sent = {"Authorization": f"Bearer {self._tokens.bearer()}",
                        "Prefer": f'outlook.timezone="UTC", outlook.body-content-type="text", '
                                  f"odata.maxpagesize={self._quirks.page_size}",
                        **(headers or {})}
                self._requests += 1
                response = self._client.request(method, url, json=body, headers=sent, params=params)
                if response.status_code == 401 and attempt == 1:
                    self._tokens.refresh()  # expired or revoked early: renew once, then try again
                    continue
                if response.status_code >= 400 and response.status_code not in accept:
                    raise _Refused(response.status_code, response.headers, _error_code(response))
                return response
        raise AssertionError("unreachable")

    def _json(self, response: httpx.Response, what: str) -> dict[str, Any]:
        try:
            data = response.json()
        except ValueError:
            raise Transient(f"{what}: the answer is not JSON") from None
        if not isinstance(data, dict):
            raise Transient(f"{what}: the answer is not a JSON object")
        return data

    def _pages(self, path: str, what: str, *, params: Mapping[str, str] | None = None,
               delta: bool = False) -> tuple[list[dict[str, Any]], str | None]:
        """Every item of a paged collection, and its deltaLink when it has one."""
        items: list[dict[str, Any]] = []
        link: str | None = path
        for _ in range(_MAX_PAGES):
            assert link is not None
            data = self._json(self._send("GET", link, what, params=params, delta=delta), what)
            params = None  # the nextLink carries them
            items.extend(v for v in data.get("value", []) if isinstance(v, dict))
            if data.get("@odata.nextLink"):
                link = str(data["@odata.nextLink"])
                continue
            return items, (str(data["@odata.deltaLink"]) if data.get("@odata.deltaLink") else None)
        raise Transient(f"{what}: too many pages")

    # -- calendars ---------------------------------------------------------------------------

    def list_calendars(self) -> list[RemoteCalendar]:
        items, _ = self._pages("/me/calendars", "list calendars")
        return [RemoteCalendar(id=str(c["id"]), name=str(c.get("name", "")),
                               read_only=c.get("canEdit") is False) for c in items if c.get("id")]

    # -- fetch -------------------------------------------------------------------------------

    def fetch(self, state: str | None, window: Window) -> Delta:
        if state is None:
            return self._round(window)
        saved = _State.decode(state)
        roll = self._quirks.window_roll
        if abs(window.start - saved.start) > roll or abs(window.end - saved.end) > roll:
            return self._round(window)  # the window rolled: a new round over the new window
        return self._incremental(saved)

    def _calendar_path(self) -> str:
        return f"/me/calendars/{quote(self._calendar, safe='')}"

    def _round(self, window: Window) -> Delta:
        start, end = window.start.astimezone(UTC), window.end.astimezone(UTC)
        items, link = self._pages(self._calendar_path() + "/calendarView/delta", "start a delta round",
                                  params={"startDateTime": _iso(start), "endDateTime": _iso(end)}, delta=True)
        if link is None:
            raise Transient("start a delta round: no delta link")
        state = _State(self._relative(link), start, end)
        singles: dict[str, dict[str, Any]] = {}
        series: dict[str, list[dict[str, Any]]] = {}
        for item in items:
            if "@removed" in item or not item.get("id"):
                continue
            master = item.get("seriesMasterId")
            if master:
                series.setdefault(str(master), []).append(item)
            elif item.get("type") != "seriesMaster":
                singles[str(item["id"])] = item
        events = [self._single(item) for item in singles.values()]
        for master_id, instances in series.items():
            found = self._series(master_id, instances, state)
            if found is not None:
                events.append(found)
        return Delta(changed=events, deleted=[], state=state.encode(), complete=True)

    def _incremental(self, saved: _State) -> Delta:
        items, link = self._pages(saved.link, "fetch changes", delta=True)
        if link is None:
            raise Transient("fetch changes: no delta link")
        state = _State(self._relative(link), saved.start, saved.end, dict(saved.series))
        singles: dict[str, dict[str, Any]] = {}
        masters: set[str] = set()
        deleted: set[str] = set()
        for item in items:
            item_id = str(item.get("id", ""))
            if not item_id:
                continue
            if "@removed" in item:
                master = saved.master_of(item_id)
                if master is not None:
                    masters.add(master)
                    continue
                found = self._get_or_none(item_id)
                if found is None:
                    deleted.add(item_id)
                elif found.get("seriesMasterId"):
                    masters.add(str(found["seriesMasterId"]))
                elif found.get("type") == "seriesMaster":
                    masters.add(item_id)
                else:
                    singles[item_id] = found
            elif item.get("seriesMasterId"):
                masters.add(str(item["seriesMasterId"]))
            elif item.get("type") == "seriesMaster":
                masters.add(item_id)
            else:
                singles[item_id] = item
        events = [self._single(item) for item in singles.values()]
        for master_id in sorted(masters):
            found = self._series(master_id, None, state)
            if found is None:
                deleted.add(master_id)
            else:
                events.append(found)
        deleted -= {event.remote_id for event in events}
        return Delta(changed=events, deleted=sorted(deleted), state=state.encode(), complete=False)

    def _get_or_none(self, event_id: str, expand: bool = False) -> dict[str, Any] | None:
        params = {"$expand": _EXPAND} if expand else None
        response = self._send("GET", f"/me/events/{quote(event_id, safe='')}", "read an event", params=params,
                              accept=(404,))
        return None if response.status_code == 404 else self._json(response, "read an event")

    def _identity(self, item: dict[str, Any]) -> tuple[str, str | None]:
        """(UID, key) of a single event or a master (read with its extended properties, or created here)."""
        item_id = str(item.get("id", ""))
        if item_id in self._created:
            return self._created[item_id]
        props = {p.get("id"): p.get("value") for p in item.get("singleValueExtendedProperties") or []}
        if not props and item.get("transactionId"):
            full = self._get_or_none(item_id, expand=True) or {}
            props = {p.get("id"): p.get("value") for p in full.get("singleValueExtendedProperties") or []}
        uid = props.get(UID_PROPERTY) or str(item.get("iCalUId") or item_id)
        return str(uid), (str(props[KEY_PROPERTY]) if props.get(KEY_PROPERTY) else None)

    def _single(self, item: dict[str, Any]) -> RemoteEvent:
        uid, key = self._identity(item)
        calendar = _vcalendar()
        calendar.add_component(to_vevent(item, uid))
        return RemoteEvent(remote_id=str(item["id"]), etag=str(item.get("@odata.etag") or item.get("changeKey", "")),
                           calendar=calendar, key=key)

    def _series(self, master_id: str, instances: list[dict[str, Any]] | None, state: _State) -> RemoteEvent | None:
        """The series of ``master_id`` as one object (None when the master is gone); ``instances``: those of the
        round's window when the caller has them all (a new round), else they are read."""
        master = self._get_or_none(master_id, expand=True)
        if master is None:
            state.series.pop(master_id, None)
            return None
        if not master.get("recurrence"):  # no longer a series
            state.series.pop(master_id, None)
            return self._single(master)
        if instances is None:
            instances, _ = self._pages(f"/me/events/{quote(master_id, safe='')}/instances", "read a series",
                                       params={"startDateTime": _iso(state.start), "endDateTime": _iso(state.end)})
        state.series[master_id] = "".join(sorted(_short(str(i["id"])) for i in instances if i.get("id")))
        uid, key = self._identity(master)
        calendar, removed = series_calendar(master, instances, uid, state.start, state.end)
        exceptions = sorted((str(i.get("originalStart")), str(i.get("changeKey") or i.get("@odata.etag")))
                            for i in instances if i.get("type") == "exception")
        digest = hashlib.sha256(json.dumps([exceptions, removed]).encode()).hexdigest()[:16]
        return RemoteEvent(remote_id=master_id, etag=f"{master.get('@odata.etag', '')}|{digest}", calendar=calendar,
                           key=key)

    # -- writes ------------------------------------------------------------------------------

    def create(self, event: icalendar.Calendar, key: str) -> RemoteEvent:
        master, overrides, uid = split_series(event, "Graph")
        body = to_graph(master)
        body["transactionId"] = str(uuid.uuid5(_TRANSACTIONS, key))
        body["singleValueExtendedProperties"] = [{"id": UID_PROPERTY, "value": uid}, {"id": KEY_PROPERTY, "value": key}]
        created = self._json(self._send("POST", self._calendar_path() + "/events", "create an event", body=body),
                             "create an event")
        event_id = str(created["id"])
        self._created[event_id] = (uid, key)
        etag = str(created.get("@odata.etag", ""))
        if "RRULE" in master:
            etag = self._write_overrides(event_id, master, overrides)
        return RemoteEvent(remote_id=event_id, etag=etag, calendar=event, key=key)

    def update(self, remote_id: str, etag: str, event: icalendar.Calendar) -> RemoteEvent:
        master, overrides, uid = split_series(event, "Graph")
        body = to_graph(master)
        body["singleValueExtendedProperties"] = [{"id": UID_PROPERTY, "value": uid}]
        if "RRULE" not in master:
            body["recurrence"] = None
        path = f"/me/events/{quote(remote_id, safe='')}"
        headers = {"If-Match": etag.split("|", 1)[0]} if etag else {}
        updated = self._json(self._send("PATCH", path, "update an event", body=body, headers=headers),
                             "update an event")
        new_etag = str(updated.get("@odata.etag", ""))
        if "RRULE" in master:
            new_etag = self._write_overrides(remote_id, master, overrides, restore_dropped=True)
        key = self._created.get(remote_id, (uid, None))[1]
        return RemoteEvent(remote_id=remote_id, etag=new_etag, calendar=event, key=key)

    def delete(self, remote_id: str, etag: str | None) -> None:
        headers = {"If-Match": etag.split("|", 1)[0]} if etag else {}
        self._send("DELETE", f"/me/events/{quote(remote_id, safe='')}", "delete an event", headers=headers,
                   accept=(404,))

    def _write_overrides(self, master_id: str, master: icalendar.Event, overrides: list[icalendar.Event], *,
                         restore_dropped: bool = False) -> str:
        """Patch the moved or changed instances and delete the excluded and cancelled ones of a series just
        written; the series' etag as a fetch will compute it. ``restore_dropped`` (an update): an exception
        Graph still has but the series no longer overrides goes back to the pattern's time and content, since
        a PATCH of the master keeps the exceptions when its pattern is unchanged."""
        gone, changed = instance_changes(master, overrides)
        wanted = gone | changed.keys()
        path = f"/me/events/{quote(master_id, safe='')}"
        if wanted or restore_dropped:
            bounds = list(_instance_span(master)) if restore_dropped else []
            if wanted:
                bounds += [min(wanted) - timedelta(days=1), max(wanted) + timedelta(days=2)]
            span = {"startDateTime": _iso(min(bounds)), "endDateTime": _iso(max(bounds))}
            instances, _ = self._pages(path + "/instances", "read a series", params=span)
            by_original = {_parse_utc(str(i["originalStart"])): i for i in instances if i.get("originalStart")}
            for original in sorted(gone):
                if original in by_original:
                    self._send("DELETE", f"/me/events/{quote(str(by_original[original]['id']), safe='')}",
                               "cancel an instance", accept=(404,))
            for original, override in sorted(changed.items()):
                if original in by_original:
                    body = to_graph(override)
                    body.pop("recurrence", None)
                    self._send("PATCH", f"/me/events/{quote(str(by_original[original]['id']), safe='')}",
                               "change an instance", body=body)
            for original, instance in sorted(by_original.items()) if restore_dropped else ():
                if instance.get("type") == "exception" and original not in changed and original not in gone:
                    self._send("PATCH", f"/me/events/{quote(str(instance['id']), safe='')}",
                               "restore an instance", body=_regular_instance(master, original))
        state = _State("", datetime.min.replace(tzinfo=UTC), datetime.max.replace(tzinfo=UTC))
        window = _instance_span(master)
        state.start, state.end = window
        found = self._series(master_id, None, state)
        return found.etag if found is not None else ""

    # -- push notifications ------------------------------------------------------------------

    def watch(self, address: str, token: str) -> Channel:
        expires = datetime.now(UTC) + self._quirks.subscription_lifetime
        resource = f"me/calendars/{self._calendar}/events"
        data = self._json(self._send("POST", "/subscriptions", "subscribe to changes", body={
            "changeType": "created,updated,deleted", "notificationUrl": address, "resource": resource,
            "expirationDateTime": _iso(expires), "clientState": token}), "subscribe to changes")
        return Channel(id=str(data["id"]), resource_id=str(data.get("resource") or resource),
                       expires_at=_parse_utc(str(data.get("expirationDateTime") or _iso(expires))))

    def unwatch(self, channel: Channel) -> None:
        self._send("DELETE", f"/subscriptions/{quote(channel.id, safe='')}", "unsubscribe", accept=(404,))


# -- Graph JSON -> iCalendar ----------------------------------------------------------------------

def _vcalendar() -> icalendar.Calendar:
    calendar = icalendar.Calendar()
    calendar.add("PRODID", "-//calbridge//Microsoft Graph//EN")
    calendar.add("VERSION", "2.0")
    return calendar


def _parse_utc(text: str) -> datetime:
    value = text.strip().rstrip("Z")
    if "." in value:
        value = value.split(".")[0]
    if "+" in value[10:]:
        value = value[:10] + value[10:].split("+")[0]
    return datetime.fromisoformat(value).replace(tzinfo=UTC)


def _moment(value: Mapping[str, Any] | None) -> datetime:
    """A dateTimeTimeZone as an aware datetime (UTC under our Prefer header; any zone otherwise)."""
    if not value:
        raise Permanent("read an event: it has no start or end")
    local = _parse_utc(str(value.get("dateTime", ""))).replace(tzinfo=None)
    return local.replace(tzinfo=zone_named(value.get("timeZone"))).astimezone(UTC)


def _all_day_date(value: Mapping[str, Any] | None, original_zone: str | None) -> date:
    """The date of an all-day boundary: midnight as given, or converted back to the event's own zone."""
    moment = _moment(value)
    if moment.time() == time(0):
        return moment.date()
    return moment.astimezone(zone_named(original_zone)).date()


def _markers(event: icalendar.Event, item: Mapping[str, Any]) -> None:
    show_as = str(item.get("showAs") or "busy")
    declined = (item.get("responseStatus") or {}).get("response") == "declined"
    if declined:
        show_as = "free"
    event.add("TRANSP", "TRANSPARENT" if show_as in ("free", "workingElsewhere") else "OPAQUE")
    if show_as in SHOW_AS_BUSYSTATUS:
        event.add("X-MICROSOFT-CDO-BUSYSTATUS", SHOW_AS_BUSYSTATUS[show_as])
    sensitivity = str(item.get("sensitivity") or "normal")
    if sensitivity in SENSITIVITY_CLASS:
        event.add("CLASS", SENSITIVITY_CLASS[sensitivity])
    if item.get("isCancelled"):
        event.add("STATUS", "CANCELLED")


def _texts(event: icalendar.Event, item: Mapping[str, Any]) -> None:
    event.add("SUMMARY", str(item.get("subject") or ""))
    body = item.get("body") or {}
    content = str(body.get("content") or "").strip()
    if content:
        event.add("DESCRIPTION", content)
    location = str((item.get("location") or {}).get("displayName") or "")
    if location:
        event.add("LOCATION", location)


def to_vevent(item: Mapping[str, Any], uid: str, zone: tzinfo = UTC) -> icalendar.Event:
    """One Graph event (single, master without its recurrence, or instance) as a VEVENT; timed values in
    ``zone`` (a series' own zone keeps its wall-clock times across DST)."""
    event = icalendar.Event()
    event.add("UID", uid)
    stamp = item.get("lastModifiedDateTime") or item.get("createdDateTime")  # stable: a re-read is the same text
    event.add("DTSTAMP", _parse_utc(str(stamp)) if stamp else datetime(2000, 1, 1, tzinfo=UTC))
    if item.get("isAllDay"):
        event.add("DTSTART", _all_day_date(item.get("start"), item.get("originalStartTimeZone")))
        event.add("DTEND", _all_day_date(item.get("end"), item.get("originalEndTimeZone")))
    else:
        event.add("DTSTART", _in_zone(_moment(item.get("start")), zone))
        event.add("DTEND", _in_zone(_moment(item.get("end")), zone))
    _texts(event, item)
    _markers(event, item)
    return event


def _in_zone(moment: datetime, zone: tzinfo) -> datetime:
    return moment if zone is UTC else moment.astimezone(zone)


def series_calendar(master: Mapping[str, Any], instances: list[dict[str, Any]], uid: str, start: datetime,
                    end: datetime) -> tuple[icalendar.Calendar, list[str]]:
    """A series as master (RRULE, EXDATE) and overrides, from its master and its instances in [start, end);
    also the EXDATEs as UTC stamps (for the etag)."""
    zone = zone_named(master.get("originalStartTimeZone"))
    all_day = bool(master.get("isAllDay"))
    head = to_vevent(master, uid, zone)
    rule = rrule_of(master["recurrence"], head.decoded("DTSTART"), zone)
    head.add("RRULE", rule)
    live = {_parse_utc(str(i["originalStart"])) for i in instances if i.get("originalStart")}
    expected = _expand(head, start, end)
    missing = sorted(original for original in expected if original not in live)
    if missing:
        head.add("EXDATE", [m.date() if all_day else _in_zone(m, zone) for m in missing])
    calendar = _vcalendar()
    calendar.add_component(head)
    for instance in sorted(instances, key=lambda i: str(i.get("originalStart"))):
        if instance.get("type") != "exception" and not instance.get("isCancelled"):
            continue
        override = to_vevent(instance, uid, UTC)
        original = _parse_utc(str(instance["originalStart"]))
        override.add("RECURRENCE-ID", original.date() if all_day else _in_zone(original, zone))
        calendar.add_component(override)
    return calendar, [m.strftime(_STAMP) for m in missing]


def _expand(head: icalendar.Event, start: datetime, end: datetime) -> list[datetime]:
    """The pattern's original starts (UTC; all-day: midnight UTC of the date) inside [start, end)."""
    dtstart = head.decoded("DTSTART")
    duration = head.decoded("DTEND") - dtstart
    if isinstance(dtstart, datetime):
        naive, zone = dtstart.replace(tzinfo=None), dtstart.tzinfo or UTC
    else:
        naive, zone = datetime.combine(dtstart, time(0)), UTC
    text = head["RRULE"].to_ical().decode()
    if "UNTIL=" in text:  # compare UNTIL with naive local times
        until = head["RRULE"]["UNTIL"][0]
        until_local = until.astimezone(zone).replace(tzinfo=None) if isinstance(until, datetime) \
            else datetime.combine(until, time(23, 59, 59))
        text = ";".join(p for p in text.split(";") if not p.startswith("UNTIL="))
        rule = dateutil_rrule.rrulestr(text, dtstart=naive, ignoretz=True)
        rule = rule.replace(until=until_local)
    else:
        rule = dateutil_rrule.rrulestr(text, dtstart=naive, ignoretz=True)
    found = []
    for n, local in enumerate(rule):
        if n > 5000:
            break
        moment = local.replace(tzinfo=zone).astimezone(UTC)
        if moment >= end:
            break
        if moment + duration > start:
            found.append(moment)
    return found


def rrule_of(recurrence: Mapping[str, Any], dtstart: date | datetime, zone: tzinfo) -> icalendar.vRecur:
    """A patternedRecurrence as an RRULE."""
    pattern, span = recurrence.get("pattern") or {}, recurrence.get("range") or {}
    kind = pattern.get("type")
    rule: dict[str, Any] = {}
    days = [_ICAL_DAYS[_GRAPH_DAYS.index(d)] for d in pattern.get("daysOfWeek") or [] if d in _GRAPH_DAYS]
    index = _INDEX.get(str(pattern.get("index") or "first"), 1)
    if kind == "daily":
        rule["FREQ"] = "DAILY"
    elif kind == "weekly":
        rule.update(FREQ="WEEKLY", BYDAY=days)
        if pattern.get("firstDayOfWeek") and pattern["firstDayOfWeek"] != "monday":
            rule["WKST"] = _ICAL_DAYS[_GRAPH_DAYS.index(pattern["firstDayOfWeek"])]
    elif kind == "absoluteMonthly":
        rule.update(FREQ="MONTHLY", BYMONTHDAY=[int(pattern["dayOfMonth"])])
    elif kind == "relativeMonthly":
        rule.update(FREQ="MONTHLY", BYDAY=[f"{index}{d}" for d in days])
    elif kind == "absoluteYearly":
        rule.update(FREQ="YEARLY", BYMONTH=[int(pattern["month"])], BYMONTHDAY=[int(pattern["dayOfMonth"])])
    elif kind == "relativeYearly":
        rule.update(FREQ="YEARLY", BYMONTH=[int(pattern["month"])], BYDAY=[f"{index}{d}" for d in days])
    else:
        raise Permanent("read a series: its recurrence pattern is unknown")
    interval = int(pattern.get("interval") or 1)
    if interval != 1:
        rule["INTERVAL"] = interval
    if span.get("type") == "numbered":
        rule["COUNT"] = int(span["numberOfOccurrences"])
    elif span.get("type") == "endDate":
        last = date.fromisoformat(str(span["endDate"]))
        if isinstance(dtstart, datetime):
            until = datetime.combine(last, dtstart.astimezone(zone).time()).replace(tzinfo=zone).astimezone(UTC)
            rule["UNTIL"] = until
        else:
            rule["UNTIL"] = last
    return icalendar.vRecur(rule)


# -- iCalendar -> Graph JSON ----------------------------------------------------------------------

def _zone_name(zone: tzinfo) -> str:
    key = getattr(zone, "key", None)
    return str(key) if key else "UTC"


def _dtt(value: date | datetime, zone: tzinfo) -> dict[str, str]:
    if not isinstance(value, datetime):
        return {"dateTime": f"{value.isoformat()}T00:00:00", "timeZone": "UTC"}
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    name = _zone_name(value.tzinfo or UTC)
    return {"dateTime": value.replace(tzinfo=None).isoformat(timespec="seconds"), "timeZone": name}


def _bounds(event: icalendar.Event) -> tuple[date | datetime, date | datetime]:
    start = event.decoded("DTSTART")
    if "DTEND" in event:
        return start, event.decoded("DTEND")
    if "DURATION" in event:
        return start, start + event.decoded("DURATION")
    return start, start + (timedelta(days=1) if not isinstance(start, datetime) else timedelta(0))


def _regular_instance(master: icalendar.Event, original: datetime) -> dict[str, Any]:
    """The Graph body that puts the instance of ``master`` that began at ``original`` (UTC) back as the
    pattern has it: its own start, the series' length and content."""
    body = to_graph(master)
    body.pop("recurrence", None)
    start, end = _bounds(master)
    zone = zone_of(master)
    begins: date | datetime = original.date() if not isinstance(start, datetime) else original.astimezone(zone)
    body["start"], body["end"] = _dtt(begins, zone), _dtt(begins + (end - start), zone)
    return body


def to_graph(event: icalendar.Event) -> dict[str, Any]:
    """A VEVENT as Graph event JSON (the master's recurrence included)."""
    start, end = _bounds(event)
    zone = zone_of(event)
    all_day = not isinstance(start, datetime)
    body: dict[str, Any] = {
        "subject": str(event.get("SUMMARY", "")),
        "body": {"contentType": "text", "content": str(event.get("DESCRIPTION", ""))},
        "location": {"displayName": str(event.get("LOCATION", ""))},
        "start": _dtt(start, zone), "end": _dtt(end, zone), "isAllDay": all_day,
        "showAs": show_as_of(event),
        "sensitivity": {v: k for k, v in SENSITIVITY_CLASS.items()}.get(str(event.get("CLASS", "")).upper(), "normal"),
    }
    if "RRULE" in event:
        body["recurrence"] = recurrence_of(event.get("RRULE"), start, zone)
    return body


def show_as_of(event: icalendar.Event) -> str:
    status = str(event.get("X-MICROSOFT-CDO-BUSYSTATUS", "")).upper()
    by_status = {v: k for k, v in SHOW_AS_BUSYSTATUS.items()}
    if status in by_status:
        return by_status[status]
    if str(event.get("TRANSP", "")).upper() == "TRANSPARENT":
        return "free"
    if str(event.get("STATUS", "")).upper() == "TENTATIVE":
        return "tentative"
    return "busy"


def recurrence_of(rule: Any, start: date | datetime, zone: tzinfo) -> dict[str, Any]:
    """An RRULE as a patternedRecurrence; Permanent for what Graph cannot express."""
    if isinstance(rule, list):
        if len(rule) != 1:
            raise Permanent("write a series: Graph takes one RRULE")
        rule = rule[0]
    parts = {str(k).upper(): v for k, v in dict(rule).items()}
    allowed = {"FREQ", "INTERVAL", "COUNT", "UNTIL", "BYDAY", "BYMONTHDAY", "BYMONTH", "WKST", "BYSETPOS"}
    if set(parts) - allowed:
        raise Permanent(f"write a series: Graph cannot express {', '.join(sorted(set(parts) - allowed))}")
    freq = str(parts["FREQ"][0]).upper()
    interval = int(parts.get("INTERVAL", [1])[0])
    local = start.astimezone(zone) if isinstance(start, datetime) and start.tzinfo is not None else start
    first = local.date() if isinstance(local, datetime) else local
    days, indexes = [], set()
    for value in parts.get("BYDAY", []):
        text = str(value).upper()
        code, number = text[-2:], text[:-2]
        days.append(_GRAPH_DAYS[_ICAL_DAYS.index(code)])
        indexes.add(int(number) if number not in ("", "+") else None)
    setpos = [int(v) for v in parts.get("BYSETPOS", [])]
    if setpos:
        if len(setpos) != 1 or indexes != {None}:
            raise Permanent("write a series: Graph cannot express this BYSETPOS")
        indexes = {setpos[0]}
    pattern: dict[str, Any] = {"interval": interval}
    month_days = [int(v) for v in parts.get("BYMONTHDAY", [])]
    months = [int(v) for v in parts.get("BYMONTH", [])]
    if len(month_days) > 1 or len(months) > 1 or any(d < 1 for d in month_days):
        raise Permanent("write a series: Graph cannot express several or negative month days or months")
    if freq == "DAILY" and not days and not month_days and not months:
        pattern["type"] = "daily"
    elif freq == "WEEKLY" and not month_days and not months and indexes <= {None}:
        pattern.update(type="weekly", daysOfWeek=days or [_GRAPH_DAYS[first.weekday()]],
                       firstDayOfWeek=_GRAPH_DAYS[_ICAL_DAYS.index(str(parts.get("WKST", ["MO"])[0]).upper())])
    elif freq in ("MONTHLY", "YEARLY") and (days or month_days or not months or freq == "YEARLY"):
        yearly = freq == "YEARLY"
        if yearly:
            pattern["month"] = months[0] if months else first.month
        elif months:
            raise Permanent("write a series: Graph cannot express BYMONTH in a monthly rule")
        if days:
            if len(indexes) != 1 or None in indexes or next(iter(indexes)) not in _INDEX_NAMES:
                raise Permanent("write a series: Graph takes one weekday position (1st-4th or last)")
            pattern.update(type="relativeYearly" if yearly else "relativeMonthly", daysOfWeek=days,
                           index=_INDEX_NAMES[next(iter(indexes))])
        else:
            pattern.update(type="absoluteYearly" if yearly else "absoluteMonthly",
                           dayOfMonth=month_days[0] if month_days else first.day)
    else:
        raise Permanent(f"write a series: Graph cannot express this {freq} rule")
    span: dict[str, Any] = {"startDate": first.isoformat(), "recurrenceTimeZone": _zone_name(zone)}
    if "COUNT" in parts:
        span.update(type="numbered", numberOfOccurrences=int(parts["COUNT"][0]))
    elif "UNTIL" in parts:
        until = parts["UNTIL"][0]
        last = until.astimezone(zone).date() if isinstance(until, datetime) and until.tzinfo is not None else (
            until.date() if isinstance(until, datetime) else until)
        span.update(type="endDate", endDate=last.isoformat())
    else:
        span["type"] = "noEnd"
    return {"pattern": pattern, "range": span}


def _instance_span(master: icalendar.Event) -> tuple[datetime, datetime]:
    """The span a series written here is read back over: from its start on, 18 months and a bit."""
    start = utc(master.decoded("DTSTART"), zone_of(master))
    return start - timedelta(days=1), start + timedelta(days=600)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- connecting an account -------------------------------------------------------------------------

@dataclass
class MicrosoftAuthorization:
    """One pending consent (Authorization protocol): msal's auth-code flow with PKCE and nonce."""

    url: str
    _app: msal.ConfidentialClientApplication = field(repr=False)
    _flow: dict[str, Any] = field(repr=False)
    _base: dict[str, str] = field(repr=False)

    def complete(self, redirect_url: str) -> dict[str, str]:
        params = dict(parse_qsl(urlsplit(redirect_url).query, keep_blank_values=True))
        if "error" in params:
            raise AuthExpired(f"connect the account: {params['error'][:40]}")
        with _map_errors("connect the account"):
            try:
                result = self._app.acquire_token_by_auth_code_flow(self._flow, params, scopes=SCOPES)
            except ValueError:  # a state that does not match this flow
                raise AuthExpired("connect the account: the answer does not belong to this request") from None
        if "access_token" not in result:
            raise _grant_failure(result, "connect the account")
        return _credentials_from(result, self._base)

    def saved(self) -> dict[str, Any]:
        """What :func:`authorize` needs to resume this consent in another request or process (secret: the
        PKCE verifier and nonce; the caller keeps it encrypted)."""
        return {"flow": self._flow}


def authorize(app: OAuthApp, redirect_uri: str, *, certificate: Mapping[str, str] | None = None,
              verify: str | bool = True, resume: Mapping[str, Any] | None = None) -> MicrosoftAuthorization:
    """Start connecting a mailbox: send the user to ``.url``, then ``complete`` the redirect.

    ``app.tenant`` picks common/organizations/consumers or a tenant id, ``app.auth_url`` the login host;
    ``certificate`` (``{"private_key": PEM, "thumbprint": hex}``) replaces ``app.client_secret``;
    ``verify`` is what msal's requests session trusts (a PEM path); ``resume`` (what
    :meth:`MicrosoftAuthorization.saved` gave) continues a consent started elsewhere."""
    authority = f"{(app.auth_url or LOGIN_URL).rstrip('/')}/{app.tenant or 'common'}"
    base = {"client_id": app.client_id, "authority": authority}
    credential: str | dict[str, str]
    if certificate is not None:
        credential = {"private_key": certificate["private_key"], "thumbprint": certificate["thumbprint"]}
        base.update(certificate=certificate["private_key"], thumbprint=certificate["thumbprint"])
    else:
        credential = app.client_secret
        base["client_secret"] = app.client_secret
    with _map_errors("start connecting the account"):
        client = _msal_app(app.client_id, credential, authority, _CountingSession(verify, lambda: None))
        if resume is not None:
            flow = dict(resume["flow"])
            return MicrosoftAuthorization(url=str(flow["auth_uri"]), _app=client, _flow=flow, _base=base)
        with warnings.catch_warnings():  # msal advises form_post, which needs a listener taking POSTs; the
            # loopback redirect (RFC 8252) gets the query, so the advice is noise on the admin's terminal
            warnings.filterwarnings("ignore", message="response_mode='form_post' is recommended", category=UserWarning)
            flow = client.initiate_auth_code_flow(scopes=SCOPES, redirect_uri=redirect_uri)
    if "auth_uri" not in flow:
        raise Permanent("start connecting the account: msal gave no address")
    return MicrosoftAuthorization(url=str(flow["auth_uri"]), _app=client, _flow=flow, _base=base)


def transaction_id(key: str) -> str:
    """The transactionId an event created with ``key`` carries (GUID-shaped, stable)."""
    return str(uuid.uuid5(_TRANSACTIONS, key))


__all__ = ["GRAPH_URL", "LOGIN_URL", "QUIRKS", "MicrosoftAdapter", "MicrosoftAuthorization", "authorize",
           "recurrence_of", "rrule_of", "to_graph", "to_vevent", "transaction_id"]
