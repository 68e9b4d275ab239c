"""A stand-in for Exchange Server (on-premises) Exchange Web Services, stateful, that exchangelib talks to
unmodified: one SOAP endpoint, ``/EWS/Exchange.asmx``, behind HTTP Basic or NTLM authentication over TLS.

Served by ``tests/standins/serve.py`` with the tests' CA (``tests/standins/tls.py``). What a client must do:

- Trust the CA. exchangelib verifies TLS through ``requests`` and has no per-account CA setting; it builds every
  session's adapter from the class attribute ``exchangelib.protocol.BaseProtocol.HTTP_ADAPTER_CLS``
  (process-wide, read when a session is made, so set it before the first ``Account``). Set it to a
  ``requests.adapters.HTTPAdapter`` subclass whose ``send`` replaces ``verify`` (True, or the
  ``REQUESTS_CA_BUNDLE`` path requests merges in) by the CA file: :func:`trusting_adapter` builds one.
  exchangelib's docs override ``cert_verify`` instead, which requests >= 2.32.3 no longer consults alone.
- Close exchangelib's connections before leaving :func:`ews_standin`: ``exchangelib.close_connections()`` for
  the pooled ones, then ``gc.collect()`` for those a refused request (a 401) leaves in a reference cycle.
  Otherwise the server's TLS shutdown waits for a close_notify that an idle client socket never sends, and
  leaving takes 10 s.
- Mind that exchangelib caches one protocol (sessions, retry policy, version) per (endpoint, credentials):
  a second ``Configuration`` with another ``retry_policy`` but the same login gets the first one's. With
  ``FaultTolerance`` a 401 is retried as throttling until ``max_wait``; ``FailFast`` raises
  ``UnauthorizedError`` at once. With ``auth_type=None`` exchangelib asks which schemes the 401 offers (NTLM
  and Basic) and takes NTLM. ``Folder.sync_items(sync_state=None)`` falls back to the folder object's last
  ``item_sync_state``: a full resync must reset that attribute (or use a fresh folder object).

Operations (as exchangelib 5 sends them): ``ConvertId`` (only to answer version detection: the SOAP header
carries ``ServerVersionInfo`` of an Exchange 2016 CU), ``GetFolder`` / ``FindFolder`` (distinguished ``root``,
``msgfolderroot``, ``calendar`` and calendars made by :meth:`EwsStandIn.new_calendar`), ``SyncFolderItems``
(Create/Update/Delete since a ``SyncState``, ``MaxChangesReturned`` paging with ``IncludesLastItemInRange``,
``Ignore``; singles and recurring masters only, as Exchange), ``FindItem`` (``IndexedPageItemView`` paging,
``CalendarView`` expanding occurrences and exceptions, ``Restriction`` on fields and extended properties),
``GetItem`` (``ItemId``, ``OccurrenceItemId``, ``RecurringMasterItemId``), ``CreateItem``, ``UpdateItem``
(``ChangeKey`` with ``ConflictResolution``; updating an occurrence makes an exception, which keeps the
occurrence's id) and ``DeleteItem`` (deleting an occurrence adds a ``DeletedOccurrence`` to its master).

Faults as EWS documents them: ``ErrorServerBusy`` (HTTP 500 SOAP fault with ``BackOffMilliseconds`` in
``MessageXml``), ``ErrorInvalidSyncStateData``, ``ErrorItemNotFound``, ``ErrorIrresolvableConflict`` (a stale
``ChangeKey`` with ``NeverOverwrite``, or with ``AutoResolve`` when a field it sets changed since),
``ErrorChangeKeyRequiredForWriteOperations``; a wrong password is a 401 offering ``NTLM`` and ``Basic``.

Authentication: Basic, or NTLM (NTLMv2, connection-based as IIS does it; ``ews_ntlm``); the login is
``Mailbox.username`` (``EXAMPLE\\user-…``) or the e-mail address. Or OAuth app-only access: an app from
:meth:`EwsStandIn.register_app` gets a token at ``/{tenant}/oauth2/v2.0/token`` (client credentials) and acts
for the mailbox its ``ExchangeImpersonation`` header names.

Liberties: one mailbox per login (no delegate access to other mailboxes; a folder of another mailbox is
``ErrorAccessDenied``), no meeting invitations are sent, shapes other than ``IdOnly`` return every field, and
ids are shorter than Exchange's. Knobs: :meth:`EwsStandIn.fail_next`,
:meth:`EwsStandIn.invalidate_sync_states`, :meth:`EwsStandIn.cancel`, :meth:`EwsStandIn.change_password`,
:meth:`EwsStandIn.new_calendar`, :meth:`EwsStandIn.item_ids`; ``requests`` lists (mailbox e-mail, operation) per
authenticated SOAP request.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import requests.adapters
from lxml import etree
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.standins import tls
from tests.standins.ews_ntlm import NtlmAcceptor
from tests.standins.ews_operations import Operations
from tests.standins.ews_store import Store
from tests.standins.ews_xml import SOAP, Fault, T, envelope, fault, local, parse, t
from tests.standins.serve import serve

EWS_PATH = "/EWS/Exchange.asmx"


@dataclass
class Mailbox:
    """One user's mailbox: its login and the EWS folder id of its default calendar."""

    email: str
    username: str
    password: str
    calendar_id: str
    root_id: str = ""
    top_id: str = ""


