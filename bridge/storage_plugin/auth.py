"""Radicale auth plugin over the user table (argon2id, with a short-lived credential cache)."""

from __future__ import annotations

from radicale import auth as radicale_auth
from radicale import config as radicale_config
from sqlalchemy import select

from bridge.passwords import CredentialCache
from bridge.settings import Settings
from bridge.store.db import Store
from bridge.store.models import User


class SqlAuth(radicale_auth.BaseAuth):
    def __init__(self, store: Store, settings: Settings, configuration: radicale_config.Configuration) -> None:
        super().__init__(configuration)
        self._store = store
        self._cache = CredentialCache(ttl=settings.auth_cache_seconds)

    def check(self, login: str, password: str) -> bool:
        """Whether the credentials are valid; the /dav gate asks this for the requests it answers itself."""
        with self._store.read() as session:
            password_hash = session.scalar(select(User.password_hash).where(User.login == login,
                                                                         User.removed_at.is_(None)))
        return self._cache.check(login, password, password_hash)

    def _login(self, login: str, password: str) -> str:
        return login if self.check(login, password) else ""
