"""Stand-ins for Exchange autodiscover as exchangelib 5.6 walks it, so a connection by e-mail address finds the
EWS stand-in (``tests/standins/ews.py``) unmodified: a DNS server on a loopback UDP port and the SOAP
autodiscover service (``GetUserSettings``) on ``https://localhost:443``.

What exchangelib does for ``user@domain`` (``exchangelib/autodiscover/discovery.py``), each step only if the one
before found nothing:

1. ``https://<domain>/autodiscover/autodiscover.svc``, 2. ``https://autodiscover.<domain>/autodiscover/
   autodiscover.svc``: each hostname is first looked up as an A record with its own dnspython resolver (not the
   system's); a name without one is skipped before any connection. Then a SOAP ``GetUserSettings`` request (not
   POX): an unauthenticated POST whose 401 names the scheme (NTLM preferred over Basic), then the authenticated
   one asking for every setting it knows.
3. ``http://autodiscover.<domain>/autodiscover/autodiscover.svc``, GET: a 301/302 to an https URL is followed.
4. DNS SRV ``_autodiscover._tcp.<domain>``: a record with port 443 names the host (the port is not used, only
   443 is accepted); an unauthenticated HEAD checks it answers, then step 1's request to
   ``https://<host>/autodiscover/autodiscover.svc``.
5. The answer's ``ExternalEwsUrl`` is the EWS URL (``RedirectAddress``/``RedirectUrl`` start over); 6. nothing
   found: ``AutoDiscoverFailed``.

A test domain cannot reach steps 1-3 here: requests resolves hostnames through the system (``/etc/hosts``),
which knows only ``localhost``. So the DNS stand-in answers SRV for ``_autodiscover._tcp.<domain>`` with
``localhost`` (A: 127.0.0.1; the tests' certificate names it), and NXDOMAIN for every other name, which makes
steps 1-3 end at the DNS check without touching the network; step 4 finds this service on 127.0.0.1:443
(root may bind it; :class:`PortUnavailable` otherwise). The on-premises setup with SRV records is a real one.

What a client must do (:func:`exchangelib_pointed_at`): point ``Autodiscovery.DNS_RESOLVER_KWARGS`` /
``DNS_RESOLVER_ATTRS`` (class attributes read for each discovery) at the DNS stand-in, and keep exchangelib's
autodiscover cache out of the way: it maps (domain, credentials) to the service in memory and domain to endpoint
in a shelve file in the temp directory, shared by every process of the user; it is moved to a file of the test
and cleared around it. Trust the tests' CA as for the EWS stand-in (autodiscover uses the same
``HTTP_ADAPTER_CLS``).

The service: Basic authentication only (so exchangelib chooses it; Exchange also offers NTLM and Negotiate) for
the mailboxes given to :meth:`AutodiscoverStandIn.add`, answering ``UserDisplayName``,
``AutoDiscoverSMTPAddress``, ``ExternalEwsUrl``, ``InternalEwsUrl`` and ``EwsSupportedSchemas`` as the
``GetUserSettingsResponseMessage`` documented by Microsoft; an address it does not know is ``InvalidUser``.
"""

from __future__ import annotations

import base64
import binascii
import errno
import secrets
import socket
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import dns.exception
import dns.flags
import dns.message
import dns.nameserver
import dns.rcode
import dns.rdatatype
import dns.rrset
import uvicorn
from exchangelib.autodiscover import Autodiscovery, cache, clear_cache, close_connections
from lxml import etree
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.standins import tls
from tests.standins.ews import Mailbox
from tests.standins.ews_xml import SOAP, Fault, parse

AUTODISCOVER_PATH = "/autodiscover/autodiscover.svc"
A = "http://schemas.microsoft.com/exchange/2010/Autodiscover"
WSA = "http://www.w3.org/2005/08/addressing"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
HTTPS_PORT = 443  # exchangelib builds https://<host>/autodiscover/... without a port
SCHEMAS = "Exchange2007, Exchange2007_SP1, Exchange2010, Exchange2010_SP1, Exchange2010_SP2, Exchange2013, " \
          "Exchange2013_SP1, Exchange2016"
"""EwsSupportedSchemas of an Exchange Server 2016."""


class PortUnavailable(RuntimeError):
    """127.0.0.1:443 cannot be bound (not root, or taken): autodiscover cannot be served where exchangelib looks."""


# -- DNS -----------------------------------------------------------------------------------------------------------

