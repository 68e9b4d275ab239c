"""Synchronisation on /admin in a real browser (Chromium through Playwright): connect a CalDAV calendar (a Radicale
the test starts), change the options, sync now and watch the run arrive in the log, reset the sync token after its
confirmation page, disable and disconnect. No page breaks the Content Security Policy. Screenshots go to
tests/artifacts/."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bridge.store.models import Connection, Item
from tests.conftest import PASSWORD, Bridge
from tests.servers import RADICALE_PASSWORD, RADICALE_USER, DavServer, radicale_server

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")

EVENT = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//p//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\n"
         "DTSTAMP:20261124T080000Z\r\nDTSTART:{start:%Y%m%dT%H%M%SZ}\r\nDTEND:{end:%Y%m%dT%H%M%SZ}\r\n"
         "SUMMARY:Färben\r\nLOCATION:Praxis Dr. Roth\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
Shot = Callable[[object, str], None]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[DavServer]:
    with radicale_server(tmp_path) as running:
        yield running


def watch(page: sync_api.Page) -> list[str]:
    """Collect CSP violations and script errors."""
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text)
            if message.type == "error" and not message.text.startswith("Failed to load resource") else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    return problems


def sign_in(page: sync_api.Page, bridge: Bridge) -> None:
    page.goto(f"{bridge.url}/admin/login")
    page.fill("input[name=login]", "anna")
    page.fill("input[name=password]", PASSWORD)
    page.click("form.card button[type=submit]")
    page.wait_for_url("**/admin/calendars")


def test_connect_caldav_set_options_sync_reset_disable_and_disconnect(
        bridge: Bridge, page: sync_api.Page, shot: Shot, server: DavServer) -> None:
    bridge.add_user("Praxis Sonnenschein", "anna", role="admin")
    bridge.add_calendar("anna", "praxis")
    remote = server.new_calendar("praxis-extern")
    start = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0) + timedelta(days=2)
    with server.client() as http:
        http.put(remote + "a.ics", content=EVENT.format(uid="a", start=start, end=start + timedelta(hours=1)))
    problems = watch(page)
    sign_in(page, bridge)

    page.click("text=praxis")
    page.wait_for_url("**/admin/calendars/*")
    page.click("text=Externen Kalender verbinden")
    page.wait_for_url("**/connect")
    shot(page, "connect_choose")
    page.click("a.provider >> text=CalDAV")
    page.fill("input[name=url]", server.url)
    page.fill("input[name=username]", RADICALE_USER)
    page.fill("input[name=password]", RADICALE_PASSWORD)
    shot(page, "connect_caldav")
    page.click("form.card button[type=submit]")
    sync_api.expect(page.locator("h1")).to_have_text("Kalender auswählen")
    shot(page, "connect_pick")
    page.check(f"input[name=remote][value='{remote}']")
    page.click("form.card button[type=submit]")
    page.wait_for_url("**/admin/connections/*")
    assert RADICALE_PASSWORD not in page.content()
    shot(page, "connection")

    page.check("input[name=anonymize_location]")
    page.select_option("select[name=sync_timezone]", "Europe/Vienna")
    page.click("form.options button[type=submit]")
    sync_api.expect(page.locator(".notice")).to_have_text("Gespeichert.")
    assert page.is_checked("input[name=anonymize_location]")

    page.click("text=Jetzt synchronisieren")
    page.wait_for_url("**/log")
    sync_api.expect(page.locator("tr.run-ok")).to_have_count(1, timeout=20_000)  # refreshes by itself
    assert "von Hand" in page.locator("tr.run-ok").inner_text()
    shot(page, "log")
    with bridge.store.read() as session:
        stored = session.scalar(select(Item).where(Item.origin != "client"))
        assert stored is not None and "Färben" in stored.text and "Praxis Dr. Roth" not in stored.text

    page.click("a.to-connection")
    page.wait_for_url("**/admin/connections/*")
    page.click("text=Synctoken resetten")
    page.wait_for_url("**/reset")
    assert "keine E-Mails" in page.content()
    shot(page, "reset_confirm")
    page.click("text=Ja, Synctoken resetten")
    page.wait_for_url("**/log")
    sync_api.expect(page.locator("tr.run-ok")).to_have_count(2, timeout=20_000)
    assert "Synctoken-Reset" in page.locator("tr.run-ok").first.inner_text()

    page.click("a.to-connection")
    page.wait_for_url("**/admin/connections/*")
    page.click("text=Synchronisation deaktivieren")
    sync_api.expect(page.locator(".state")).to_have_text("deaktiviert")
    assert page.is_disabled("text=Jetzt synchronisieren")
    shot(page, "connection_disabled")

    page.click("a >> text=Verbindung trennen")
    page.wait_for_url("**/disconnect")
    page.check("input[name=mirrored][value=remove]")
    shot(page, "disconnect_confirm")
    page.click("form.card button[type=submit]")
    page.wait_for_url("**/admin/calendars/*")
    assert "Noch kein externer Kalender verbunden." in page.content()
    with bridge.store.read() as session:
        assert session.scalar(select(Connection)) is None
        assert session.scalar(select(Item)) is None
    assert problems == [], problems
