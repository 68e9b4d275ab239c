"""Issue 6, secrets: the refresh tokens, access tokens and client secrets of Google and Microsoft connections
never appear in clear in a log record (any logger, at DEBUG), in the sync log, in the CLI's output or anywhere in
the SQLite database (every column of every table, and the raw bytes of the database and WAL files).

The account is connected the way an admin does it (``calbridge connection add … google``, the test playing the
browser), synced while the stand-in rotates the refresh token, re-encrypted with ``calbridge secrets rotate``
and synced again with the new key; the stand-ins keep every token they issued, old and rotated, so the test
greps for all of them.
"""

from __future__ import annotations

import io
import json
import logging
import secrets
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge.cli import main
from bridge.secrets import Secrets, new_key
from bridge.store.db import Store
from bridge.store.models import Connection, SyncRun
from bridge.sync import connection_admin
from tests.standins import tls
from tests.standins.google import google_standin
from tests.standins.microsoft import GraphStandIn, app_of
from tests.standins.serve import serve

PASSWORD = "a long enough password"
LOGGERS = ("", "bridge", "httpx", "httpcore", "urllib3", "requests", "requests_oauthlib", "oauthlib", "msal",
           "google", "google.auth", "google_auth_oauthlib", "googleapiclient", "sqlalchemy")
"""Every logger at DEBUG: the root (where caplog listens) and those of the libraries on the token path."""


@dataclass
class Provider:
    """A provider's stand-in on loopback TLS, with what calbridge's settings need to reach it."""

    name: str
    standin: Any  # GoogleStandIn | GraphStandIn: refuse_consent, request_log, issued
    client_secret: str
    calendar_id: str
    settings: dict[str, str]  # the provider's keys of the TOML configuration
    expire_access_tokens: Callable[[], None]
    throttle_next: Callable[[int], None]  # the next API request answers 429 with Retry-After: seconds

    def issued(self) -> list[str]:
        """Every refresh and access token the stand-in ever issued, old and rotated."""
        with self.lock():
            return list(self.standin.issued)

    def requests(self) -> list[tuple[float, str, str, int]]:
        """The stand-in's API request log: (arrival on time.monotonic(), method, path, status)."""
        with self.lock():
            return list(self.standin.request_log)

    def lock(self) -> Any:
        return self.standin.lock if self.name == "google" else self.standin._lock


@contextmanager
def running_provider(name: str) -> Iterator[Provider]:
    """A fresh stand-in of ``name`` with one calendar and an OAuth client of this test's own (a distinctive
    client secret, so that finding it anywhere cannot be a coincidence)."""
    client_id, secret = f"calbridge-{secrets.token_hex(4)}", f"client-secret-{secrets.token_hex(16)}"
    if name == "google":
        with google_standin() as google:
            standin = google.standin
            standin.clients[client_id] = secret
            standin.rotate_refresh_tokens = True  # every refresh hands out a new refresh token, as Google may
            yield Provider("google", standin, secret, standin.new_calendar(), {
                "google_client_id": client_id, "google_client_secret": secret,
                "google_auth_url": google.origin + "/o/oauth2/auth", "google_token_url": google.token_uri,
                "google_api_url": google.api_root}, standin.expire_access_tokens,
                lambda seconds: standin.fail_next(1, 429, retry_after=seconds))
        return
    graph = GraphStandIn()  # rotates refresh tokens on every refresh, as the identity platform does
    graph.register_client(client_id, secret=secret)
    with serve(app_of(graph)) as origin:
        yield Provider("microsoft", graph, secret, graph.new_calendar("Kalender"), {
            "microsoft_client_id": client_id, "microsoft_client_secret": secret, "microsoft_tenant": "common",
            "microsoft_login_url": origin, "microsoft_graph_url": origin + "/v1.0"}, graph.expire_access_tokens,
            lambda seconds: graph.fail_next(1, 429, str(seconds)))


@pytest.fixture(params=["google", "microsoft"])
def provider(request: pytest.FixtureRequest) -> Iterator[Provider]:
    with running_provider(request.param) as running:
        yield running


