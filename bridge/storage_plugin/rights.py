"""Radicale rights plugin: a member reaches only their own calendars, a tenant's admin (and the
booking engine's service user) every calendar of that tenant, and nobody anything of another tenant.

Principals are read-only ("R"): users and their principals are managed by the CLI and the admin
page, never by DELETE or PROPPATCH on /dav. Only /<login>/ and /<login>/<calendar>/ exist.
"""

from __future__ import annotations

import threading
import time

from radicale import config as radicale_config
from radicale import rights as radicale_rights
from sqlalchemy import select

from bridge.storage_plugin.paths import split
from bridge.store.db import Store
from bridge.store.models import User

PRIVILEGED_ROLES = ("admin", "service")
_CACHE_SECONDS = 2.0  # Radicale asks once per path and child; a request should not pay a query each time


class SqlRights(radicale_rights.BaseRights):
    def __init__(self, store: Store, configuration: radicale_config.Configuration) -> None:
        super().__init__(configuration)
        self._store = store
        self._cache: dict[str, tuple[float, tuple[int, str] | None]] = {}
        self._lock = threading.Lock()

    def _identity(self, login: str) -> tuple[int, str] | None:
        """(tenant id, role) of a login, or None if there is no such user."""
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(login)
        if cached and cached[0] > now:
            return cached[1]
        with self._store.read() as session:
            row = session.execute(select(User.tenant_id, User.role).where(User.login == login,
                                                                              User.removed_at.is_(None))).first()
        identity = (row[0], row[1]) if row else None
        with self._lock:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[login] = (now + _CACHE_SECONDS, identity)
        return identity

    def authorization(self, user: str, user_groups: set[str], path: str) -> str:
        if not user:
            return ""
        parts = split(path)
        if not parts:
            return "R"
        if len(parts) > 2:
            return ""
        if parts[0] != user:
            viewer, owner = self._identity(user), self._identity(parts[0])
            if viewer is None or owner is None or viewer[0] != owner[0] or viewer[1] not in PRIVILEGED_ROLES:
                return ""
        return "R" if len(parts) == 1 else "rw"