@dataclass
class DnsStandIn:
    """An authoritative DNS server on a loopback UDP port: ``records`` maps a name (lower case, with the final
    dot) to {type: [rdata text]}; other names are NXDOMAIN. ``queries`` lists (name, type) as asked."""

    records: Mapping[str, Mapping[str, list[str]]]
    queries: list[tuple[str, str]] = field(default_factory=list)
    port: int = 0

    def answer(self, wire: bytes) -> bytes | None:
        """The response to one query message (None: not a DNS message, dropped as a server would)."""
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        for question in query.question:
            name = question.name.to_text().lower()
            kind = dns.rdatatype.to_text(question.rdtype)
            self.queries.append((name, kind))
            known = self.records.get(name)
            if known is None:
                response.set_rcode(dns.rcode.NXDOMAIN)
            elif known.get(kind):
                response.answer.append(dns.rrset.from_text_list(question.name, 60, "IN", kind, known[kind]))
        return response.to_wire()


@contextmanager
def dns_standin(records: Mapping[str, Mapping[str, list[str]]]) -> Iterator[DnsStandIn]:
    """Serve ``records`` on 127.0.0.1:<free UDP port> until the block ends."""
    server = DnsStandIn(records)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.05)
    server.port = sock.getsockname()[1]
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                wire, peer = sock.recvfrom(4096)
            except TimeoutError:
                continue
            reply = server.answer(wire)
            if reply is not None:
                sock.sendto(reply, peer)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        stop.set()
        thread.join(5)
        sock.close()


# -- the autodiscover service ----------------------------------------------------------------------------------

class AutodiscoverStandIn:
    """``GetUserSettings`` for the mailboxes added, pointing them at ``ews_url``; ``requests`` lists
    (HTTP method, login or '' when unauthenticated) of every request."""

    def __init__(self, ews_url: str) -> None:
        self.ews_url = ews_url
        self.requests: list[tuple[str, str]] = []
        self._mailboxes: dict[str, Mailbox] = {}
        self._lock = threading.Lock()

    def add(self, mailbox: Mailbox) -> None:
        """Answer for this mailbox (its login and password are read at each request)."""
        with self._lock:
            self._mailboxes[mailbox.email.lower()] = mailbox

    def app(self) -> Starlette:
        return Starlette(routes=[Route(AUTODISCOVER_PATH, self._endpoint, methods=["GET", "POST"])])

    async def _endpoint(self, request: Request) -> Response:
        body = await request.body()
        with self._lock:
            caller = self._caller(request)
            self.requests.append((request.method, caller.username if caller else ""))
            if caller is None:
                return Response("401 Unauthorized", status_code=401, media_type="text/plain",
                                headers={"WWW-Authenticate": 'Basic realm="localhost"'})
            if request.method != "POST":
                return Response("autodiscover", media_type="text/plain")
            try:
                answer = self._user_settings(parse(body))
            except Fault:
                return Response("400 Bad Request", status_code=400, media_type="text/plain")
        return Response(answer, media_type="text/xml; charset=utf-8")

    def _caller(self, request: Request) -> Mailbox | None:
        """The mailbox whose login and password a Basic header carries (login: DOMAIN\\user or the address)."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            login, _, password = base64.b64decode(token.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        for box in self._mailboxes.values():
            if login.lower() in (box.username.lower(), box.email.lower()):
                return box if secrets.compare_digest(box.password.encode(), password.encode()) else None
        return None

    def _user_settings(self, root: etree._Element) -> bytes:
        request = root.find(f"{{{SOAP}}}Body/{{{A}}}GetUserSettingsRequestMessage/{{{A}}}Request")
        if request is None:
            raise Fault("ErrorInvalidRequest")
        users = [(m.text or "").strip() for m in request.iterfind(f"{{{A}}}Users/{{{A}}}User/{{{A}}}Mailbox")]
        wanted = {(s.text or "").strip() for s in request.iterfind(f"{{{A}}}RequestedSettings/{{{A}}}Setting")}
        envelope = etree.Element(f"{{{SOAP}}}Envelope", nsmap={"s": SOAP, "a": WSA})
        header = etree.SubElement(envelope, f"{{{SOAP}}}Header")
        action = etree.SubElement(header, f"{{{WSA}}}Action", {f"{{{SOAP}}}mustUnderstand": "1"})
        action.text = "http://schemas.microsoft.com/exchange/2010/Autodiscover/Autodiscover/GetUserSettingsResponse"
        version = etree.SubElement(header, f"{{{A}}}ServerVersionInfo", nsmap={"h": A, "i": XSI})
        for name, value in (("MajorVersion", "15"), ("MinorVersion", "1"), ("MajorBuildNumber", "2507"),
                            ("MinorBuildNumber", "6"), ("Version", "Exchange2015")):
            _add(version, name, value)
        message = etree.SubElement(etree.SubElement(envelope, f"{{{SOAP}}}Body"),
                                   f"{{{A}}}GetUserSettingsResponseMessage", nsmap={None: A})
        response = etree.SubElement(message, f"{{{A}}}Response", nsmap={"i": XSI})
        _add(response, "ErrorCode", "NoError")
        _add(response, "ErrorMessage", "")
        responses = etree.SubElement(response, f"{{{A}}}UserResponses")
        for address in users:
            self._user_response(etree.SubElement(responses, f"{{{A}}}UserResponse"), address, wanted)
        return bytes(etree.tostring(envelope, xml_declaration=True, encoding="utf-8"))

    def _user_response(self, parent: etree._Element, address: str, wanted: set[str]) -> None:
        mailbox = self._mailboxes.get(address.lower())
        if mailbox is None:
            _add(parent, "ErrorCode", "InvalidUser")
            _add(parent, "ErrorMessage", f"The email address can't be found. ({address})")
            return
        _add(parent, "ErrorCode", "NoError")
        _add(parent, "ErrorMessage", "No error.")
        etree.SubElement(parent, f"{{{A}}}RedirectTarget", {f"{{{XSI}}}nil": "true"})
        etree.SubElement(parent, f"{{{A}}}UserSettingErrors")
        settings = etree.SubElement(parent, f"{{{A}}}UserSettings")
        known = {"UserDisplayName": mailbox.email.partition("@")[0], "AutoDiscoverSMTPAddress": mailbox.email,
                 "ExternalEwsUrl": self.ews_url, "InternalEwsUrl": self.ews_url, "EwsSupportedSchemas": SCHEMAS}
        for name, value in known.items():
            if name in wanted:
                setting = etree.SubElement(settings, f"{{{A}}}UserSetting", {f"{{{XSI}}}type": "StringSetting"})
                _add(setting, "Name", name)
                _add(setting, "Value", value)


def _add(parent: etree._Element, name: str, text: str) -> etree._Element:
    elem = etree.SubElement(parent, f"{{{A}}}{name}")
    elem.text = text
    return elem


# -- serving ---------------------------------------------------------------------------------------------------

@dataclass
class RunningAutodiscover:
    """Autodiscover being served for ``domain``: its DNS server, its service, and what a client must be told."""

    domain: str
    dns: DnsStandIn
    service: AutodiscoverStandIn


@contextmanager
def autodiscover_standin(domain: str, ews_url: str) -> Iterator[RunningAutodiscover]:
    """Serve autodiscover for ``domain`` (SRV -> localhost:443) answering ``ews_url``, until the block ends;
    :class:`PortUnavailable` when 127.0.0.1:443 cannot be bound."""
    records = {f"_autodiscover._tcp.{domain.lower()}.": {"SRV": [f"0 0 {HTTPS_PORT} localhost."]},
               "localhost.": {"A": ["127.0.0.1"]}}
    service = AutodiscoverStandIn(ews_url)
    with dns_standin(records) as dns_server, _serve_on(service.app(), HTTPS_PORT):
        yield RunningAutodiscover(domain=domain, dns=dns_server, service=service)


@contextmanager
def _serve_on(app: Starlette, port: int) -> Iterator[None]:
    """``tests/standins/serve.serve`` on a fixed port (it picks a free one); TLS by the tests' CA."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        sock.close()
        reason = "permission denied (not root)" if exc.errno == errno.EACCES else exc.strerror
        raise PortUnavailable(f"cannot bind 127.0.0.1:{port} for autodiscover: {reason}") from None
    chain, key = tls.server_files()
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", ssl_certfile=chain,
                            ssl_keyfile=key)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            sock.close()
            raise RuntimeError("the autodiscover stand-in did not start")
        time.sleep(0.01)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


