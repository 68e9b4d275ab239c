"""Mirrored items are read-only to CalDAV clients: DELETE and MOVE of one get 403 need-privileges.

An item of origin ``connection:<id>`` is the external calendar's event as the rules let it in;
a client that deletes or moves it would only see it come back with the next sync (or, worse,
a move would hide it from the engine). RFC 4791 §1.3 / RFC 3744 §7.1.1: the refusal names the
resource and the privilege missing. A MOVE that would overwrite a mirrored item is refused the
same way. Everything else (and anything the gate cannot decide as Radicale would) is declined.
PUT over a mirrored item is refused in :mod:`bridge.web.dav_put`.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from bridge.storage_plugin.auth import SqlAuth
from bridge.storage_plugin.paths import split
from bridge.storage_plugin.rights import SqlRights
from bridge.store import calendars, items
from bridge.store.db import Store
from bridge.web.dav_access import authenticated, may
from bridge.web.dav_answer import Answer, xml_answer

NEED_WRITE = (b'<?xml version="1.0" encoding="utf-8"?>\n'
              b'<D:error xmlns:D="DAV:"><D:need-privileges><D:resource><D:href>%s</D:href>'
              b'<D:privilege><D:%s /></D:privilege></D:resource></D:need-privileges></D:error>')


def need_privileges(location: str, privilege: bytes = b"write-content") -> Answer:
    """403 with DAV:need-privileges for the resource at ``location`` (an absolute path): the one way the
    gate refuses a write the client's rights would otherwise allow (mirrored items, protected calendars)."""
    return xml_answer(403, NEED_WRITE % (location.encode(), privilege))


mirrored_refusal = need_privileges  # the name its callers for mirrored items use


class MirroredGuard:
    def __init__(self, store: Store, auth: SqlAuth, rights: SqlRights) -> None:
        self._store = store
        self._auth = auth
        self._rights = rights

    def answer(self, method: str, path: str, headers: dict[str, str], href_prefix: str) -> Answer | None:
        """The refusal of a DELETE, MOVE or PUT touching a mirrored item, or None to let Radicale answer."""
        parts = _item_path(path)
        login = authenticated(self._auth, headers.get("authorization", ""),
                              headers.get("content-type", "")) if parts else None
        if parts is None or login is None:
            return None
        if self._mirrored(login, parts):
            privilege = b"unbind" if method in ("DELETE", "MOVE") else b"write-content"
            return mirrored_refusal(f"{href_prefix}/{'/'.join(parts)}", privilege)
        if method == "MOVE":
            target = _destination(headers.get("destination", ""), href_prefix)
            if target is not None and self._mirrored(login, target):
                return mirrored_refusal(f"{href_prefix}/{'/'.join(target)}")
        return None

    def _mirrored(self, login: str, parts: list[str]) -> bool:
        owner_login, slug, href = parts
        if not may(self._rights, login, owner_login, slug, "w"):
            return False  # Radicale answers with its own 403 or 404
        with self._store.read() as session:
            calendar = calendars.calendar_by_path(session, owner_login, slug)
            if calendar is None:
                return False
            item = items.by_href(session, calendar.id, href)
            return item is not None and item.origin.startswith("connection:")


def _destination(header: str, href_prefix: str) -> list[str] | None:
    path = unquote(urlsplit(header).path)
    if not path.startswith(href_prefix + "/"):
        return None
    return _item_path(path[len(href_prefix):])


def _item_path(path: str) -> list[str] | None:
    """The owner, calendar and href of an item path, read as Radicale reads it ("//", "." and ".."
    collapse): a stricter reading let /dav/weber//praxis/x.ics past the guard to the storage."""
    parts = split(path)
    return parts if len(parts) == 3 else None
