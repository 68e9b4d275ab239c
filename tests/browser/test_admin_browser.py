"""/admin in a real browser: Debian's Chromium driven by Playwright signs in, creates a calendar,
copies its CalDAV address with the copy button, issues a service token, revokes it (after a
confirmation) and signs out; the pages load their stylesheet and script under the Content Security
Policy without a single violation."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.conftest import PASSWORD, Bridge

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")

def test_an_admin_signs_in_creates_a_calendar_copies_its_address_and_issues_a_token(
        bridge: Bridge, page: sync_api.Page, shot: Callable[[sync_api.Page, str], None]) -> None:
    bridge.add_user("Praxis Sonnenschein", "anna", role="admin")
    bridge.add_user("Praxis Sonnenschein", "bea")
    bridge.add_calendar("anna", "praxis")
    problems: list[str] = []  # CSP violations and script errors (a failed sign-in's 401 is expected)
    page.on("console", lambda message: problems.append(message.text)
            if message.type == "error" and not message.text.startswith("Failed to load resource") else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    assets: dict[str, int] = {}
    page.on("response", lambda answer: assets.update({answer.url: answer.status}) if "/static/" in answer.url
            else None)

    page.goto(f"{bridge.url}/admin/")
    assert page.url.endswith("/admin/login")
    assert page.locator("h1").inner_text() == "Anmelden"
    shot(page, "login")
    page.fill("input[name=login]", "anna")
    page.fill("input[name=password]", "wrong password")
    page.click("button[type=submit]")
    assert "Benutzername oder Passwort ist falsch." in page.locator(".error").inner_text()
    page.fill("input[name=password]", PASSWORD)
    page.click("form.card button[type=submit]")
    page.wait_for_url("**/admin/calendars")
    # the stylesheet was loaded (CSP allows 'self'): the header is laid out as a white bar
    assert page.evaluate("getComputedStyle(document.querySelector('header')).display") == "flex"
    shot(page, "calendars")

    page.select_option("select[name=owner]", label="bea")
    page.fill("input[name=slug]", "behandlung")
    page.fill("input[name=name]", "Behandlungsraum 1")
    page.click("form.card button[type=submit]")
    page.wait_for_url("**/admin/calendars/*")
    assert page.locator("h1").inner_text() == "Behandlungsraum 1"
    url = f"{bridge.settings.public_base_url}/dav/bea/behandlung/"
    assert page.input_value("#caldav-url") == url
    page.click("button.copy")
    sync_api.expect(page.locator("button.copy")).to_have_text("Kopiert")  # after the clipboard's promise
    assert page.evaluate("navigator.clipboard.readText()") == url
    shot(page, "calendar")

    page.click("header nav >> text=Benutzer")
    page.wait_for_url("**/admin/users")
    assert "bea@example.org" in page.content()
    shot(page, "users")

    page.click("header nav >> text=Dienst-Tokens")
    page.wait_for_url("**/admin/tokens")
    page.fill("input[name=name]", "Buchungssoftware")
    page.click("form.card button[type=submit]")
    secret = page.input_value("#new-token")
    assert secret.startswith("cbt_")
    shot(page, "token_created")
    page.goto(f"{bridge.url}/admin/tokens")
    assert secret not in page.content()
    assert "Buchungssoftware" in page.content()
    page.once("dialog", lambda dialog: dialog.dismiss())  # revoking asks first; "cancel" keeps the token
    page.click("text=Widerrufen")
    assert page.locator("td >> text=aktiv").count() == 1
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("text=Widerrufen")
    page.wait_for_selector("td >> text=widerrufen")
    shot(page, "token_revoked")

    page.click("header form.logout button")
    page.wait_for_url("**/admin/login")
    page.goto(f"{bridge.url}/admin/calendars")
    assert page.url.endswith("/admin/login")
    assert problems == [], problems  # no CSP violation, no script error on any page
    assert sorted(name.rsplit("/", 1)[1] for name in assets) == ["admin.css", "admin.js", "favicon.svg"]
    assert set(assets.values()) <= {200, 304}, assets