@contextmanager
def exchangelib_pointed_at(dns_port: int) -> Iterator[None]:
    """Make exchangelib's autodiscover ask the DNS stand-in (its documented resolver class attributes) and keep
    its cache in a file of its own, empty before and after: the previous settings come back afterwards."""
    saved = (Autodiscovery.DNS_RESOLVER_KWARGS, Autodiscovery.DNS_RESOLVER_ATTRS, cache.AUTODISCOVER_PERSISTENT_STORAGE)
    directory = tempfile.mkdtemp(prefix="calbridge-test-autodiscover-")
    Autodiscovery.DNS_RESOLVER_KWARGS = {"configure": False}  # not /etc/resolv.conf
    Autodiscovery.DNS_RESOLVER_ATTRS = {**saved[1], "nameservers": [dns.nameserver.Do53Nameserver("127.0.0.1",
                                                                                                   dns_port)]}
    cache.AUTODISCOVER_PERSISTENT_STORAGE = Path(directory, "exchangelib.cache")
    clear_cache()
    try:
        yield
    finally:
        close_connections()
        clear_cache()
        Autodiscovery.DNS_RESOLVER_KWARGS, Autodiscovery.DNS_RESOLVER_ATTRS = saved[0], saved[1]
        cache.AUTODISCOVER_PERSISTENT_STORAGE = saved[2]
        for leftover in Path(directory).iterdir():
            leftover.unlink()
        Path(directory).rmdir()
