"""Connecting an Exchange mailbox on /admin against the EWS stand-in: the form's account is tested at once (a wrong
password is said in the user's language, with exchangelib's reason as the detail), the mailbox's calendars are
offered, and the chosen one is connected and synced."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from bridge.settings import Settings
from bridge.store.models import Connection
from tests.conftest import Bridge
from tests.integration.admin_client import post_form, sign_in
from tests.integration.test_admin_connections import finish, settled
from tests.standins import tls
from tests.standins.ews import Mailbox, RunningEws, ews_standin


@pytest.fixture(scope="module")
def running() -> Iterator[RunningEws]:
    with ews_standin() as served:
        yield served


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, max_body_bytes=1024 * 1024, auth_failure_delay_seconds=0,
                    provider_ca_file=tls.ca_file(), provider_private_networks=True)


@pytest.fixture
def anna(bridge: Bridge) -> Iterator[httpx.Client]:
    bridge.add_user("Praxis", "anna", role="admin")
    bridge.add_calendar("anna", "praxis")
    with sign_in(bridge, "anna") as client:
        yield client


def connect(client: httpx.Client, calendar_id: int, running: RunningEws, mailbox: Mailbox,
            password: str) -> httpx.Response:
    return post_form(client, f"/calendars/{calendar_id}/connect?provider=exchange", f"/calendars/{calendar_id}/connect",
                     {"provider": "exchange", "email": mailbox.email, "url": running.ews_url, "auth": "basic",
                      "username": mailbox.username, "password": password})


def test_an_exchange_mailbox_is_tested_chosen_connected_and_synced(bridge: Bridge, anna: httpx.Client,
                                                                   running: RunningEws) -> None:
    mailbox = running.standin.new_mailbox()
    calendar_id = bridge.calendar_id("anna", "praxis")
    refused = connect(anna, calendar_id, running, mailbox, "wrong-password-7")
    assert refused.status_code == 422 and "Der Server hat Benutzername oder Passwort abgelehnt" in refused.text
    assert "wrong-password-7" not in refused.text

    picker = connect(anna, calendar_id, running, mailbox, mailbox.password)
    assert picker.status_code == 200, picker.text
    assert mailbox.password not in picker.text
    done = finish(anna, calendar_id, picker, mailbox.calendar_id)
    assert done.status_code == 303, done.text
    with bridge.store.read() as session:
        connection = session.scalar(select(Connection))
        assert connection is not None and connection.provider == "exchange"
        assert connection.remote_calendar == mailbox.calendar_id and mailbox.password not in connection.credentials
    post_form(anna, f"/connections/{connection.id}", f"/connections/{connection.id}/sync")
    run = settled(bridge, connection.id, 1)[0]
    assert run.status == "ok", run.error_message
