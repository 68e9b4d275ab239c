"""The pure-ASGI gate in front of Radicale at /dav.

It answers a plain PUT of a calendar object (``bridge.web.dav_put``), the DELETE of a booking's
event (``bridge.web.dav_booking``: the booking is cancelled), a free-busy-query
(``bridge.web.dav_report``) and a calendar-query with expand (``bridge.web.dav_query``) itself.
Writes of items the writer may not change are refused by the store, whichever route they take,
and answered 403 in one place (``bridge.web.dav_refusal``). It enforces
the body size limit (413), refuses XML with a DTD or entities
without expanding them, and when Radicale refuses an iCalendar PUT with a bare
400, replaces that answer with the reason from Radicale's own checks (only a
refused request pays for the second parse). It refuses DELETE and PUT of a whole calendar the
booking engine depends on, and MKCALENDAR past the limit (``bridge.web.dav_collection``).
Everything else passes unchanged,
but for the case of response header names: the WSGI bridge lowercases them, and
we give them back the spelling Radicale used ("Content-Type", "ETag", "DAV"),
which h11 keeps on the wire; some clients match them case-sensitively.
"""

from __future__ import annotations

import xml.etree.ElementTree
import xml.parsers.expat
from typing import Any

import defusedxml
import defusedxml.ElementTree
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bridge.storage_plugin.checks import InvalidICalendar, checked_components
from bridge.web.dav_access import unreadable_credentials
from bridge.web.dav_answer import Answer
from bridge.web.dav_booking import BookingEdits
from bridge.web.dav_collection import WHOLE_CALENDAR_METHODS, CalendarGuard
from bridge.web.dav_move import MoveCheck
from bridge.web.dav_put import ItemPut
from bridge.web.dav_query import ExpandQuery
from bridge.web.dav_report import FreeBusyReport

XML_METHODS = frozenset({"PROPFIND", "PROPPATCH", "REPORT", "MKCALENDAR", "MKCOL", "ACL"})


class BodyTooLarge(Exception):
    pass


class DavGate:
    def __init__(self, app: ASGIApp, *, max_body_bytes: int, item_put: ItemPut | None = None,
                 free_busy: FreeBusyReport | None = None, expand_query: ExpandQuery | None = None,
                 booking_edits: BookingEdits | None = None, move_check: MoveCheck | None = None,
                 calendar_guard: CalendarGuard | None = None) -> None:
        self.app = app
        self.booking_edits = booking_edits
        self.move_check = move_check
        self.calendar_guard = calendar_guard
        self.max_body_bytes = max_body_bytes
        self.item_put = item_put
        self.free_busy = free_busy
        self.expand_query = expand_query

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] != scope["method"].upper():  # Radicale upper-cases the method: so does every check here
            scope = {**scope, "method": scope["method"].upper()}
        headers = {key.decode("latin1").lower(): value.decode("latin1") for key, value in scope["headers"]}
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            await _plain(send, 413, f"request body over the limit of {self.max_body_bytes} bytes")
            return
        try:
            body = await _read_body(receive, self.max_body_bytes)
        except BodyTooLarge:
            await _plain(send, 413, f"request body over the limit of {self.max_body_bytes} bytes")
            return
        if unreadable_credentials(headers):
            await _plain(send, 401, "the Authorization header is not Basic credentials as login:password in base64",
                         [(b"WWW-Authenticate", b'Basic realm="calbridge"')])
            return
        if scope["method"] in XML_METHODS and body:
            reason = _xml_refusal(body)
            if reason:
                await _plain(send, 400, reason)
                return
        send = _with_canonical_header_names(send)
        root = scope.get("root_path", "")
        path = scope["path"][len(root):] if scope["path"].startswith(root) else scope["path"]
        if scope["method"] == "REPORT" and self.free_busy is not None and b"free-busy-query" in body:
            answer = await run_in_threadpool(self.free_busy.answer, path, headers, body)
            if answer is not None:
                await _send_answer(send, answer)
                return
        if scope["method"] == "REPORT" and self.expand_query is not None and b"expand" in body:
            answer = await run_in_threadpool(self.expand_query.answer, path, headers, body, root)
            if answer is not None:
                await _send_answer(send, answer)
                return
        if scope["method"] in WHOLE_CALENDAR_METHODS and self.calendar_guard is not None:
            answer = await run_in_threadpool(self.calendar_guard.answer, scope["method"], path, headers, root)
            if answer is not None:
                await _send_answer(send, answer)
                return
        if scope["method"] == "DELETE" and self.booking_edits is not None:
            answer = await run_in_threadpool(self.booking_edits.delete, path, headers, root)
            if answer is not None:
                await _send_answer(send, answer)
                return
        if scope["method"] == "MOVE" and self.move_check is not None:
            answer = await run_in_threadpool(self.move_check.answer, path, headers, root)
            if answer is not None:
                await _send_answer(send, answer)
                return
        if _is_icalendar_put(scope["method"], headers, scope["path"]):
            if self.item_put is not None:
                answer = await run_in_threadpool(self.item_put.answer, path, headers, body, root)
                if answer is not None:
                    await _send_answer(send, answer)
                    return
            send = _explaining_bad_icalendar(send, body)
        await self.app(scope, _replay(body), send)


_SPECIAL_NAMES = {b"etag": b"ETag", b"dav": b"DAV", b"www-authenticate": b"WWW-Authenticate"}


def _canonical(name: bytes) -> bytes:
    return _SPECIAL_NAMES.get(name) or b"-".join(part.capitalize() for part in name.split(b"-"))


def _with_canonical_header_names(send: Send) -> Send:
    async def send_canonical(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [(_canonical(bytes(k).lower()), v) for k, v in message["headers"]]}
        await send(message)

    return send_canonical


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return {"type": "http.disconnect"}

    return receive


def _is_icalendar_put(method: str, headers: dict[str, str], path: str) -> bool:
    if method != "PUT" or path.endswith("/"):
        return False
    content_type = headers.get("content-type", "").split(";")[0].strip().lower()
    return content_type in ("text/calendar", "") or path.lower().endswith(".ics")


def _explaining_bad_icalendar(send: Send, body: bytes) -> Send:
    """Replace Radicale's reasonless 400 for a PUT with one that says what is wrong."""
    replaced = False

    async def send_explained(message: Message) -> None:
        nonlocal replaced
        if message["type"] == "http.response.start" and message["status"] == 400:
            reason = _icalendar_refusal(body)
            if reason:
                replaced = True
                await _plain(send, 400, reason)
                return
        if not replaced:
            await send(message)

    return send_explained


def _xml_refusal(body: bytes) -> str | None:
    try:
        defusedxml.ElementTree.fromstring(body, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except defusedxml.DefusedXmlException:
        return "XML with a document type or entity declarations is not accepted"
    except (xml.etree.ElementTree.ParseError, xml.parsers.expat.ExpatError) as exc:
        return f"malformed XML: {exc}"
    return None


def _icalendar_refusal(body: bytes) -> str | None:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return "iCalendar data must be UTF-8"
    try:
        checked_components(text)
    except InvalidICalendar as exc:
        return f"invalid iCalendar data: {exc}"
    return None


async def _send_answer(send: Send, answer: Answer) -> None:
    headers = [*answer.headers, (b"Content-Length", str(len(answer.body)).encode())]
    await send({"type": "http.response.start", "status": answer.status, "headers": headers})
    await send({"type": "http.response.body", "body": answer.body})


async def _plain(send: Send, status: int, text: str, extra: list[Any] | None = None) -> None:
    body = (text + "\n").encode()
    headers: list[Any] = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode()),
                          *(extra or [])]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
