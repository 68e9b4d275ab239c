"""Connecting Google and Microsoft on /admin in a real browser, through the OAuth redirect against the stand-ins
(served over TLS with the tests' own CA, which the browser context accepts): choose the provider, sign in there
(the stand-in consents at once), come back to the calendar picker, connect, sync now. Screenshots go to
tests/artifacts/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from bridge.settings import Settings
from bridge.store.models import Connection
from tests.browser.test_admin_sync_browser import Shot, sign_in, watch
from tests.conftest import Bridge
from tests.integration.test_provider_secrets import Provider, running_provider
from tests.standins import tls

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")


@pytest.fixture(params=["google", "microsoft"])
def provider(request: pytest.FixtureRequest) -> Iterator[Provider]:
    with running_provider(request.param) as running:
        yield running


@pytest.fixture
def settings(tmp_path: Path, provider: Provider) -> Settings:
    return Settings(data_dir=tmp_path, max_body_bytes=1024 * 1024, auth_failure_delay_seconds=0,
                    provider_ca_file=tls.ca_file(), **provider.settings)


def test_connect_through_the_providers_sign_in(bridge: Bridge, page: sync_api.Page, shot: Shot,
                                              provider: Provider) -> None:
    bridge.add_user("Praxis Sonnenschein", "anna", role="admin")
    bridge.add_calendar("anna", "praxis")
    problems = watch(page)
    sign_in(page, bridge)
    page.goto(f"{bridge.url}/admin/calendars/{bridge.calendar_id('anna', 'praxis')}/connect")
    label = {"google": "Google Kalender", "microsoft": "Microsoft 365 / Outlook.com"}[provider.name]
    page.click(f"a.provider >> text={label}")
    shot(page, f"connect_{provider.name}")
    page.click(f"text=Bei {label} anmelden")  # to the provider, which consents and sends the browser back
    sync_api.expect(page.locator("h1")).to_have_text("Kalender auswählen")
    assert page.url.startswith(f"{bridge.url}/admin/oauth/callback")
    shot(page, f"pick_{provider.name}")
    page.click("form.card button[type=submit]")
    page.wait_for_url("**/admin/connections/*")
    sync_api.expect(page.locator("h1")).to_have_text(f"Synchronisation: {label}")
    with bridge.store.read() as session:
        connection = session.scalar(select(Connection))
        assert connection is not None and connection.remote_calendar == provider.calendar_id
    page.click("text=Jetzt synchronisieren")
    page.wait_for_url("**/log")
    sync_api.expect(page.locator("tr.run-ok")).to_have_count(1, timeout=20_000)
    shot(page, f"log_{provider.name}")
    assert problems == [], problems
