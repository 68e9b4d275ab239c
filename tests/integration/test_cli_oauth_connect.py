"""Issue 6: ``calbridge connection add LOGIN/SLUG google|microsoft --no-browser`` prints the sign-in address and
completes the flow through its loopback listener. The command runs as a subprocess, as an admin runs it; the
test plays the browser (opens the printed address at the stand-in, which consents at once and redirects to the
loopback address). A refused consent and a redirect with a forged ``state`` end the command with a plain message
(no traceback) and a non-zero status, and store nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import pytest
from sqlalchemy import select

from bridge.secrets import Secrets, new_key
from bridge.store.db import Store
from bridge.store.models import Connection
from tests.integration.test_provider_secrets import Cli, Provider, make_calendar, running_provider, write_config
from tests.standins import tls

TIMEOUT = 60


@pytest.fixture(params=["google", "microsoft"])
def provider(request: pytest.FixtureRequest) -> Iterator[Provider]:
    with running_provider(request.param) as running:
        yield running


@pytest.fixture
def configured(provider: Provider, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
               capsys: pytest.CaptureFixture[str]) -> tuple[Path, str, str]:
    """(config file, calendar LOGIN/SLUG, secret key): a calendar made with the CLI against a TOML whose provider
    endpoints are the stand-in's and whose provider_ca_file is the tests' CA."""
    for name in [name for name in os.environ if name.startswith("BRIDGE_")]:
        monkeypatch.delenv(name)
    key = new_key()
    config = write_config(tmp_path / "calbridge.toml", tmp_path / "data", provider, [key])
    return config, make_calendar(Cli(config, monkeypatch, capsys)), key


def calbridge(config: Path, *argv: str) -> list[str]:
    """The installed console script (``python -m bridge`` where there is none)."""
    script = Path(sys.executable).with_name("calbridge")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "bridge"]
    return [*command, "--config", str(config), *argv]


@contextmanager
def signing_in(config: Path, calendar: str, provider: Provider) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``connection add … --no-browser`` running; yields the process and the address it printed."""
    process = subprocess.Popen(calbridge(config, "connection", "add", calendar, provider.name, "--no-browser",
                                         "--remote", provider.calendar_id),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    watchdog = threading.Timer(TIMEOUT, process.kill)
    watchdog.start()
    try:
        assert process.stdout is not None
        printed = []
        while not (printed and printed[-1].startswith("https://")):
            line = process.stdout.readline()
            assert line, f"the command ended without an address: {printed} {process.communicate()[1]}"
            printed.append(line.strip())
        yield process, printed[-1]
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.kill()
            process.communicate()


def consent(url: str) -> str:
    """The browser at the provider: the consent page answers with a redirect; its target."""
    with httpx.Client(verify=tls.client_context(), timeout=10) as browser:
        answer = browser.get(url)
    assert answer.status_code in (302, 303), answer.text
    return str(answer.headers["Location"])


def arrive(redirect: str) -> httpx.Response:
    """The browser follows the redirect to the command's loopback listener."""
    assert redirect.startswith("http://127.0.0.1:")
    return httpx.get(redirect, timeout=10)


def connection_rows(config: Path) -> list[Connection]:
    store = Store(f"sqlite:///{config.parent / 'data' / 'calbridge.sqlite3'}")
    try:
        with store.read() as session:
            return list(session.scalars(select(Connection)))
    finally:
        store.dispose()


def finished(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=TIMEOUT)
    return process.returncode, out, err


def plain_failure(err: str) -> str:
    """The command's one line on stderr saying why, without a traceback."""
    lines = err.strip().splitlines()
    assert lines and lines[-1].startswith("calbridge: the sign-in did not complete: "), err
    assert "Traceback" not in err
    return lines[-1]


def test_connection_add_prints_the_address_and_completes_through_the_loopback_listener(
        provider: Provider, configured: tuple[Path, str, str]) -> None:
    config, calendar, key = configured
    with signing_in(config, calendar, provider) as (process, url):
        authorize = dict(parse_qsl(urlsplit(url).query))
        assert url.startswith(provider.settings.get("google_auth_url") or provider.settings["microsoft_login_url"])
        assert authorize["redirect_uri"].startswith("http://127.0.0.1:")
        assert authorize["code_challenge_method"] == "S256" and authorize["state"]
        landing = arrive(consent(url))
        assert landing.status_code == 200 and "you can close this window" in landing.text
        code, out, err = finished(process)
    assert code == 0, err
    assert f"{calendar} <-> " in out

    (row,) = connection_rows(config)
    assert (row.provider, row.remote_calendar) == (provider.name, provider.calendar_id)
    credentials = json.loads(Secrets([key]).decrypt(row.credentials))
    assert credentials["refresh_token"] in provider.issued()
    assert credentials["refresh_token"] not in row.credentials and provider.client_secret not in row.credentials

    sync = subprocess.run(calbridge(config, "sync", str(row.id)), capture_output=True, text=True, timeout=TIMEOUT)
    assert sync.returncode == 0, sync.stderr
    assert "\tmanual\tok\tbaseline\t" in sync.stdout
    assert err == "", f"signing in printed more than the address and the result: {err}"


def test_a_refused_consent_ends_the_command_with_a_plain_message(provider: Provider,
                                                                 configured: tuple[Path, str, str]) -> None:
    config, calendar, _ = configured
    provider.standin.refuse_consent = True
    with signing_in(config, calendar, provider) as (process, url):
        redirect = consent(url)
        assert dict(parse_qsl(urlsplit(redirect).query))["error"] == "access_denied"
        assert arrive(redirect).status_code == 200
        code, out, err = finished(process)
    assert code != 0
    assert "access_denied" in plain_failure(err)
    assert connection_rows(config) == []


def test_a_redirect_with_a_forged_state_is_refused(provider: Provider, configured: tuple[Path, str, str]) -> None:
    config, calendar, _ = configured
    with signing_in(config, calendar, provider) as (process, url):
        redirect = urlsplit(consent(url))
        query = dict(parse_qsl(redirect.query))
        assert query["code"] and query["state"]
        forged = urlunsplit(redirect._replace(query=urlencode({**query, "state": "forged-by-another-page"})))
        assert arrive(forged).status_code == 200
        code, out, err = finished(process)
    assert code != 0
    plain_failure(err)
    assert connection_rows(config) == []
