"""The pages of /admin as a user meets them: security headers on every answer, calendars with their
CalDAV address and subscribe instructions, users (a password is never shown back), and service
tokens (shown once, working at once on /api/v1, dead once revoked)."""

from __future__ import annotations

import re

import httpx

from bridge.store import users
from tests.conftest import Bridge
from tests.integration.admin_client import (
    add_connection,
    browser,
    csrf_of,
    fill,
    post_form,
    route_table,
    sign_in,
    try_sign_in,
)


def _assert_secure_headers(answer: httpx.Response) -> None:
    policy = answer.headers.get("content-security-policy", "")
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy, answer.url
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert answer.headers.get("x-content-type-options") == "nosniff"
    assert answer.headers.get("x-frame-options") == "DENY"
    assert answer.headers.get("referrer-policy") == "same-origin"


def test_every_answer_of_admin_carries_the_security_headers(bridge: Bridge) -> None:
    bridge.add_user("A", "anna", role="admin")
    bridge.add_calendar("anna", "praxis")
    ids = {"calendar_id": bridge.calendar_id("anna", "praxis"), "user_id": 1, "token_id": 1,
           "connection_id": add_connection(bridge, "anna", "praxis")}
    pages = sorted(path for method, path in route_table(bridge) if method == "GET")
    with browser(bridge) as anonymous:  # the login page, redirects and errors before sign-in
        for path in ["/login", *pages, "/no-such-page"]:
            _assert_secure_headers(anonymous.get(fill(path, ids)))
        _assert_secure_headers(anonymous.post("/calendars"))
    with sign_in(bridge, "anna") as anna:
        for path in [*pages, "/static/admin.css", "/static/admin.js", "/no-such-page", "/calendars/999999"]:
            answer = anna.get(fill(path, ids))
            _assert_secure_headers(answer)
            assert "remote-secret-pw" not in answer.text  # a connection's password is never shown back
            if "/static/" not in path:
                assert answer.headers["cache-control"] == "no-store"
        assert anna.delete("/calendars").status_code == 405
        _assert_secure_headers(anna.delete("/calendars"))


def test_an_admin_creates_a_calendar_and_finds_its_caldav_address_and_instructions(bridge: Bridge) -> None:
    bridge.add_user("A", "anna", role="admin")
    bridge.add_user("A", "bea")
    with bridge.store.read() as session:
        bea = users.user_by_login(session, "bea")
        assert bea is not None
    with sign_in(bridge, "anna") as anna:
        created = post_form(anna, "/calendars", "/calendars", {
            "owner": str(bea.id), "slug": "behandlung", "name": "Behandlungsraum 1", "timezone": "Europe/Vienna"})
        assert created.status_code == 303
        detail = anna.get(bridge.url + created.headers["location"])
        assert detail.status_code == 200
        url = f"{bridge.settings.public_base_url}/dav/bea/behandlung/"
        assert f'value="{url}"' in detail.text and 'class="copy"' in detail.text
        for client in ("Apple Kalender (macOS)", "Apple Kalender (iPhone, iPad)", "Thunderbird", "DAVx⁵"):
            assert client in detail.text
        assert "Behandlungsraum 1" in anna.get("/calendars").text
    # the calendar exists for CalDAV clients at that address
    with bridge.client("bea") as bea_dav:
        answer = bea_dav.request("PROPFIND", "/dav/bea/behandlung/", headers={"Depth": "0"})
        assert answer.status_code == 207
    with sign_in(bridge, "anna") as anna:
        calendar_id = bridge.calendar_id("bea", "behandlung")
        assert post_form(anna, "/calendars", f"/calendars/{calendar_id}/delete").status_code == 303
        assert anna.get(f"/calendars/{calendar_id}").status_code == 404
        assert "behandlung" not in anna.get("/calendars").text


def test_a_calendar_form_with_a_mistake_says_what_is_wrong(bridge: Bridge) -> None:
    bridge.add_user("A", "anna", role="admin")
    bridge.add_calendar("anna", "praxis")
    with sign_in(bridge, "anna") as anna:
        with bridge.store.read() as session:
            anna_id = users.user_by_login(session, "anna").id  # type: ignore[union-attr]
        for data, message in (({"slug": "praxis"}, "schon einen Kalender mit diesem Kurznamen"),
                              ({"slug": "a/b"}, "Der Kurzname hat 1 bis 128 Zeichen"),
                              ({"slug": "neu", "timezone": "Mars/Olympus"}, "eine Zeitzone wie Europe/Berlin")):
            answer = post_form(anna, "/calendars", "/calendars", {"owner": str(anna_id), **data})
            assert answer.status_code == 400
            assert message in answer.text