def write_config(path: Path, data_dir: Path, provider: Provider, keys: list[str]) -> Path:
    """The TOML file an admin writes: the data directory, the keys, the test CA and the provider's client."""
    values = {"data_dir": str(data_dir), "secret_keys": ",".join(keys), "provider_ca_file": tls.ca_file(),
              **provider.settings}
    path.write_text("".join(f"{name} = {json.dumps(value)}\n" for name, value in values.items()))
    return path


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("BRIDGE_CONFIG", "BRIDGE_DATABASE_URL", "BRIDGE_SECRET_KEYS", "BRIDGE_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)


def play_browser(url: str) -> httpx.Response:
    """What a consenting user's browser does: open the sign-in address, follow the provider's redirect to the
    loopback address the command listens on."""
    with httpx.Client(verify=tls.client_context(), follow_redirects=True, timeout=10) as browser:
        return browser.get(url)


@dataclass
class Cli:
    """``calbridge --config …`` run in this process (so every log record reaches caplog); keeps all it printed."""

    config: Path
    monkeypatch: pytest.MonkeyPatch
    capsys: pytest.CaptureFixture[str]
    printed: list[str] = field(default_factory=list)

    def __call__(self, *argv: str, stdin: str = "") -> str:
        """Run a command that must succeed; what it printed on stdout."""
        self.monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
        code = main(["--config", str(self.config), *argv])
        out, err = self.capsys.readouterr()
        self.printed += [out, err]
        assert code == 0, (argv, out, err)
        return out


def make_calendar(cli: Cli) -> str:
    """A tenant, a user and a calendar made with the CLI; the calendar as LOGIN/SLUG."""
    cli("migrate")
    cli("tenant", "create", "Praxis Weber")
    cli("user", "create", "--tenant", "Praxis Weber", "--login", "weber", "--email", "weber@example.org",
        "--password-stdin", stdin=PASSWORD + "\n")
    cli("calendar", "create", "--owner", "weber", "--slug", "praxis")
    return "weber/praxis"


def connected(cli: Cli, provider: Provider, monkeypatch: pytest.MonkeyPatch) -> int:
    """A calendar made with the CLI, then ``connection add`` with the browser played; the connection's id."""
    make_calendar(cli)
    opened: list[httpx.Response] = []
    monkeypatch.setattr("bridge.cli_sync.webbrowser.open", lambda url: opened.append(play_browser(url)) or True)
    out = cli("connection", "add", "weber/praxis", provider.name, "--remote", provider.calendar_id)
    assert [answer.status_code for answer in opened] == [200]  # the loopback listener took the redirect
    return int(out.split("connection ", 1)[1].split(":", 1)[0])


def stored_credentials(database: Path, keys: list[str], connection_id: int) -> dict[str, str]:
    store = Store(f"sqlite:///{database}")
    try:
        with store.read() as session:
            found = session.get(Connection, connection_id)
            assert found is not None
            return dict(json.loads(Secrets(keys).decrypt(found.credentials)))
    finally:
        store.dispose()


def database_texts(database: Path) -> tuple[list[str], list[bytes]]:
    """Every value of every column of every table, as text and as bytes; and the raw database files (free
    pages and the WAL keep what was overwritten)."""
    texts: list[str] = []
    blobs: list[bytes] = []
    with sqlite3.connect(database) as db:
        tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        assert {"connection", "sync_run", "user"} <= set(tables)
        for table in tables:
            for row in db.execute(f'SELECT * FROM "{table}"'):
                for value in row:
                    if isinstance(value, bytes):
                        blobs.append(value)
                    elif value is not None:
                        texts.append(str(value))
                        blobs.append(str(value).encode())
    db.close()
    for path in (database, database.with_name(database.name + "-wal"), database.with_name(database.name + "-journal")):
        if path.exists():
            blobs.append(path.read_bytes())
    return texts, blobs


def log_texts(records: list[logging.LogRecord]) -> list[tuple[str, str]]:
    """(where, text) of every record: the logger's name, and the message with its arguments and extras."""
    return [(f"the log ({record.name})", f"{record.getMessage()} {record.exc_text or ''} {record.__dict__!r}")
            for record in records]


def test_tokens_and_client_secrets_are_never_in_logs_sync_log_or_database_in_clear(
        provider: Provider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture, clean_env: None) -> None:
    for name in LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    data_dir = tmp_path / "data"
    first_key, second_key = new_key(), new_key()
    config = write_config(tmp_path / "calbridge.toml", data_dir, provider, [first_key])
    cli = Cli(config, monkeypatch, capsys)
    connection_id = connected(cli, provider, monkeypatch)
    database = data_dir / "calbridge.sqlite3"
    signed_in = stored_credentials(database, [first_key], connection_id)
    assert signed_in["refresh_token"] in provider.issued() and signed_in["client_secret"] == provider.client_secret

    provider.expire_access_tokens()  # the run refreshes, and the stand-in rotates the refresh token
    cli("sync", str(connection_id))
    rotated = stored_credentials(database, [first_key], connection_id)
    assert rotated["refresh_token"] != signed_in["refresh_token"] and rotated["refresh_token"] in provider.issued()

    write_config(config, data_dir, provider, [second_key, first_key])  # a new key in front, then re-encrypt
    out = cli("secrets", "rotate")
    assert out.startswith("1 stored credentials re-encrypted")
    write_config(config, data_dir, provider, [second_key])  # the old key dropped: everything still decrypts
    provider.expire_access_tokens()
    cli("sync", str(connection_id))
    last = stored_credentials(database, [second_key], connection_id)
    assert last["refresh_token"] not in (signed_in["refresh_token"], rotated["refresh_token"])
    sync_log = cli("log", str(connection_id))
    assert sync_log.count("\tok\t") == 2, sync_log

    forbidden = {*provider.issued(), provider.client_secret}
    assert len(forbidden) >= 7  # three refresh tokens and three access tokens at least, and the secret
    texts = log_texts(caplog.records) + [("the CLI's output", text) for text in cli.printed]
    assert any(r.name.startswith(("urllib3", "httpx", "msal", "google")) for r in caplog.records), \
        "the libraries' DEBUG records were not captured"
    store = Store(f"sqlite:///{database}")
    try:
        with store.read() as session:
            runs = connection_admin.runs(session, connection_id, limit=100)
            texts += [("the sync log", repr({c.name: getattr(run, c.name) for c in SyncRun.__table__.columns}))
                      for run in runs]
    finally:
        store.dispose()
    column_texts, blobs = database_texts(database)
    texts += [("a database column", text) for text in column_texts]
    client_id = next(value for name, value in provider.settings.items() if name.endswith("_client_id"))
    assert any(client_id in text for _, text in texts), "the search does not see what is there"
    leaks = sorted({where for where, text in texts if any(secret in text for secret in forbidden)})
    if any(secret.encode() in blob for blob in blobs for secret in forbidden):
        leaks.append("the database files")
    assert not leaks, f"{provider.name} tokens or the client secret appear in clear in: {', '.join(leaks)}"
