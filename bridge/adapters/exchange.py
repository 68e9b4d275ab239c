"""Exchange Server (on-premises) calendars through EWS, with exchangelib.

Connecting. The credentials (``auth``: ntlm, basic or oauth; ``username``, ``password``; ``access_token`` or
``client_id``/``client_secret``/``tenant_id``, and maybe ``authority`` and ``scope``, for OAuth; ``email``,
the mailbox; ``ews_url``; ``version``, a build such as 15.1.2507.6) name the mailbox by e-mail address.
Without an EWS URL (neither the connection's server URL nor a saved one) exchangelib's autodiscover finds it;
without a version exchangelib asks the server.
Both answers go to ``save_credentials`` at once, so later runs ask neither and a quiet cycle is exactly one
``SyncFolderItems`` request. Basic sends the password as it is: only over TLS (or to a loopback proxy).
exchangelib brings its own HTTP transport (requests); it is kept, and the tests' or a corporate CA is trusted
through ``BaseProtocol.HTTP_ADAPTER_CLS``, which is process-wide: the last bundle given wins for every
exchangelib connection of the process. Its retry policy stays FailFast: the engine decides when to try again.
exchangelib caches one protocol (sessions, password) per endpoint and credentials for the process; ``close``
drops it, so nothing of a connection outlives its run.

Fetching. ``SyncFolderItems`` from the saved ``SyncState`` lists what changed (ids only); ``GetItem`` reads
the created and updated items in batches. Without a state (a baseline), or once the engine's window has moved
more than a day past the listing's, the folder is listed from scratch with each item's start and end, and only
items overlapping the window (and every recurring master) are read: a complete Delta. An invalid state
(``ErrorInvalidSyncStateData``) is TokenInvalid. The calendar folder holds singles and recurring masters only;
a master carries its modified occurrences (read with one more GetItem, they become RECURRENCE-ID overrides)
and its deleted ones (EXDATE). A series' etag is its master's ChangeKey plus a digest of its exceptions' keys.

Writing. The iCalendar UID goes into EWS's own ``calendar:UID``; the engine's idempotency key into an
extended property (PublicStrings ``calbridge.key``). EWS has no idempotency key, so ``create`` first looks the
key up (``FindItem``) and returns what an earlier attempt made. Updates send the ChangeKey; a stale one
(``ErrorIrresolvableConflict``: Exchange also bumps it for reminders and meeting processing) is answered by
reading the current one and retrying once, since the engine only writes items it owns and the owner wins
(DESIGN.md). A series' overrides and exclusions are written per occurrence (``OccurrenceItemId`` by index).

Content (tables below): subject, body (as plain text; Outlook's HTML is reduced to its text), location,
start/end (all-day as dates), ``LegacyFreeBusyStatus`` (free and working elsewhere: TRANSP:TRANSPARENT; all
but NoData as X-MICROSOFT-CDO-BUSYSTATUS, which the rules read), ``Sensitivity`` (CLASS), ``IsCancelled``
(STATUS:CANCELLED); Windows zone names are mapped to IANA by icalendar's CLDR table.

Logs: exchangelib's own loggers are raised to CRITICAL on import, because its error records carry the request
and response XML (event content, mailbox addresses); this module logs failures without content instead.
"""

from __future__ import annotations

import contextvars
import hashlib
import html.parser
import json
import logging
import zoneinfo
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any, ClassVar
from urllib.parse import urlsplit

import exchangelib
import icalendar
import requests
from dateutil import rrule as dateutil_rrule
from exchangelib import errors as ews
from exchangelib import recurrence as ews_recurrence
from exchangelib.extended_properties import ExtendedProperty
from exchangelib.folders import Calendar as CalendarFolder
from exchangelib.folders import DistinguishedFolderId, Root
from exchangelib.items import CalendarItem
from exchangelib.protocol import BaseProtocol, Protocol
from oauthlib.oauth2.rfc6749 import errors as oauth2_errors

from bridge.adapters.base import (
    AuthExpired,
    Delta,
    Permanent,
    PreconditionFailed,
    RateLimited,
    RemoteCalendar,
    RemoteEvent,
    RemoteNotFound,
    TokenInvalid,
    Transient,
    Window,
)
from bridge.adapters.ical import instance_changes, split_series, zone_of
from bridge.adapters.zones import zone_named

log = logging.getLogger(__name__)
logging.getLogger("exchangelib").setLevel(logging.CRITICAL)  # its error logs carry request XML (event content)

KEY_FIELD = "calbridge_key"
AUTH_TYPES = {"ntlm": exchangelib.NTLM, "basic": exchangelib.BASIC, "oauth": exchangelib.OAUTH2}
_LOOPBACK = ("127.0.0.1", "::1", "localhost")
_WEEKDAYS = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]  # EWS weekday n (1 = Monday) is _WEEKDAYS[n - 1]

FREE_BUSY = {"Free": ("TRANSPARENT", "FREE"), "Tentative": ("OPAQUE", "TENTATIVE"), "Busy": ("OPAQUE", "BUSY"),
             "OOF": ("OPAQUE", "OOF"), "WorkingElsewhere": ("TRANSPARENT", "WORKINGELSEWHERE"),
             "NoData": ("OPAQUE", None)}
"""LegacyFreeBusyStatus -> (TRANSP, X-MICROSOFT-CDO-BUSYSTATUS). NoData (nothing known) counts as busy."""
SENSITIVITY_CLASS = {"Private": "PRIVATE", "Confidential": "CONFIDENTIAL", "Personal": "PRIVATE"}

_ITEM_FIELDS = ("subject", "body", "location", "start", "end", "is_all_day", "legacy_free_busy_status", "sensitivity",
                "uid", "type", "recurrence", "modified_occurrences", "deleted_occurrences", "_start_timezone",
                "is_cancelled", "last_modified_time", KEY_FIELD)
_OCCURRENCE_FIELDS = ("subject", "body", "location", "start", "end", "is_all_day", "legacy_free_busy_status",
                      "sensitivity", "is_cancelled", "last_modified_time")


