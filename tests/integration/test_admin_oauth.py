"""Connecting Google and Microsoft accounts on /admin through the OAuth redirect, against the stand-ins: the page
sends the browser to the provider, the provider sends it back to /admin/oauth/callback, the account's calendars are
offered, and the chosen one is connected with its tokens stored encrypted. A refused consent and a forged state end
on the connect page with a plain message and store nothing; the grant's verifier travels in an HttpOnly cookie
scoped to the callback, sealed."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from bridge.settings import Settings
from bridge.store.models import Connection, SyncRun
from tests.conftest import Bridge
from tests.integration.admin_client import csrf_of, sign_in
from tests.integration.test_admin_connections import finish, settled
from tests.integration.test_provider_secrets import Provider, running_provider
from tests.standins import tls

_REMOTES = re.compile(r'name="remote" value="([^"]+)"')


@pytest.fixture(params=["google", "microsoft"])
def provider(request: pytest.FixtureRequest) -> Iterator[Provider]:
    with running_provider(request.param) as running:
        yield running


@pytest.fixture
def settings(tmp_path: Path, provider: Provider) -> Settings:
    return Settings(data_dir=tmp_path, max_body_bytes=1024 * 1024, auth_failure_delay_seconds=0,
                    provider_ca_file=tls.ca_file(), **provider.settings)


@pytest.fixture
def anna(bridge: Bridge) -> Iterator[httpx.Client]:
    bridge.add_user("Praxis", "anna", role="admin")
    bridge.add_calendar("anna", "praxis")
    with sign_in(bridge, "anna") as client:
        yield client


def start(anna: httpx.Client, calendar_id: int, provider: str) -> httpx.Response:
    """Press 'sign in with …' on the connect page: the answer sends the browser to the provider."""
    page = anna.get(f"/calendars/{calendar_id}/connect", params={"provider": provider})
    assert page.status_code == 200 and f'action="/admin/calendars/{calendar_id}/sign-in"' in page.text
    # the sign-in form may be redirected to the provider's sign-in host, and only there
    assert "form-action 'self' https://127.0.0.1:" in page.headers["content-security-policy"]
    return anna.post(f"/calendars/{calendar_id}/sign-in", data={"csrf": csrf_of(page), "provider": provider})


def at_provider(url: str) -> str:
    """What the browser does at the provider (the stand-in consents at once): where it is sent back to."""
    with httpx.Client(verify=tls.client_context(), timeout=10) as browser:
        answer = browser.get(url)
    assert answer.status_code in (302, 303), answer.text
    return answer.headers["location"]


def test_sign_in_choose_the_calendar_and_sync(bridge: Bridge, anna: httpx.Client, provider: Provider) -> None:
    calendar_id = bridge.calendar_id("anna", "praxis")
    sent = start(anna, calendar_id, provider.name)
    assert sent.status_code == 303 and sent.headers["location"].startswith("https://127.0.0.1")
    cookie = sent.headers["set-cookie"]
    assert "calbridge_oauth=" in cookie and "HttpOnly" in cookie and "Path=/admin/oauth" in cookie
    assert provider.client_secret not in cookie  # sealed: neither the app's secret nor the verifier in clear

    back = at_provider(sent.headers["location"])
    assert back.startswith(f"{bridge.url}/admin/oauth/callback?")
    picker = anna.get(back)
    assert picker.status_code == 200, picker.text
    assert provider.calendar_id in _REMOTES.findall(picker.text)
    assert "calbridge_oauth=" in picker.headers.get("set-cookie", "")  # the one-shot cookie is cleared
    for token in provider.issued():
        assert token not in picker.text

    done = finish(anna, calendar_id, picker, provider.calendar_id)
    assert done.status_code == 303, done.text
    with bridge.store.read() as session:
        connection = session.scalar(select(Connection))
        assert connection is not None and connection.provider == provider.name
        assert connection.remote_calendar == provider.calendar_id and connection.direction == "both"
        assert all(token not in connection.credentials for token in provider.issued())
    page = anna.get(done.headers["location"].removeprefix("/admin")).text
    assert all(token not in page for token in provider.issued())

    anna.post(f"/connections/{connection.id}/sync", data={"csrf": csrf_of(anna.get(f"/connections/{connection.id}"))})
    run = settled(bridge, connection.id, 1)[0]
    assert run.status == "ok", run.error_message


def test_a_refused_consent_is_said_plainly_and_stores_nothing(bridge: Bridge, anna: httpx.Client,
                                                              provider: Provider) -> None:
    provider.standin.refuse_consent = True
    calendar_id = bridge.calendar_id("anna", "praxis")
    back = at_provider(start(anna, calendar_id, provider.name).headers["location"])
    answer = anna.get(back)
    assert answer.status_code == 422
    assert "Die Anmeldung beim Anbieter wurde abgelehnt oder abgebrochen." in answer.text
    assert "access_denied" in answer.text  # the detail, for whoever helps
    with bridge.store.read() as session:
        assert session.scalar(select(Connection)) is None and session.scalar(select(SyncRun)) is None


def test_a_forged_state_or_a_missing_cookie_gets_nothing(bridge: Bridge, anna: httpx.Client,
                                                         provider: Provider) -> None:
    calendar_id = bridge.calendar_id("anna", "praxis")
    back = at_provider(start(anna, calendar_id, provider.name).headers["location"])
    forged = re.sub(r"state=[^&]+", "state=forged", back)
    assert anna.get(forged).status_code == 422
    with httpx.Client(base_url=bridge.url) as stranger:
        assert stranger.get(back).status_code == 303  # not signed in: to the login page, nothing redeemed
    answer = anna.get(back)  # the cookie went with the forged attempt: start over
    assert answer.status_code == 400 and "abgelaufen" in answer.text
    with bridge.store.read() as session:
        assert session.scalar(select(Connection)) is None
