"""Signing in to /admin: cookie flags, sign-out, the login form's CSRF token, and the throttle on
failed logins (per login and per client address, without telling whether the login exists)."""

from __future__ import annotations

from http.cookies import SimpleCookie

import httpx

from bridge.settings import replace
from bridge.store import admin_sessions, users
from tests.conftest import Bridge, serve
from tests.integration.admin_client import browser, csrf_of, post_form, sign_in, try_sign_in


def _set_cookie(answer: httpx.Response, name: str) -> str:
    headers = [value for value in answer.headers.get_list("set-cookie") if value.startswith(name + "=")]
    assert len(headers) == 1, answer.headers
    return headers[0]


def test_sign_in_sets_a_session_cookie_the_page_script_cannot_read(bridge: Bridge) -> None:
    bridge.add_user("A", "anna", role="admin")
    with browser(bridge) as client:
        answer = try_sign_in(client, "anna")
        assert answer.status_code == 303
        cookie = _set_cookie(answer, "calbridge_admin")
        flags = {part.strip().lower() for part in cookie.split(";")}
        assert {"httponly", "samesite=lax", "path=/admin"} <= flags
        assert "secure" not in flags  # plain http on loopback: a Secure cookie would never come back
        page = client.get("/calendars")
        assert page.status_code == 200
        assert "anna" in page.text


def test_the_session_cookie_is_secure_when_the_public_url_is_https(bridge: Bridge) -> None:
    bridge.add_user("A", "anna", role="admin")
    with serve(bridge.store, replace(bridge.settings, base_url="https://calendar.example.org")) as url, \
            httpx.Client(base_url=url + "/admin", timeout=30) as client:
        form = client.get("/login")
        assert "secure" in _set_cookie(form, "calbridge_login").lower()
        # httpx will not send a Secure cookie over http, so post the double-submit token by hand
        token = SimpleCookie(_set_cookie(form, "calbridge_login"))["calbridge_login"].value
        client.cookies.set("calbridge_login", token, path="/admin/login")
        answer = client.post("/login", data={"csrf": token, "login": "anna", "password": "correct horse battery"})
        assert answer.status_code == 303
        assert "secure" in {part.strip().lower() for part in _set_cookie(answer, "calbridge_admin").split(";")}


def test_pages_send_a_browser_without_a_session_to_the_login(bridge: Bridge) -> None:
    with browser(bridge) as client:
        for page in ("/", "/calendars", "/users", "/tokens"):
            answer = client.get(page)
            assert answer.status_code == 303
            assert answer.headers["location"] == "/admin/login"


def test_sign_out_ends_the_session_on_the_server(bridge: Bridge) -> None:
    bridge.add_user("A", "anna", role="admin")
    with sign_in(bridge, "anna") as client:
        cookie = client.cookies["calbridge_admin"]
        answer = post_form(client, "/calendars", "/logout")
        assert answer.status_code == 303
        assert answer.headers["location"] == "/admin/login"
    with browser(bridge) as stolen:  # the old cookie, replayed, signs no one in
        stolen.cookies.set("calbridge_admin", cookie, path="/admin")
        assert stolen.get("/calendars").status_code == 303


def test_a_wrong_password_and_an_unknown_login_get_the_same_answer(bridge: Bridge) -> None:
    bridge.add_user("A", "anna", role="admin")
    with browser(bridge) as client:
        wrong = try_sign_in(client, "anna", "wrong password")
        unknown = try_sign_in(client, "nobody", "wrong password")
    assert wrong.status_code == unknown.status_code == 401
    assert "Benutzername oder Passwort ist falsch." in wrong.text
    assert wrong.text.replace("anna", "X") == unknown.text.replace("nobody", "X").replace(
        csrf_of(unknown), csrf_of(wrong))
    assert "calbridge_admin" not in str(wrong.headers)


def test_the_booking_engine_service_user_cannot_sign_in(bridge: Bridge) -> None:
    bridge.add_user("A", "engine", role="service")
    with browser(bridge) as client:
        assert try_sign_in(client, "engine").status_code == 401


def test_a_login_post_without_the_forms_token_is_refused(bridge: Bridge) -> None:
    bridge.add_user("A", "anna", role="admin")
    with browser(bridge) as client:
        client.get("/login")
        for token in ("", "forged-token"):
            answer = client.post("/login", data={"csrf": token, "login": "anna", "password": "correct horse battery"})
            assert answer.status_code == 403
            assert "calbridge_admin" not in str(answer.headers)
    with browser(bridge) as other:  # a token from the form without its cookie (another site's post)
        token = csrf_of(other.get("/login"))
    with httpx.Client(base_url=bridge.url + "/admin", timeout=30) as attacker:
        answer = attacker.post("/login", data={"csrf": token, "login": "anna", "password": "correct horse battery"})
        assert answer.status_code == 403


def test_five_failures_for_one_login_block_it_for_a_quarter_of_an_hour(bridge: Bridge) -> None:
    bridge.add_user("A", "anna", role="admin")
    with browser(bridge) as client:
        for _ in range(admin_sessions.MAX_FAILURES):
            assert try_sign_in(client, "anna", "guess guess").status_code == 401
        blocked = try_sign_in(client, "anna")  # even the right password, until the window has passed
        assert blocked.status_code == 429
        assert 14 * 60 < int(blocked.headers["retry-after"]) <= 15 * 60
        assert "Zu viele fehlgeschlagene Anmeldungen" in blocked.text
        assert "calbridge_admin" not in str(blocked.headers)
        # an unknown login is throttled the same way, so the throttle does not tell logins apart
        for _ in range(admin_sessions.MAX_FAILURES):
            try_sign_in(client, "nobody", "guess guess")
        assert try_sign_in(client, "nobody", "guess guess").status_code == 429


def test_failures_from_one_address_across_logins_block_that_address(bridge: Bridge) -> None:
    bridge.add_user("A", "anna", role="admin")
    with browser(bridge) as client:
        for number in range(admin_sessions.MAX_FAILURES):
            assert try_sign_in(client, f"guess{number}", "guess guess").status_code == 401
        answer = try_sign_in(client, "anna")
        assert answer.status_code == 429
        assert int(answer.headers["retry-after"]) > 0


def test_a_successful_sign_in_forgets_the_logins_earlier_failures(bridge: Bridge) -> None:
    bridge.add_user("A", "anna", role="admin")
    with browser(bridge) as client:
        for _ in range(2):
            try_sign_in(client, "anna", "typo typo")
        assert try_sign_in(client, "anna").status_code == 303


def test_pages_speak_the_users_language(bridge: Bridge) -> None:
    bridge.add_user("A", "anna", role="admin")
    with bridge.store.write() as session:
        user = users.user_by_login(session, "anna")
        assert user is not None
        user.language = "en"
    with browser(bridge, language="en") as client:
        assert "Sign in" in client.get("/login").text  # before sign-in: the browser's language
    with browser(bridge, language="de") as client:
        assert "Anmelden" in client.get("/login").text
    with sign_in(bridge, "anna") as client:
        page = client.get("/calendars")
        assert 'lang="en"' in page.text
        assert "Create a calendar" in page.text
