"""MOVE of an item: the store's origin rule, asked before Radicale's own checks.

Radicale answers a MOVE onto an item with another UID 409 no-uid-conflict before it asks the
store, so a client moving its item onto a mirrored item or a booking's event would be told of a
UID conflict instead of the missing privilege. The gate asks the rule (``bridge.store.writers``)
for the moved item and the one it would replace first; the store applies the same rule again
when Radicale moves, so a write racing with this check is refused all the same.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from bridge.storage_plugin.auth import SqlAuth
from bridge.storage_plugin.rights import SqlRights
from bridge.store import calendars, items, writers
from bridge.store.db import Store
from bridge.store.errors import ItemRefused
from bridge.web.dav_access import authenticated, may, segments
from bridge.web.dav_answer import Answer
from bridge.web.dav_refusal import refusal_of


class MoveCheck:
    def __init__(self, store: Store, auth: SqlAuth, rights: SqlRights) -> None:
        self._store = store
        self._auth = auth
        self._rights = rights

    def answer(self, path: str, headers: dict[str, str], href_prefix: str) -> Answer | None:
        """403 for a MOVE the origin rule refuses, or None to let Radicale answer."""
        source = segments(path, 3, trailing_slash=False)
        login = authenticated(self._auth, headers) if source else None
        if source is None or login is None:
            return None
        target = _destination(headers.get("destination", ""), href_prefix)
        for parts, is_destination in ((source, False), (target, True)):
            if parts is None or not may(self._rights, login, parts[0], parts[1], "w"):
                continue  # Radicale answers with its own 403 or 404
            try:
                writers.check(writers.CLIENT, parts[2], self._origin(parts), destination=is_destination)
            except ItemRefused as refused:
                return refusal_of(refused, "MOVE", f"{href_prefix}/{'/'.join(parts)}")
        return None

    def _origin(self, parts: list[str]) -> str | None:
        owner_login, slug, href = parts
        with self._store.read() as session:
            calendar = calendars.calendar_by_path(session, owner_login, slug)
            item = items.by_href(session, calendar.id, href) if calendar is not None else None
            return item.origin if item is not None else None


def _destination(header: str, href_prefix: str) -> list[str] | None:
    path = unquote(urlsplit(header).path)
    if not path.startswith(href_prefix + "/"):
        return None
    return segments(path[len(href_prefix):], 3, trailing_slash=False)
