"""Whole calendars over CalDAV: what the booking engine depends on is not deleted or overwritten.

A DELETE of a calendar, or a PUT of a whole calendar over it, ends every item in it; Apple
Calendar's "Delete calendar" is one click. A calendar made with the command line, the API or the
admin page, or one holding bookings or connections, is removed only there (bridge.removal says
first what that ends), so the gate refuses both with 403 ``DAV:need-privileges``, as it refuses
writes to mirrored items (:func:`bridge.web.dav_refusal.refusal`). A calendar a client made
itself with MKCALENDAR stays the client's to delete while it holds neither.

Clients may make only ``mkcalendar_limit`` calendars per user (MKCALENDAR, extended MKCOL, or a
PUT of a whole new calendar): past it, 403 with the reason in plain text.

Paths are read as Radicale reads them (sanitized: "//" and "." collapse, a trailing slash is
optional), so no spelling slips past. Anything else, and requests without valid credentials or
the right to write, are declined (None) for Radicale to answer. The storage plugin refuses the
same writes if they reach it.
"""

from __future__ import annotations

from bridge.settings import Settings
from bridge.storage_plugin.auth import SqlAuth
from bridge.storage_plugin.paths import split
from bridge.storage_plugin.rights import SqlRights
from bridge.store import calendars, users
from bridge.store.db import Store
from bridge.store.errors import CalendarLimitReached
from bridge.web.dav_access import authenticated, may
from bridge.web.dav_answer import Answer
from bridge.web.dav_refusal import refusal as need_privileges

WHOLE_CALENDAR_METHODS = frozenset({"DELETE", "PUT", "MKCALENDAR", "MKCOL"})


class CalendarGuard:
    def __init__(self, store: Store, settings: Settings, auth: SqlAuth, rights: SqlRights) -> None:
        self._store = store
        self._limit = settings.mkcalendar_limit
        self._auth = auth
        self._rights = rights

    def answer(self, method: str, path: str, headers: dict[str, str], href_prefix: str) -> Answer | None:
        """The refusal of a request on a whole calendar, or None to let Radicale answer."""
        if method not in WHOLE_CALENDAR_METHODS:
            return None
        parts = split(path)
        if len(parts) != 2:
            return None
        login = authenticated(self._auth, headers)
        owner_login, slug = parts
        if login is None or not may(self._rights, login, owner_login, slug, "w"):
            return None  # Radicale answers with its own delay, 401 or 403
        with self._store.read() as session:
            calendar = calendars.calendar_by_path(session, owner_login, slug)
            if calendar is not None:
                if method in ("DELETE", "PUT") and calendars.is_protected(session, calendar):
                    privilege = b"unbind" if method == "DELETE" else b"write-content"
                    return need_privileges(f"{href_prefix}/{owner_login}/{slug}/", privilege)
                return None
            owner = users.user_by_login(session, owner_login)
            if method == "DELETE" or owner is None:
                return None
            if calendars.client_made_count(session, owner.id) >= self._limit:
                reason = str(CalendarLimitReached(self._limit)) + "\n"
                return Answer(403, [(b"Content-Type", b"text/plain; charset=utf-8")], reason.encode())
        return None