def trusting_adapter(ca_file: str) -> type[requests.adapters.HTTPAdapter]:
    """An ``HTTPAdapter`` class for ``BaseProtocol.HTTP_ADAPTER_CLS`` that verifies TLS against ``ca_file``."""

    class _TrustingAdapter(requests.adapters.HTTPAdapter):
        def send(self, request: Any, *args: Any, **kwargs: Any) -> Any:
            if kwargs.get("verify", True) is not False:  # True, or REQUESTS_CA_BUNDLE's path merged in by requests
                kwargs["verify"] = ca_file
            return super().send(request, *args, **kwargs)

    return _TrustingAdapter


class EwsStandIn:
    """Mailboxes, folders and calendar items in memory behind ``lock``; :meth:`app` is the Starlette app."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.requests: list[tuple[str, str]] = []
        self._mailboxes: dict[str, Mailbox] = {}  # by login
        self._store = Store()
        self._operations = Operations(self._store)
        self._failures: list[tuple[str, int | None]] = []
        self._ntlm = NtlmAcceptor()
        self._apps: dict[str, str] = {}  # OAuth: client id -> client secret
        self._tokens: dict[str, str] = {}  # OAuth: access token -> client id

    # -- knobs for tests -------------------------------------------------------------------------------------

    def new_mailbox(self) -> Mailbox:
        """A fresh mailbox with an empty default calendar folder."""
        with self.lock:
            token = secrets.token_hex(4)
            email = f"user-{token}@example.test"
            mailbox = Mailbox(email=email, username=f"EXAMPLE\\user-{token}", password=secrets.token_urlsafe(12),
                              calendar_id="")
            new = self._store.new_folder
            root = new(email, None, "Folder", "root", None, "root")
            top = new(email, root.id, "Folder", "Top of Information Store", "IPF.Note", "msgfolderroot")
            calendar = new(email, top.id, "CalendarFolder", "Calendar", "IPF.Appointment", "calendar")
            mailbox.root_id, mailbox.top_id, mailbox.calendar_id = root.id, top.id, calendar.id
            self._mailboxes[mailbox.username] = mailbox
            return mailbox

    def register_app(self) -> tuple[str, str]:
        """An app registration allowed to impersonate every mailbox (application access, as Exchange's
        ApplicationImpersonation role grants it): its client id and secret for the token endpoint."""
        with self.lock:
            client_id, secret = secrets.token_hex(8), secrets.token_urlsafe(16)
            self._apps[client_id] = secret
            return client_id, secret

    def new_calendar(self, mailbox: Mailbox, name: str) -> str:
        """Another calendar folder of ``mailbox`` (under its default calendar, as Outlook makes them); its id."""
        with self.lock:
            return self._store.new_folder(mailbox.email, mailbox.calendar_id, "CalendarFolder", name,
                                          "IPF.Appointment").id

    def fail_next(self, n: int, code: str = "ErrorServerBusy", back_off_ms: int | None = None) -> None:
        """The next ``n`` SOAP requests are refused with a fault ``code`` (with ``BackOffMilliseconds`` if given)."""
        with self.lock:
            self._failures.extend([(code, back_off_ms)] * n)

    def invalidate_sync_states(self) -> None:
        """Every ``SyncState`` given out so far becomes ``ErrorInvalidSyncStateData``."""
        with self.lock:
            self._store.generation = secrets.token_hex(4)

    def cancel(self, item_id: str) -> None:
        """The organizer cancelled the meeting (or one occurrence of it, which becomes an exception):
        ``IsCancelled`` becomes true, with a new ChangeKey and a sync Update of the item or its master."""
        with self.lock:
            target = self._store.find_target(None, t("ItemId", Id=item_id))
            item = target.item
            if target.index is not None:
                item = self._store.make_exception(target.item, target.index)
            item.fields["IsCancelled"] = t("IsCancelled", "true")
            self._store.touch(item, {"IsCancelled"})

    def item_ids(self, folder_id: str) -> list[str]:
        """Ids of the singles and recurring masters in a folder (not deleted), oldest first."""
        with self.lock:
            return [item.id for item in self._store.live(folder_id)]

    def change_password(self, mailbox: Mailbox) -> str:
        """The user changed the password: the old one is refused from now on (401). Returns the new one."""
        with self.lock:
            mailbox.password = secrets.token_urlsafe(12)
            self._ntlm.forget(mailbox.username)
            return mailbox.password

    # -- the app ---------------------------------------------------------------------------------------------

    def app(self) -> Starlette:
        return Starlette(routes=[Route(EWS_PATH, self._endpoint, methods=["POST"]),
                                 Route("/{tenant}/oauth2/v2.0/token", self._token, methods=["POST"])])

    async def _token(self, request: Request) -> Response:
        """Microsoft identity platform's token endpoint for the client-credentials grant (what exchangelib's
        ``OAuth2Credentials`` asks): the app's id and secret in the form, a ``/.default`` scope."""
        form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))  # x-www-form-urlencoded
        client_id, secret = str(form.get("client_id", "")), str(form.get("client_secret", ""))
        with self.lock:
            known = self._apps.get(client_id)
            if form.get("grant_type") != "client_credentials":
                return JSONResponse({"error": "unsupported_grant_type"}, status_code=400)
            if known is None or not secrets.compare_digest(known.encode(), secret.encode()):
                return JSONResponse({"error": "invalid_client", "error_description": "AADSTS7000215: Invalid "
                                     "client secret provided."}, status_code=401)
            if not str(form.get("scope", "")).endswith("/.default"):
                return JSONResponse({"error": "invalid_scope"}, status_code=400)
            token = secrets.token_urlsafe(24)
            self._tokens[token] = client_id
        return JSONResponse({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599,
                             "access_token": token})

    async def _endpoint(self, request: Request) -> Response:
        body = await request.body()
        with self.lock:
            caller = self._caller(request, body)
            if isinstance(caller, Response):
                return caller
            try:
                content = self._dispatch(caller, body)
            except Fault as refused:
                return Response(fault(refused), status_code=500, media_type="text/xml; charset=utf-8")
        return Response(envelope(content), media_type="text/xml; charset=utf-8")

    def _caller(self, request: Request, body: bytes) -> Mailbox | Response:
        """The mailbox a request is authenticated for (Basic, NTLM on its connection, or an app's Bearer token
        impersonating the mailbox its SOAP header names), or the answer to send instead."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        connection = (request.client.host, request.client.port) if request.client else None
        if scheme.lower() == "bearer":
            if token.strip() not in self._tokens:
                response = Response("401 Unauthorized", status_code=401, media_type="text/plain")
                response.headers.append("WWW-Authenticate", 'Bearer error="invalid_token"')
                return response
            try:
                address = parse(body).findtext(f"{{{SOAP}}}Header/{{{T}}}ExchangeImpersonation/{{{T}}}ConnectingSID/"
                                               f"{{{T}}}PrimarySmtpAddress")
            except Fault as refused:
                return Response(fault(refused), status_code=500, media_type="text/xml; charset=utf-8")
            mailbox = self._by_login(address or "")
            if mailbox is None:  # app-only access acts for a mailbox it names, or for none
                return Response(fault(Fault("ErrorImpersonateUserDenied", "The account does not have permission "
                                            "to impersonate the requested user.")),
                                status_code=500, media_type="text/xml; charset=utf-8")
            return mailbox
        if scheme.lower() == "basic":
            try:
                login, _, password = base64.b64decode(token.strip(), validate=True).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return _unauthorized()
            mailbox = self._by_login(login)
            if mailbox is None or not secrets.compare_digest(mailbox.password.encode(), password.encode()):
                return _unauthorized()
            return mailbox
        if scheme.lower() == "ntlm":
            step = self._ntlm.step(token.strip())
            if isinstance(step, str):
                return _unauthorized(f"NTLM {step}")
            if step is None:
                return _unauthorized()
            domain, user = step[0], step[1]
            mailbox = self._by_login(f"{domain}\\{user}") or self._by_login(user)
            if mailbox is None or not self._ntlm.verify(connection, mailbox.username, mailbox.password, step):
                return _unauthorized()
            return mailbox
        login = self._ntlm.login_of(connection)
        mailbox = self._mailboxes.get(login) if login else None
        return mailbox if mailbox is not None else _unauthorized()

    def _by_login(self, login: str) -> Mailbox | None:
        """The mailbox of a login (DOMAIN\\user) or of an e-mail address, as Exchange accepts either."""
        wanted = login.lower()
        return next((box for box in self._mailboxes.values()
                     if wanted in (box.username.lower(), box.email.lower())), None)

    def _dispatch(self, mailbox: Mailbox, body: bytes) -> etree._Element:
        root = parse(body)
        soap_body = root.find(f"{{{SOAP}}}Body")
        operation = next((elem for elem in soap_body if local(elem)), None) if soap_body is not None else None
        if operation is None:
            raise Fault("ErrorInvalidRequest", "no operation in the SOAP body")
        name = local(operation)
        self.requests.append((mailbox.email, name))
        if self._failures:
            code, back_off = self._failures.pop(0)
            raise Fault(code, back_off_ms=back_off)
        handler = self._operations.handlers.get(name)
        if handler is None:
            raise Fault("ErrorInvalidOperation", f"the stand-in does not implement {name}")
        return handler(mailbox.email, operation)


def _unauthorized(challenge: str | None = None) -> Response:
    """401 as IIS sends it for EWS: the schemes it offers, or the NTLM challenge of a handshake."""
    response = Response("401 Unauthorized", status_code=401, media_type="text/plain")
    if challenge is not None:
        response.headers.append("WWW-Authenticate", challenge)
    else:
        response.headers.append("WWW-Authenticate", "NTLM")
        response.headers.append("WWW-Authenticate", 'Basic realm="127.0.0.1"')
    return response


@dataclass
class RunningEws:
    """A stand-in being served: where exchangelib finds it, and the stand-in to arrange and inspect."""

    origin: str
    ews_url: str
    standin: EwsStandIn


@contextmanager
def ews_standin() -> Iterator[RunningEws]:
    """Serve a fresh stand-in over TLS (the tests' CA) on loopback until the block ends."""
    standin = EwsStandIn()
    with serve(standin.app()) as origin:
        yield RunningEws(origin=origin, ews_url=origin + EWS_PATH, standin=standin)


def ca_file() -> str:
    """The CA file a client must trust (see the module docstring)."""
    return tls.ca_file()