@dataclass(frozen=True)
class Quirks:
    """EWS's limits and our margins."""

    page_size: int = 512  # MaxChangesReturned (EWS allows 1-512)
    window_roll: timedelta = timedelta(days=1)  # a window moved further than this lists the folder afresh
    default_retry_after: float = 60.0  # ErrorServerBusy without BackOffMilliseconds
    timeout: int = 60  # seconds per HTTP request


QUIRKS: Mapping[str, Quirks] = {"exchange": Quirks()}


class KeyProperty(ExtendedProperty):
    """The engine's idempotency key of an event this bridge created (EWS has none of its own)."""

    distinguished_property_set_id = "PublicStrings"
    property_name = "calbridge.key"
    property_type = "String"


if KEY_FIELD not in {f.name for f in CalendarItem.FIELDS}:
    CalendarItem.register(KEY_FIELD, KeyProperty)


# -- transport: trust and counting ------------------------------------------------------------

_COUNT: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar("ews_count", default=None)


class _Transport(requests.adapters.HTTPAdapter):
    """exchangelib's HTTP adapter: trusts ``bundle`` (process-wide) and counts requests for the adapter on whose
    behalf this thread sends them. ``verify`` is forced per request: requests would let REQUESTS_CA_BUNDLE win."""

    bundle: ClassVar[str | bool] = True

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        count = _COUNT.get()
        if count is not None:
            count()
        kwargs["verify"] = self.bundle
        return super().send(request, **kwargs)


def trust(bundle: str | None) -> None:
    """Make every exchangelib connection of the process trust ``bundle`` (a PEM path; None: the system's)."""
    _Transport.bundle = bundle or True
    BaseProtocol.HTTP_ADAPTER_CLS = _Transport


# -- errors --------------------------------------------------------------------------------------

_DNS_HINTS = ("NameResolutionError", "Name or service not known", "getaddrinfo", "nodename nor servname",
              "No address associated", "Temporary failure in name resolution")
_TLS_HINTS = ("SSL", "CERTIFICATE", "certificate", "TLS")
_PERMISSION = (ews.ErrorAccessDenied, ews.ErrorNonExistentMailbox, ews.ErrorImpersonateUserDenied,
               ews.ErrorImpersonationDenied, ews.ErrorImpersonationFailed)
_TRANSIENT = (ews.ErrorInternalServerTransientError, ews.ErrorInternalServerError, ews.ErrorMailboxStoreUnavailable,
              ews.ErrorConnectionFailed, ews.ErrorConnectionFailedTransientError, ews.ErrorTooManyObjectsOpened,
              ews.MalformedResponseError, ews.SOAPError)


def _describe_transport(exc: BaseException) -> tuple[type[Exception], str]:
    """A network failure in plain words (DNS, TLS, the connection) and the error class it is."""
    text = str(exc)
    if any(hint in text for hint in _DNS_HINTS):
        return Transient, "the server name could not be resolved (DNS)"
    if any(hint in text for hint in _TLS_HINTS):
        return Permanent, "the TLS connection failed (is the server's certificate trusted?)"
    return Transient, "the server could not be reached"


@contextmanager
def _map_errors(what: str, *, sync: bool = False, quirks: Quirks = QUIRKS["exchange"]) -> Iterator[None]:
    """exchangelib's errors -> the base error tree. Messages name the operation and EWS's response code or a
    plain reason, never a URL, a user name or event content. The library's traceback is dropped first: its
    frames hold the request (the password, for NTLM) and the response with its socket."""
    try:
        yield
    except Exception as exc:
        exc.__traceback__ = None
        _raise_mapped(exc, what, sync, quirks)


def _raise_mapped(error: Exception, what: str, sync: bool, quirks: Quirks) -> None:
    try:
        raise error
    except ews.ErrorInvalidSyncStateData:
        if sync:
            raise TokenInvalid(f"{what}: ErrorInvalidSyncStateData") from None
        raise Permanent(f"{what}: ErrorInvalidSyncStateData") from None
    except ews.ErrorServerBusy as exc:
        back_off = exc.back_off if exc.back_off else quirks.default_retry_after
        raise RateLimited(f"{what}: ErrorServerBusy", float(back_off)) from None
    except ews.RateLimitError as exc:
        raise RateLimited(f"{what}: the server asked to slow down", float(exc.wait or quirks.default_retry_after)) \
            from None
    except (ews.UnauthorizedError, ews.CASError) as exc:
        if isinstance(exc, ews.CASError) and "401" not in str(exc):
            raise Transient(f"{what}: the server's front end refused the request") from None
        raise AuthExpired(f"{what}: the server refused the user name or password (authentication)") from None
    except _PERMISSION as exc:
        raise Permanent(f"{what}: {type(exc).__name__}: the account may not open this mailbox or calendar "
                        "(permissions)") from None
    except (ews.ErrorItemNotFound, ews.ErrorFolderNotFound) as exc:
        raise RemoteNotFound(f"{what}: {type(exc).__name__}") from None
    except (ews.ErrorIrresolvableConflict, ews.ErrorStaleObject) as exc:
        raise PreconditionFailed(f"{what}: {type(exc).__name__}") from None
    except ews.AutoDiscoverError:
        raise Permanent(f"{what}: autodiscover found no EWS address for this e-mail address; give the EWS URL") \
            from None
    except ews.ErrorTimeoutExpired as exc:
        kind, reason = _describe_transport(exc)
        raise kind(f"{what}: {reason}") from None
    except _TRANSIENT as exc:
        raise Transient(f"{what}: {type(exc).__name__}") from None
    except ews.RedirectError:
        raise Permanent(f"{what}: the server redirects elsewhere; give the EWS URL") from None
    except ews.ResponseMessageError as exc:
        raise Permanent(f"{what}: {type(exc).__name__}") from None
    except ews.TransportError as exc:  # TLS failures, and what exchangelib could not classify
        kind, reason = _describe_transport(exc)
        raise kind(f"{what}: {reason}") from None
    except requests.RequestException as exc:
        kind, reason = _describe_transport(exc)
        raise kind(f"{what}: {reason}") from None
    except (oauth2_errors.InvalidClientError, oauth2_errors.InvalidGrantError, oauth2_errors.UnauthorizedClientError,
            oauth2_errors.AccessDeniedError, oauth2_errors.TokenExpiredError):
        raise AuthExpired(f"{what}: the token endpoint refused the app's credentials (authentication)") from None
    except (oauth2_errors.ServerError, oauth2_errors.TemporarilyUnavailableError):
        raise Transient(f"{what}: the token endpoint failed for now") from None
    except oauth2_errors.OAuth2Error as exc:
        raise Permanent(f"{what}: the token endpoint refused the request ({exc.error})") from None
    except (ews.EWSError, ValueError, TypeError) as exc:
        raise Permanent(f"{what}: {type(exc).__name__}") from None



