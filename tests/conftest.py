"""Shared fixtures: a migrated store on SQLite or PostgreSQL, and a live calbridge on loopback."""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn

from bridge.passwords import hash_password
from bridge.settings import Settings
from bridge.store import calendars, migrate, tokens, users
from bridge.store.db import Store
from bridge.web.app import create_app

PG_ADMIN_URL = os.environ.get("CALBRIDGE_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PASSWORD = "correct horse battery"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _postgres_or_skip() -> None:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL.replace("+psycopg", ""), connect_timeout=3):
            pass
    except Exception as exc:  # any failure to reach the server
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required under CI=true but unreachable at {PG_ADMIN_URL}: {exc}")
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL} ({exc}); the scale-out tests need it")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database, dropped afterwards."""
    _postgres_or_skip()
    import psycopg

    name = f"calbridge_test_{secrets.token_hex(4)}"
    admin = PG_ADMIN_URL.replace("+psycopg", "")
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'calbridge.sqlite3'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'calbridge.sqlite3'}"


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    store = Store(database_url)
    migrate.upgrade(store)
    yield store
    store.dispose()


@dataclass
class Bridge:
    """A running calbridge and the people in it."""

    url: str
    store: Store
    settings: Settings

    def client(self, login: str, password: str = PASSWORD) -> httpx.Client:
        return httpx.Client(base_url=self.url, auth=(login, password), timeout=30)

    def add_user(self, tenant: str, login: str, role: str = "member") -> None:
        with self.store.write() as session:
            try:
                tenant_row = users.tenant_by_name(session, tenant)
            except Exception:
                tenant_row = users.create_tenant(session, tenant)
            users.create_user(session, tenant_row, login=login, email=f"{login}@example.org",
                              password_hash=_hash(PASSWORD), role=role)

    def add_calendar(self, owner: str, slug: str, timezone: str = "Europe/Berlin") -> str:
        with self.store.write() as session:
            user = users.user_by_login(session, owner)
            assert user is not None
            calendars.create_calendar(session, user, slug, timezone=timezone)
        return f"{self.url}/dav/{owner}/{slug}/"

    def calendar_id(self, owner: str, slug: str) -> int:
        with self.store.read() as session:
            user = users.user_by_login(session, owner)
            assert user is not None
            calendar = calendars.calendar_of(session, user.id, slug)
            assert calendar is not None
            return calendar.id

    def add_token(self, tenant: str, scope: str = "engine") -> str:
        with self.store.write() as session:
            _, secret = tokens.create_token(session, users.tenant_by_name(session, tenant), "tests", scope)
        return secret

    def api(self, token: str) -> httpx.Client:
        return httpx.Client(base_url=self.url + "/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=30)


_HASHES: dict[str, str] = {}


def _hash(password: str) -> str:
    if password not in _HASHES:
        _HASHES[password] = hash_password(password)
    return _HASHES[password]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # The external servers of the tests run on loopback: the operator's setting that lets tenants reach them.
    return Settings(data_dir=tmp_path, max_body_bytes=1024 * 1024, auth_failure_delay_seconds=0,
                    provider_private_networks=True)


@pytest.fixture
def bridge(store: Store, settings: Settings) -> Iterator[Bridge]:
    """calbridge served by uvicorn in a thread, on the parametrised database."""
    with serve(store, settings) as url:
        yield Bridge(url=url, store=store, settings=settings)


class _ThreadedServer(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the main thread belongs to pytest
        pass


@contextmanager
def serve(store: Store, settings: Settings) -> Iterator[str]:
    port = free_port()
    app = create_app(settings, store)
    server = _ThreadedServer(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off",
                                              http="h11"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("calbridge did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
