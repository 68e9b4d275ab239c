"""Disconnecting a connection stops its push channel at the provider (Google's channels.stop), so the
provider stops posting notices for a calendar the bridge no longer follows; a provider that cannot be
reached does not keep the connection from going."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bridge.cli import main
from bridge.secrets import Secrets
from bridge.settings import load_settings, replace
from bridge.store import calendars, connections, migrate, users
from bridge.store.models import Connection, PushChannel
from bridge.sync.engine import Engine
from tests.scenarios.google_driver import GoogleDriver, GoogleProvider, google_provider
from tests.standins import tls


@pytest.fixture(scope="module")
def google(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GoogleProvider]:
    with google_provider(tmp_path_factory.mktemp("google")) as provider:
        yield provider


@pytest.fixture
def driver(google: GoogleProvider) -> Iterator[GoogleDriver]:
    with google.new_driver() as fresh:
        yield fresh


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in ("BRIDGE_CONFIG", "BRIDGE_DATABASE_URL", "BRIDGE_SECRET_KEYS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BRIDGE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("BRIDGE_PROVIDER_CA_FILE", tls.ca_file())
    return tmp_path


def watched_connection(driver: GoogleDriver, via: str | None = None) -> int:
    """A Google connection synced once by a bridge with a public HTTPS address, so it holds a channel."""
    settings = load_settings()
    store = migrate.open_store(settings.effective_database_url, settings.db_pool_size)
    secrets = Secrets.from_settings(settings)
    account = driver.account(via)
    with store.write() as session:
        tenant = users.create_tenant(session, "Praxis")
        owner = users.create_user(session, tenant, login="erika", email="erika@example.org", password_hash="-")
        calendar = calendars.create_calendar(session, owner, "work", timezone="Europe/Berlin")
        connection = connections.create_connection(session, calendar, "google")
        connections.set_account(session, connection, server_url=account.server_url,
                                remote_calendar=account.remote_calendar,
                                credentials=secrets.encrypt(json.dumps(dict(account.credentials))))
        connection_id = connection.id
    engine = Engine(store, replace(settings, base_url="https://bridge.example.org"), secrets)
    assert engine.run(connection_id).status == "ok"
    store.dispose()
    return connection_id


def disconnect(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
               connection_id: int) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    code = main(["connection", "disconnect", str(connection_id)])
    out, err = capsys.readouterr()
    return code, out, err


def rows(model: type) -> int:
    settings = load_settings()
    store = migrate.open_store(settings.effective_database_url, settings.db_pool_size)
    try:
        with store.read() as session:
            return int(session.scalar(select(func.count()).select_from(model)) or 0)
    finally:
        store.dispose()


def test_disconnect_stops_the_channel_at_google(env: Path, driver: GoogleDriver, google: GoogleProvider,
                                                monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    connection_id = watched_connection(driver)
    assert rows(PushChannel) == 1 and len(google.running.standin.channels) == 1

    code, out, err = disconnect(monkeypatch, capsys, connection_id)

    assert code == 0 and "removed" in out and err == ""
    assert google.running.standin.channels == {}  # Google no longer posts notices for it
    assert rows(PushChannel) == 0 and rows(Connection) == 0


def test_a_provider_that_cannot_stop_the_channel_does_not_keep_the_connection(
        env: Path, driver: GoogleDriver, google: GoogleProvider, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    connection_id = watched_connection(driver)
    google.running.standin.fail_next(1, 503)  # channels.stop meets a Google outage

    code, out, err = disconnect(monkeypatch, capsys, connection_id)

    assert code == 0 and "removed" in out
    assert "could not be stopped" in err and "expires by itself" in err
    assert rows(Connection) == 0 and rows(PushChannel) == 0


def test_removing_the_calendar_stops_its_connections_channel_too(env: Path, driver: GoogleDriver,
                                                                 google: GoogleProvider,
                                                                 monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    earlier = set(google.running.standin.channels)  # a channel an earlier test could not stop is still there
    watched_connection(driver)
    ours = set(google.running.standin.channels) - earlier
    assert len(ours) == 1
    monkeypatch.setattr("sys.stdin", io.StringIO(""))

    assert main(["calendar", "remove", "--owner", "erika", "--slug", "work"]) == 2  # it asks first
    assert rows(Connection) == 1 and ours <= set(google.running.standin.channels)
    assert main(["calendar", "remove", "--owner", "erika", "--slug", "work", "--yes"]) == 0

    assert "1 connection(s) removed" in capsys.readouterr().out
    assert not ours & set(google.running.standin.channels)  # Google no longer posts notices for it
    assert rows(PushChannel) == 0 and rows(Connection) == 0