def _forget_autodiscover(email: str, secret: Any) -> None:
    """Drop exchangelib's autodiscover protocol for this domain and these credentials: it would keep the password
    for the process, and the EWS URL it found is saved with the connection instead."""
    cache = exchangelib.autodiscover.autodiscover_cache
    key = (email.rpartition("@")[2].lower(), secret)
    with cache:
        if key in cache:
            cache[key].close()
            del cache[key]

# -- state ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _State:
    """The folder's SyncState and the window the last full listing covered."""

    sync_state: str
    start: datetime
    end: datetime

    def encode(self) -> str:
        return json.dumps({"v": 1, "s": self.sync_state, "w": [self.start.isoformat(), self.end.isoformat()]},
                          separators=(",", ":"), sort_keys=True)

    @classmethod
    def decode(cls, text: str) -> _State:
        try:
            data = json.loads(text)
            if not isinstance(data, dict) or data.get("v") != 1 or not isinstance(data.get("s"), str):
                raise ValueError
            start, end = (datetime.fromisoformat(w) for w in data["w"])
        except (ValueError, TypeError, KeyError, AttributeError):
            raise TokenInvalid("the saved EWS state is not readable") from None
        return cls(data["s"], start, end)


# -- the adapter -----------------------------------------------------------------------------------

