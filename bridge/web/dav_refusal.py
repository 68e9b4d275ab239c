"""The one place where the store's origin rule meets HTTP on /dav: ``ItemRefused`` becomes
403 with ``DAV:need-privileges`` (RFC 4791 §1.3, RFC 3744 §7.1.1), naming the resource and the
privilege missing, whether the gate answered the request itself or Radicale did.

A mirrored item is read-only to clients (its source is the external calendar); a booking's event
changes only through its booking (the gate turns a client's DELETE into a cancellation and a PUT
that moves it into a reschedule; anything else reaching the store is refused here).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

from bridge.store.errors import ItemRefused
from bridge.web.dav_answer import Answer, xml_answer

NEED_PRIVILEGES = (b'<?xml version="1.0" encoding="utf-8"?>\n'
                   b'<D:error xmlns:D="DAV:"><D:need-privileges><D:resource><D:href>%s</D:href>'
                   b'<D:privilege><D:%s /></D:privilege></D:resource></D:need-privileges></D:error>')
CONTENT_TYPE = "text/xml; charset=utf-8"


def privilege_for(method: str, refused: ItemRefused) -> bytes:
    """Replacing content needs write-content; taking an item out of its calendar needs unbind."""
    if method == "DELETE" or (method == "MOVE" and not refused.destination):
        return b"unbind"
    return b"write-content"


def refusal(location: str, privilege: bytes = b"write-content") -> Answer:
    """403 need-privileges for the item at ``location`` (an absolute path)."""
    return xml_answer(403, NEED_PRIVILEGES % (location.encode(), privilege))


def refusal_of(refused: ItemRefused, method: str, location: str) -> Answer:
    return refusal(location, privilege_for(method, refused))


def radicale_refusal(refused: ItemRefused, environ: dict[str, Any], base_prefix: str,
                     path: str) -> tuple[int, dict[str, str], str, None]:
    """The same refusal as a Radicale ``do_*`` method returns it."""
    method = environ.get("REQUEST_METHOD", "").upper()
    location = base_prefix + path
    if refused.destination:
        location = unquote(urlsplit(environ.get("HTTP_DESTINATION", "")).path) or location
    answer = refusal_of(refused, method, location)
    return answer.status, {"Content-Type": CONTENT_TYPE}, answer.body.decode(), None