def test_an_admin_creates_and_removes_users_and_a_password_is_never_shown_back(bridge: Bridge) -> None:
    bridge.add_user("A", "anna", role="admin")
    password = "Sommer-2026-geheim"
    with sign_in(bridge, "anna") as anna:
        wrong = post_form(anna, "/users", "/users", {"login": "bea", "email": "not-an-address", "password": password,
                                                     "role": "member", "language": "en"})
        assert wrong.status_code == 400
        assert "Bitte geben Sie eine gültige E-Mail-Adresse an." in wrong.text
        assert 'value="bea"' in wrong.text  # the rest of the form is kept ...
        assert password not in wrong.text  # ... but not the password
        short = post_form(anna, "/users", "/users", {"login": "bea", "email": "bea@example.org", "password": "kurz",
                                                     "role": "member", "language": "en"})
        assert short.status_code == 400 and "mindestens 8 Zeichen" in short.text
        made = post_form(anna, "/users", "/users", {"login": "bea", "email": "bea@example.org", "password": password,
                                                    "role": "member", "language": "en"})
        assert made.status_code == 303
        again = post_form(anna, "/users", "/users", {"login": "bea", "email": "bea@example.org", "password": password,
                                                     "role": "member", "language": "en"})
        assert again.status_code == 400 and "Diesen Benutzernamen gibt es schon." in again.text
        listing = anna.get("/users").text
        assert "bea@example.org" in listing and password not in listing
    with sign_in(bridge, "bea", password) as bea, sign_in(bridge, "anna") as anna:
        assert "Calendars" in bea.get("/calendars").text  # the new user signs in, in her language
        with bridge.store.read() as session:
            bea_id = users.user_by_login(session, "bea").id  # type: ignore[union-attr]
            anna_id = users.user_by_login(session, "anna").id  # type: ignore[union-attr]
        assert post_form(anna, "/users", f"/users/{anna_id}/delete").status_code == 400  # not oneself
        assert post_form(anna, "/users", f"/users/{bea_id}/delete").status_code == 303
        assert "bea@example.org" not in anna.get("/users").text
        assert bea.get("/calendars").status_code == 303  # her open session ended with her
    with browser(bridge) as client:
        assert try_sign_in(client, "bea", password).status_code == 401


def test_a_service_token_is_shown_once_works_at_once_and_dies_when_revoked(bridge: Bridge) -> None:
    bridge.add_user("A", "anna", role="admin")
    bridge.add_calendar("anna", "praxis")
    with sign_in(bridge, "anna") as anna:
        unnamed = post_form(anna, "/tokens", "/tokens", {"name": "  ", "scope": "engine"})
        assert unnamed.status_code == 400 and "Die Bezeichnung hat 1 bis 120 Zeichen." in unnamed.text
        created = post_form(anna, "/tokens", "/tokens", {"name": "Buchungssoftware", "scope": "engine"})
        assert created.status_code == 201
        assert created.headers["cache-control"] == "no-store"
        found = re.search(r'id="new-token" class="copy-source" value="(cbt_[^"]+)"', created.text)
        assert found is not None
        secret = found.group(1)
        with bridge.api(secret) as api:
            assert api.get("/calendars").status_code == 200
        for page in ("/tokens", "/calendars", "/users"):  # never again
            assert secret not in anna.get(page).text
        listing = anna.get("/tokens").text
        assert "Buchungssoftware" in listing
        token_id = re.search(r'action="/admin/tokens/(\d+)/revoke"', listing)
        assert token_id is not None
        revoked = anna.post(f"/tokens/{token_id.group(1)}/revoke", data={"csrf": csrf_of(anna.get("/tokens"))})
        assert revoked.status_code == 303
        assert "widerrufen" in anna.get("/tokens").text
        with bridge.api(secret) as api:
            assert api.get("/calendars").status_code == 401