class ExchangeAdapter:
    """One calendar folder of an Exchange mailbox (module docstring). ``server_url``: the EWS URL, when known;
    ``calendar_id``: the folder's id ('' for the mailbox's default calendar); ``ca_bundle``: the PEM path
    exchangelib trusts (process-wide, see :func:`trust`)."""

    provider: ClassVar[str] = "exchange"
    read_only: ClassVar[bool] = False

    def __init__(self, credentials: Mapping[str, str], calendar_id: str = "", *, server_url: str = "",
                 save_credentials: Callable[[Mapping[str, str]], None] | None = None, ca_bundle: str | None = None,
                 quirks: Quirks | None = None) -> None:
        self._credentials = dict(credentials)
        self._calendar_id = calendar_id
        self._server_url = server_url
        self._save = save_credentials
        self._quirks = quirks or QUIRKS[self.provider]
        self._requests = 0
        self._account: exchangelib.Account | None = None
        trust(ca_bundle)

    def _counted(self) -> None:
        self._requests += 1

    @property
    def requests_made(self) -> int:
        return self._requests

    def close(self) -> None:
        """Close this mailbox's sessions and drop exchangelib's cached protocol (it holds the password)."""
        if self._account is not None:
            protocol = self._account.protocol
            protocol.close()
            with suppress(KeyError):
                del Protocol[protocol.config]
            self._account = None

    @contextmanager
    def _call(self, what: str, *, sync: bool = False) -> Iterator[None]:
        token = _COUNT.set(self._counted)
        try:
            with _map_errors(what, sync=sync, quirks=self._quirks):
                yield
        finally:
            _COUNT.reset(token)

    # -- connecting ----------------------------------------------------------------------------

    def _mailbox(self) -> exchangelib.Account:
        if self._account is None:
            with self._call("connect to the mailbox"):
                self._account = self._connect()
        return self._account

    def _connect(self) -> exchangelib.Account:
        credentials = self._credentials
        email = credentials.get("email") or credentials.get("username", "")
        if "@" not in email:
            raise Permanent("connect to the mailbox: the connection needs the mailbox's e-mail address")
        auth = (credentials.get("auth") or "ntlm").lower()
        if auth not in AUTH_TYPES:
            raise Permanent(f"connect to the mailbox: unknown authentication {auth!r} (ntlm, basic or oauth)")
        secret = _credentials_of(auth, credentials, email)
        url = self._server_url or credentials.get("ews_url", "")
        version = _version_of(credentials.get("version", ""))
        changed: dict[str, str] = {}
        if not url:
            try:
                account = exchangelib.Account(email, credentials=secret, autodiscover=True,
                                              access_type=exchangelib.DELEGATE, default_timezone=exchangelib.UTC,
                                              config=exchangelib.Configuration(credentials=secret,
                                                                               auth_type=AUTH_TYPES[auth],
                                                                               version=version))
            finally:
                _forget_autodiscover(email, secret)
            url = str(account.protocol.service_endpoint)
            changed["ews_url"] = url
        _refuse_plain_basic(auth, url)
        config = exchangelib.Configuration(credentials=secret, service_endpoint=url, auth_type=AUTH_TYPES[auth],
                                           version=version)
        account = exchangelib.Account(email, config=config, autodiscover=False, access_type=exchangelib.DELEGATE,
                                      default_timezone=exchangelib.UTC)
        account.protocol.TIMEOUT = self._quirks.timeout
        if version is None:
            build = account.protocol.version.build  # asks the server once (ConvertId)
            changed["version"] = str(build)
        if changed and self._save is not None:
            self._credentials.update(changed)
            self._save(dict(self._credentials))
        return account

    def _folder(self) -> CalendarFolder:
        account = self._mailbox()
        root = Root(account=account)
        if self._calendar_id:
            return CalendarFolder(root=root, id=self._calendar_id)
        return CalendarFolder(root=root, _distinguished_id=DistinguishedFolderId(id="calendar"))

    # -- calendars -----------------------------------------------------------------------------

    def list_calendars(self) -> list[RemoteCalendar]:
        account = self._mailbox()
        with self._call("list calendars"):
            default = account.calendar
            found = [RemoteCalendar(id=str(default.id), name=str(default.name or "Calendar"))]
            for child in default.walk():
                if isinstance(child, CalendarFolder) and child.id:
                    found.append(RemoteCalendar(id=str(child.id), name=str(child.name or "")))
        return found

    # -- fetch ---------------------------------------------------------------------------------

    def fetch(self, state: str | None, window: Window) -> Delta:
        if state is None:
            return self._listing(window)
        saved = _State.decode(state)
        roll = self._quirks.window_roll
        if abs(window.start - saved.start) > roll or abs(window.end - saved.end) > roll:
            return self._listing(window)
        return self._incremental(saved)

    def _sync(self, sync_state: str | None, fields: tuple[str, ...]) -> tuple[list[tuple[str, Any]], str]:
        folder = self._folder()
        with self._call("fetch changes", sync=True):
            changes = list(folder.sync_items(sync_state=sync_state, only_fields=list(fields),
                                             max_changes_returned=self._quirks.page_size))
        if not folder.item_sync_state:
            raise Transient("fetch changes: no SyncState in the answer")
        return changes, str(folder.item_sync_state)

    def _listing(self, window: Window) -> Delta:
        start, end = window.start.astimezone(UTC), window.end.astimezone(UTC)
        changes, sync_state = self._sync(None, ("start", "end", "type"))
        wanted = [item.id for kind, item in changes
                  if kind in ("create", "update") and isinstance(item, CalendarItem) and _may_overlap(item, start, end)]
        events = [e for e in self._read(wanted)[0] if _event_overlaps(e, start, end)]
        return Delta(changed=events, deleted=[], state=_State(sync_state, start, end).encode(), complete=True)

    def _incremental(self, saved: _State) -> Delta:
        changes, sync_state = self._sync(saved.sync_state, ())
        changed: list[str] = []
        deleted: set[str] = set()
        for kind, item in changes:
            if kind in ("create", "update") and getattr(item, "id", None):
                changed.append(str(item.id))
            elif kind == "delete" and getattr(item, "id", None):
                deleted.add(str(item.id))
        events, gone = self._read(list(dict.fromkeys(i for i in changed if i not in deleted)))
        deleted |= gone
        return Delta(changed=events, deleted=sorted(deleted), state=_State(sync_state, saved.start,
                                                                           saved.end).encode(), complete=False)

    def _read(self, ids: list[str]) -> tuple[list[RemoteEvent], set[str]]:
        """The events of these item ids (GetItem in batches), and the ids that are gone."""
        if not ids:
            return [], set()
        account = self._mailbox()
        with self._call("read events"):
            answers = list(account.fetch(ids=[(i, None) for i in ids], folder=self._folder(),
                                         only_fields=list(_ITEM_FIELDS)))
        items: list[CalendarItem] = []
        gone: set[str] = set()
        for item_id, answer in zip(ids, answers, strict=False):
            if isinstance(answer, ews.ErrorItemNotFound):
                gone.add(item_id)
            elif isinstance(answer, Exception):
                with self._call("read events"):
                    raise answer
            elif isinstance(answer, CalendarItem):
                items.append(answer)
        overrides = self._overrides(items)
        return [self._event(item, overrides) for item in items], gone

    def _overrides(self, masters: list[CalendarItem]) -> dict[str, CalendarItem]:
        """The modified occurrences of these masters, by occurrence id (one GetItem for all)."""
        ids = [str(o.id) for m in masters for o in (m.modified_occurrences or []) if o.id]
        if not ids:
            return {}
        account = self._mailbox()
        with self._call("read a series' exceptions"):
            answers = list(account.fetch(ids=[(i, None) for i in ids], folder=self._folder(),
                                         only_fields=list(_OCCURRENCE_FIELDS)))
        return {i: a for i, a in zip(ids, answers, strict=False) if isinstance(a, CalendarItem)}

    def _event(self, item: CalendarItem, overrides: Mapping[str, CalendarItem]) -> RemoteEvent:
        uid = str(item.uid or item.id)
        key = getattr(item, KEY_FIELD, None)
        if item.type == "RecurringMaster" and item.recurrence is not None:
            calendar = series_calendar(item, uid, overrides)
            parts = sorted((str(o.original_start), str(overrides[str(o.id)].changekey if str(o.id) in overrides
                                                       else o.id)) for o in item.modified_occurrences or [])
            gone = sorted(str(d.start) for d in item.deleted_occurrences or [])
            digest = hashlib.sha256(json.dumps([parts, gone]).encode()).hexdigest()[:16]
            etag = f"{item.changekey}|{digest}"
        else:
            calendar = _vcalendar()
            calendar.add_component(to_vevent(item, uid))
            etag = str(item.changekey)
        return RemoteEvent(remote_id=str(item.id), etag=etag, calendar=calendar, key=str(key) if key else None)

    # -- writes --------------------------------------------------------------------------------

    def create(self, event: icalendar.Calendar, key: str) -> RemoteEvent:
        master, overrides, uid = split_series(event, "EWS")
        folder = self._folder()
        with self._call("look up an earlier create"):
            earlier = list(folder.filter(**{KEY_FIELD: key}).only("id", "changekey"))
        if earlier:  # a retry after a crash: the first attempt's event
            events, _ = self._read([str(earlier[0].id)])
            if events:
                return events[0]
        item = CalendarItem(account=self._mailbox(), folder=folder, **ews_fields(master))
        item.uid = uid
        setattr(item, KEY_FIELD, key)
        with self._call("create an event"):
            item.save(send_meeting_invitations="SendToNone")
        if "RRULE" not in master:
            return RemoteEvent(remote_id=str(item.id), etag=str(item.changekey), calendar=event, key=key)
        self._write_occurrences(item, master, overrides)
        return self._written(str(item.id), event, key)

    def update(self, remote_id: str, etag: str, event: icalendar.Calendar) -> RemoteEvent:
        master, overrides, uid = split_series(event, "EWS")
        fields = ews_fields(master)
        if "RRULE" not in master:
            fields["recurrence"] = None
        changekey = etag.split("|", 1)[0] or self._current_changekey(remote_id)
        for attempt in (1, 2):
            item = CalendarItem(account=self._mailbox(), folder=self._folder(), id=remote_id, changekey=changekey,
                                **fields)
            item.uid = uid
            try:
                with self._call("update an event"):
                    item.save(update_fields=[*fields, "uid"], conflict_resolution="NeverOverwrite",
                              send_meeting_invitations="SendToNone")
                break
            except PreconditionFailed:
                if attempt == 2:
                    raise
                changekey = self._current_changekey(remote_id)  # a stale ChangeKey: read the current one, retry
        if "RRULE" not in master:
            return RemoteEvent(remote_id=remote_id, etag=str(item.changekey), calendar=event)
        self._write_occurrences(item, master, overrides)
        return self._written(remote_id, event, None)

    def delete(self, remote_id: str, etag: str | None) -> None:
        item = CalendarItem(account=self._mailbox(), folder=self._folder(), id=remote_id, changekey=None)
        with suppress(RemoteNotFound), self._call("delete an event"):
            item.delete(send_meeting_cancellations="SendToNone")

    def _current_changekey(self, remote_id: str) -> str:
        account = self._mailbox()
        with self._call("read an event"):
            (found,) = list(account.fetch(ids=[(remote_id, None)], folder=self._folder(),
                                          only_fields=["changekey"]))
            if isinstance(found, Exception):
                raise found
        return str(found.changekey)

    def _written(self, remote_id: str, event: icalendar.Calendar, key: str | None) -> RemoteEvent:
        """A series just written, with the etag a fetch will compute (read back: its etag covers its exceptions'
        ChangeKeys, and EWS answers a write with the master's ChangeKey only)."""
        events, _ = self._read([remote_id])
        if not events:
            raise RemoteNotFound("write an event: it is gone right after the write")
        found = events[0]
        return RemoteEvent(remote_id=remote_id, etag=found.etag, calendar=event, key=key or found.key)

    def _write_occurrences(self, item: CalendarItem, master: icalendar.Event,
                           overrides: list[icalendar.Event]) -> None:
        """Delete the excluded and cancelled occurrences of a series just written and change the moved ones,
        each by its index in the pattern."""
        originals = _originals(master)
        gone, changed = instance_changes(master, overrides)
        for original in sorted(gone):
            if original in originals:
                occurrence = item.occurrence(originals.index(original) + 1)
                with suppress(RemoteNotFound, Permanent), self._call("cancel an occurrence"):
                    occurrence.delete(send_meeting_cancellations="SendToNone")
        for original, override in sorted(changed.items()):
            if original not in originals:
                continue
            occurrence = item.occurrence(originals.index(original) + 1)
            fields = ews_fields(override)
            fields.pop("recurrence", None)
            for name, value in fields.items():
                setattr(occurrence, name, value)
            with self._call("change an occurrence"):
                occurrence.save(update_fields=list(fields), conflict_resolution="AlwaysOverwrite",
                                send_meeting_invitations="SendToNone")


# -- connecting helpers -------------------------------------------------------------------------

def _credentials_of(auth: str, credentials: Mapping[str, str], email: str) -> exchangelib.credentials.BaseCredentials:
    if auth != "oauth":
        if not credentials.get("username"):
            raise Permanent("connect to the mailbox: the connection has no user name")
        return exchangelib.Credentials(credentials["username"], credentials.get("password", ""))
    identity = exchangelib.Identity(primary_smtp_address=email)
    if credentials.get("access_token"):
        return exchangelib.OAuth2AuthorizationCodeCredentials(
            client_id=credentials.get("client_id"), client_secret=credentials.get("client_secret"),
            access_token={"access_token": credentials["access_token"], "token_type": "Bearer"}, identity=identity)
    if credentials.get("client_id") and credentials.get("client_secret"):
        return _AppCredentials(client_id=credentials["client_id"], client_secret=credentials["client_secret"],
                               tenant_id=credentials.get("tenant_id") or "common", identity=identity,
                               authority=credentials.get("authority", ""), resource=credentials.get("scope", ""))
    raise AuthExpired("connect to the mailbox: OAuth needs an access token or a client id and secret")


class _AppCredentials(exchangelib.OAuth2Credentials):
    """Application access (client credentials) with the token endpoint and scope a connection names: a
    national cloud's or a hybrid server's authority (``authority``, e.g. ``https://login.microsoftonline.us/<tenant>``)
    and resource (``scope``, e.g. ``https://mail.praxis.example/.default``); Exchange Online's by default.
    exchangelib then sends ExchangeImpersonation for the mailbox with every request."""

    def __init__(self, *, authority: str, resource: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._authority, self._resource = authority.rstrip("/"), resource

    @property
    def token_url(self) -> str:
        if self._authority:
            return f"{self._authority}/oauth2/v2.0/token"
        return str(super().token_url)

    @property
    def scope(self) -> list[str]:
        return [self._resource] if self._resource else list(super().scope)


def _version_of(text: str) -> exchangelib.Version | None:
    """A stored build ('15.1.2507.6') as an exchangelib Version; None when none is stored (ask the server)."""
    if not text:
        return None
    try:
        parts = [int(p) for p in text.split(".")]
        return exchangelib.Version(build=exchangelib.Build(*(parts + [0, 0])[:4]))
    except (TypeError, ValueError):
        raise Permanent("connect to the mailbox: the server version is not a build number like 15.1.2507.6") \
            from None


def _refuse_plain_basic(auth: str, url: str) -> None:
    """Basic sends the password in every request: over TLS only (a proxy on this machine excepted)."""
    parts = urlsplit(url)
    if auth == "basic" and parts.scheme != "https" and parts.hostname not in _LOOPBACK:
        raise Permanent("connect to the mailbox: Basic authentication is only used over TLS (https)")


# -- window ----------------------------------------------------------------------------------------

def _as_utc(value: Any, end: bool = False) -> datetime | None:
    if isinstance(value, datetime):
        moment = _plain(value)
        assert isinstance(moment, datetime)
        return moment
    if isinstance(value, date):
        return datetime.combine(_plain(value) + timedelta(days=1 if end else 0), time(0), tzinfo=UTC)
    return None


def _may_overlap(item: CalendarItem, start: datetime, end: datetime) -> bool:
    """Whether a listed item may show in [start, end): every series and every item whose times are unknown."""
    if item.type == "RecurringMaster":
        return True
    first, last = _as_utc(item.start), _as_utc(item.end, end=True)
    if first is None or last is None:
        return True
    return first < end + timedelta(days=1) and last > start - timedelta(days=1)  # all-day dates: a day's margin


def _event_overlaps(event: RemoteEvent, start: datetime, end: datetime) -> bool:
    head = split_series(event.calendar, "EWS")[0]
    if "RRULE" in head:
        return True
    first = _as_utc(head.decoded("DTSTART"))
    last = _as_utc(head.decoded("DTEND"), end=False) if "DTEND" in head else first
    return first is not None and last is not None and first < end and (last > start or first >= start)


# -- EWS -> iCalendar ----------------------------------------------------------------------------------

def _vcalendar() -> icalendar.Calendar:
    calendar = icalendar.Calendar()
    calendar.add("PRODID", "-//calbridge//Exchange EWS//EN")
    calendar.add("VERSION", "2.0")
    return calendar


def _item_zone(item: CalendarItem) -> tzinfo:
    zone = getattr(item, "_start_timezone", None)
    if zone is None:
        return UTC
    return zone_named(getattr(zone, "ms_id", None) or getattr(zone, "key", None))


def _plain(value: Any) -> date | datetime:
    """An exchangelib date or datetime as a plain one (aware UTC for datetimes)."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return datetime(*value.timetuple()[:6], tzinfo=UTC)
        return datetime.fromtimestamp(int(value.timestamp()), UTC)
    if isinstance(value, date):
        return date(value.year, value.month, value.day)
    raise Permanent("read an event: it has no start or end")


def to_vevent(item: CalendarItem, uid: str, zone: tzinfo = UTC) -> icalendar.Event:
    """One EWS calendar item (single, master without its recurrence, or occurrence) as a VEVENT; timed values
    in ``zone`` (a series keeps its wall-clock times across DST in its own zone)."""
    event = icalendar.Event()
    event.add("UID", uid)
    stamp = item.last_modified_time
    event.add("DTSTAMP", _plain(stamp) if stamp else datetime(2000, 1, 1, tzinfo=UTC))
    start, end = _plain(item.start), _plain(item.end)
    if item.is_all_day:
        first = start.date() if isinstance(start, datetime) else start
        last = end.date() if isinstance(end, datetime) else end
        event.add("DTSTART", first)
        event.add("DTEND", max(last + timedelta(days=1), first + timedelta(days=1)))  # exchangelib: the last day
    else:
        assert isinstance(start, datetime) and isinstance(end, datetime)
        event.add("DTSTART", start if zone is UTC else start.astimezone(zone))
        event.add("DTEND", end if zone is UTC else end.astimezone(zone))
    event.add("SUMMARY", str(item.subject or ""))
    body = _text_of(item.body)
    if body:
        event.add("DESCRIPTION", body)
    if item.location:
        event.add("LOCATION", str(item.location))
    _markers(event, item)
    return event


class _Text(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in ("br", "p", "div", "li", "tr"):
            self.parts.append("\n")


def _text_of(body: Any) -> str:
    """An item's body as plain text (Outlook stores HTML; EWS 2010 has no TextBody to ask for)."""
    if not body:
        return ""
    if isinstance(body, exchangelib.HTMLBody):
        parser = _Text()
        parser.feed(str(body))
        lines = (" ".join(line.split()) for line in "".join(parser.parts).splitlines())
        return "\n".join(line for line in lines if line).strip()
    return str(body).strip()


def _markers(event: icalendar.Event, item: CalendarItem) -> None:
    transp, status = FREE_BUSY.get(str(item.legacy_free_busy_status or "Busy"), ("OPAQUE", "BUSY"))
    event.add("TRANSP", transp)
    if status is not None:
        event.add("X-MICROSOFT-CDO-BUSYSTATUS", status)
    if str(item.sensitivity or "Normal") in SENSITIVITY_CLASS:
        event.add("CLASS", SENSITIVITY_CLASS[str(item.sensitivity)])
    if item.is_cancelled:
        event.add("STATUS", "CANCELLED")


def series_calendar(master: CalendarItem, uid: str, overrides: Mapping[str, CalendarItem]) -> icalendar.Calendar:
    """A recurring master as master (RRULE, EXDATE) plus overrides for its modified occurrences."""
    zone = _item_zone(master)
    all_day = bool(master.is_all_day)
    head = to_vevent(master, uid, zone)
    head.add("RRULE", rrule_of(master.recurrence, head.decoded("DTSTART"), zone))
    deleted = sorted(_plain(d.start) for d in master.deleted_occurrences or [] if d.start is not None)
    if deleted:
        head.add("EXDATE", [_recurrence_id(d, all_day, zone) for d in deleted])
    calendar = _vcalendar()
    calendar.add_component(head)
    for occurrence in sorted(master.modified_occurrences or [], key=lambda o: str(o.original_start)):
        if occurrence.original_start is None:
            continue
        read = overrides.get(str(occurrence.id))
        source = read if read is not None else master
        override = to_vevent(source, uid, UTC)
        if read is None:  # not read: the master's content at the occurrence's times
            for name, value in (("DTSTART", occurrence.start), ("DTEND", occurrence.end)):
                override.pop(name)
                override.add(name, _plain(value))
        override.add("RECURRENCE-ID", _recurrence_id(_plain(occurrence.original_start), all_day, zone))
        calendar.add_component(override)
    return calendar


def _recurrence_id(moment: date | datetime, all_day: bool, zone: tzinfo) -> date | datetime:
    if not isinstance(moment, datetime):
        return moment
    if all_day:
        return moment.astimezone(zone).date()
    return moment if zone is UTC else moment.astimezone(zone)


def rrule_of(recurrence: Any, dtstart: date | datetime, zone: tzinfo) -> icalendar.vRecur:
    """An EWS Recurrence (pattern and boundary) as an RRULE."""
    pattern, boundary = recurrence.pattern, recurrence.boundary
    rule: dict[str, Any] = {}
    if isinstance(pattern, ews_recurrence.DailyPattern):
        rule["FREQ"] = "DAILY"
    elif isinstance(pattern, ews_recurrence.WeeklyPattern):
        days = [_weekday(d) for d in _as_list(pattern.weekdays)]
        rule.update(FREQ="WEEKLY", BYDAY=days)
        if pattern.first_day_of_week and _weekday(pattern.first_day_of_week) != "MO":
            rule["WKST"] = _weekday(pattern.first_day_of_week)
    elif isinstance(pattern, ews_recurrence.AbsoluteMonthlyPattern):
        rule.update(FREQ="MONTHLY", BYMONTHDAY=[int(pattern.day_of_month)])
    elif isinstance(pattern, ews_recurrence.RelativeMonthlyPattern):
        rule.update(FREQ="MONTHLY", BYDAY=[f"{_position(pattern.week_number)}{_weekday(pattern.weekday)}"])
    elif isinstance(pattern, ews_recurrence.AbsoluteYearlyPattern):
        rule.update(FREQ="YEARLY", BYMONTH=[int(pattern.month)], BYMONTHDAY=[int(pattern.day_of_month)])
    elif isinstance(pattern, ews_recurrence.RelativeYearlyPattern):
        rule.update(FREQ="YEARLY", BYMONTH=[int(pattern.month)],
                    BYDAY=[f"{_position(pattern.week_number)}{_weekday(pattern.weekday)}"])
    else:
        raise Permanent("read a series: its recurrence pattern is unknown")
    interval = int(getattr(pattern, "interval", None) or 1)
    if interval != 1:
        rule["INTERVAL"] = interval
    if isinstance(boundary, ews_recurrence.NumberedPattern):
        rule["COUNT"] = int(boundary.number)
    elif isinstance(boundary, ews_recurrence.EndDatePattern):
        last = _plain(boundary.end)
        last_day = last.date() if isinstance(last, datetime) else last
        if isinstance(dtstart, datetime):
            local = dtstart.astimezone(zone) if dtstart.tzinfo else dtstart
            rule["UNTIL"] = datetime.combine(last_day, local.time(), tzinfo=zone).astimezone(UTC)
        else:
            rule["UNTIL"] = last_day
    return icalendar.vRecur(rule)


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else [value]


def _weekday(value: Any) -> str:
    """An exchangelib weekday (1 = Monday, or its English name) as an iCalendar day code."""
    if isinstance(value, int):
        return _WEEKDAYS[value - 1]
    names = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
    if str(value) in names:
        return _WEEKDAYS[names.index(str(value))]
    raise Permanent("read a series: a day kind (Day, Weekday, WeekendDay) iCalendar cannot express simply")


def _position(value: Any) -> int:
    """An exchangelib week number (1-4, 5 = Last, or its name) as a BYDAY position."""
    names = ["First", "Second", "Third", "Fourth", "Last"]
    number = value if isinstance(value, int) else names.index(str(value)) + 1
    return -1 if number == 5 else int(number)


# -- iCalendar -> EWS ------------------------------------------------------------------------------

def _ews_time(value: datetime, zone: tzinfo) -> exchangelib.EWSDateTime:
    """An aware datetime in its own zone where EWS knows that zone (StartTimeZone follows it), else in UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    key = getattr(value.tzinfo, "key", None) or ("UTC" if value.utcoffset() == timedelta(0) else None)
    if key:
        try:
            return exchangelib.EWSDateTime.from_datetime(value.astimezone(zoneinfo.ZoneInfo(key)))
        except (ews.UnknownTimeZone, ValueError, zoneinfo.ZoneInfoNotFoundError):
            pass
    return exchangelib.EWSDateTime.from_datetime(value.astimezone(zoneinfo.ZoneInfo("UTC")))


def ews_fields(event: icalendar.Event) -> dict[str, Any]:
    """A VEVENT as CalendarItem field values (the master's recurrence included)."""
    start = event.decoded("DTSTART")
    if "DTEND" in event:
        end = event.decoded("DTEND")
    elif "DURATION" in event:
        end = start + event.decoded("DURATION")
    else:
        end = start + (timedelta(days=1) if not isinstance(start, datetime) else timedelta(0))
    zone = zone_of(event)
    all_day = not isinstance(start, datetime)
    fields: dict[str, Any] = {
        "subject": str(event.get("SUMMARY", "")),
        "body": exchangelib.Body(str(event.get("DESCRIPTION", ""))),
        "location": str(event.get("LOCATION", "")) or None,
        "is_all_day": all_day,
        "legacy_free_busy_status": free_busy_of(event),
        "sensitivity": {"PRIVATE": "Private", "CONFIDENTIAL": "Confidential"}.get(
            str(event.get("CLASS", "")).upper(), "Normal"),
    }
    if all_day:
        last = end - timedelta(days=1) if end > start else start  # exchangelib takes the last day
        fields.update(start=exchangelib.EWSDate.from_date(start), end=exchangelib.EWSDate.from_date(last))
    else:
        fields.update(start=_ews_time(start, zone), end=_ews_time(end, zone))
    if "RRULE" in event:
        fields["recurrence"] = recurrence_of(event.get("RRULE"), start, zone)
    return fields


def free_busy_of(event: icalendar.Event) -> str:
    """The LegacyFreeBusyStatus a VEVENT stands for (its busy-status marker first, then TRANSP and STATUS)."""
    status = str(event.get("X-MICROSOFT-CDO-BUSYSTATUS", "")).upper()
    by_status = {marker: name for name, (_, marker) in FREE_BUSY.items() if marker}
    if status in by_status:
        return by_status[status]
    if str(event.get("TRANSP", "")).upper() == "TRANSPARENT":
        return "Free"
    if str(event.get("STATUS", "")).upper() == "TENTATIVE":
        return "Tentative"
    return "Busy"


def recurrence_of(rule: Any, start: date | datetime, zone: tzinfo) -> ews_recurrence.Recurrence:
    """An RRULE as an EWS Recurrence; Permanent for what EWS cannot express."""
    if isinstance(rule, list):
        if len(rule) != 1:
            raise Permanent("write a series: EWS takes one RRULE")
        rule = rule[0]
    parts = {str(k).upper(): v if isinstance(v, list) else [v] for k, v in dict(rule).items()}
    allowed = {"FREQ", "INTERVAL", "COUNT", "UNTIL", "BYDAY", "BYMONTHDAY", "BYMONTH", "WKST"}
    if set(parts) - allowed:
        raise Permanent(f"write a series: EWS cannot express {', '.join(sorted(set(parts) - allowed))}")
    freq = str(parts["FREQ"][0]).upper()
    interval = int(parts.get("INTERVAL", [1])[0])
    local = start.astimezone(zone) if isinstance(start, datetime) and start.tzinfo is not None else start
    first = local.date() if isinstance(local, datetime) else local
    days: list[tuple[int | None, int]] = []
    for value in parts.get("BYDAY", []):
        text = str(value).upper()
        number = text[:-2]
        days.append((int(number) if number not in ("", "+") else None, _WEEKDAYS.index(text[-2:]) + 1))
    month_days = [int(v) for v in parts.get("BYMONTHDAY", [])]
    months = [int(v) for v in parts.get("BYMONTH", [])]
    if len(month_days) > 1 or len(months) > 1 or any(d < 1 for d in month_days):
        raise Permanent("write a series: EWS cannot express several or negative month days or months")
    pattern: Any
    if freq == "DAILY" and not days and not month_days and not months:
        pattern = ews_recurrence.DailyPattern(interval=interval)
    elif freq == "WEEKLY" and not month_days and not months and all(n is None for n, _ in days):
        weekdays = [d for _, d in days] or [first.isoweekday()]
        wkst = _WEEKDAYS.index(str(parts.get("WKST", ["MO"])[0]).upper()) + 1
        pattern = ews_recurrence.WeeklyPattern(interval=interval, weekdays=weekdays, first_day_of_week=wkst)
    elif freq in ("MONTHLY", "YEARLY"):
        yearly = freq == "YEARLY"
        if not yearly and months:
            raise Permanent("write a series: EWS cannot express BYMONTH in a monthly rule")
        if yearly and interval != 1:
            raise Permanent("write a series: EWS takes yearly series every year only")
        month = months[0] if months else first.month
        if days:
            if len(days) != 1 or days[0][0] not in (1, 2, 3, 4, -1):
                raise Permanent("write a series: EWS takes one weekday position (1st-4th or last)")
            position, weekday = days[0]
            week_number = 5 if position == -1 else int(position or 1)
            pattern = (ews_recurrence.RelativeYearlyPattern(weekday=weekday, week_number=week_number, month=month)
                       if yearly else ews_recurrence.RelativeMonthlyPattern(interval=interval, weekday=weekday,
                                                                            week_number=week_number))
        else:
            day = month_days[0] if month_days else first.day
            pattern = (ews_recurrence.AbsoluteYearlyPattern(day_of_month=day, month=month) if yearly
                       else ews_recurrence.AbsoluteMonthlyPattern(interval=interval, day_of_month=day))
    else:
        raise Permanent(f"write a series: EWS cannot express this {freq} rule")
    boundary: Any
    if "COUNT" in parts:
        boundary = ews_recurrence.NumberedPattern(start=first, number=int(parts["COUNT"][0]))
    elif "UNTIL" in parts:
        until = parts["UNTIL"][0]
        last = until.astimezone(zone).date() if isinstance(until, datetime) and until.tzinfo is not None else (
            until.date() if isinstance(until, datetime) else until)
        boundary = ews_recurrence.EndDatePattern(start=first, end=last)
    else:
        boundary = ews_recurrence.NoEndPattern(start=first)
    return ews_recurrence.Recurrence(pattern=pattern, boundary=boundary)


def _originals(master: icalendar.Event, limit: int = 1000) -> list[datetime]:
    """The pattern's original starts (UTC; all-day: midnight UTC of the date), EXDATEs included: the
    occurrence with index n (EWS's InstanceIndex) is the n-th of this list."""
    dtstart = master.decoded("DTSTART")
    if isinstance(dtstart, datetime):
        zone = dtstart.tzinfo or UTC
        naive = dtstart.astimezone(zone).replace(tzinfo=None)
    else:
        zone, naive = UTC, datetime.combine(dtstart, time(0))
    text = master["RRULE"].to_ical().decode()
    parts = [p for p in text.split(";") if not p.startswith("UNTIL=")]
    rule = dateutil_rrule.rrulestr(";".join(parts), dtstart=naive, ignoretz=True)
    if "UNTIL=" in text:
        until = master["RRULE"]["UNTIL"][0]
        local = until.astimezone(zone).replace(tzinfo=None) if isinstance(until, datetime) and until.tzinfo \
            else datetime.combine(until if not isinstance(until, datetime) else until.date(), time(23, 59, 59))
        rule = rule.replace(until=local)
    found = []
    for n, moment in enumerate(rule):
        if n >= limit:
            break
        found.append(moment.replace(tzinfo=zone).astimezone(UTC))
    return found


__all__ = ["QUIRKS", "ExchangeAdapter", "KeyProperty", "ews_fields", "free_busy_of", "recurrence_of", "rrule_of",
           "series_calendar", "to_vevent", "trust", "zone_named"]
