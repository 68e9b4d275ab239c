"""Changing users on /admin: an admin changes a colleague's address, role, language and password (the old
password then signs in nowhere, and the colleague's sessions end), cannot take their own admin role away, and
cannot edit the booking engine's service user; every user changes their own language, address and password on
their account page, where a new password needs the current one."""

from __future__ import annotations

import httpx

from bridge.store import users
from tests.conftest import PASSWORD, Bridge
from tests.integration.admin_client import post_form, sign_in, try_sign_in


def _id(bridge: Bridge, login: str) -> int:
    with bridge.store.read() as session:
        user = users.user_by_login(session, login)
        assert user is not None
        return user.id


def test_an_admin_changes_a_colleague_and_the_old_password_stops_working(bridge: Bridge) -> None:
    bridge.add_user("A", "anna", role="admin")
    bridge.add_user("A", "bea")
    bridge.add_calendar("bea", "praxis")
    bea_id = _id(bridge, "bea")
    new_password = "Herbst-2026-neu"
    with sign_in(bridge, "bea") as bea, sign_in(bridge, "anna") as anna:
        assert bea.get("/calendars").status_code == 200
        address_only = post_form(anna, f"/users/{bea_id}", f"/users/{bea_id}",
                                 {"email": "bea@example.net", "role": "member", "language": "de"})
        assert address_only.status_code == 303
        assert bea.get("/calendars").status_code == 200  # a new address alone signs no one out
        short = post_form(anna, f"/users/{bea_id}", f"/users/{bea_id}",
                          {"email": "bea@example.net", "role": "member", "language": "de", "password": "kurz"})
        assert short.status_code == 400 and "mindestens 8 Zeichen" in short.text
        form = anna.get(f"/users/{bea_id}")
        assert form.status_code == 200 and PASSWORD not in form.text
        saved = post_form(anna, f"/users/{bea_id}", f"/users/{bea_id}", {
            "email": "bea@praxis.example", "role": "admin", "language": "en", "password": new_password})
        assert saved.status_code == 303
        assert bea.get("/calendars").status_code == 303  # her session ended with the old password
        assert "bea@praxis.example" in anna.get("/users").text
    with httpx.Client(base_url=bridge.url + "/admin") as client:
        assert try_sign_in(client, "bea", PASSWORD).status_code == 401
    with sign_in(bridge, "bea", new_password) as bea:
        page = bea.get("/users")  # now an admin, in English
        assert page.status_code == 200 and "Users" in page.text
    with bridge.client("bea", new_password) as dav, bridge.client("bea") as old:  # CalDAV follows at once
        assert dav.request("PROPFIND", "/dav/bea/praxis/", headers={"Depth": "0"}).status_code == 207
        assert old.request("PROPFIND", "/dav/bea/praxis/", headers={"Depth": "0"}).status_code == 401


def test_an_admin_cannot_demote_themselves_nor_edit_a_service_user(bridge: Bridge) -> None:
    bridge.add_user("A", "anna", role="admin")
    bridge.add_user("A", "engine", role="service")
    anna_id, engine_id = _id(bridge, "anna"), _id(bridge, "engine")
    with sign_in(bridge, "anna") as anna:
        refused = post_form(anna, f"/users/{anna_id}", f"/users/{anna_id}",
                            {"email": "anna@example.org", "role": "member", "language": "de"})
        assert refused.status_code == 400 and "Administratorrolle nicht selbst entziehen" in refused.text
        own = post_form(anna, f"/users/{anna_id}", f"/users/{anna_id}", {
            "email": "anna@example.org", "role": "admin", "language": "de", "password": "without the current one"})
        assert own.status_code == 400 and "unter „Mein Konto“" in own.text
        assert f'href="/admin/users/{anna_id}"' not in anna.get("/users").text  # her own row leads to her account
        assert anna.get(f"/users/{engine_id}").status_code == 404
        assert anna.get("/users").status_code == 200  # still an admin
    with bridge.store.read() as session:
        anna = users.user_by_login(session, "anna")
        assert anna is not None and anna.role == "admin"


def test_a_member_changes_their_own_language_and_password(bridge: Bridge) -> None:
    bridge.add_user("A", "bea")
    new_password = "Winter-2026-neu"
    with sign_in(bridge, "bea") as bea, sign_in(bridge, "bea") as other_browser:
        page = bea.get("/account")
        assert page.status_code == 200 and "Mein Konto" in page.text
        wrong = post_form(bea, "/account", "/account", {"email": "bea@example.org", "language": "de",
                                                        "current": "nicht-richtig", "password": new_password})
        assert wrong.status_code == 400 and "Das bisherige Passwort ist falsch." in wrong.text
        saved = post_form(bea, "/account", "/account", {"email": "bea@example.org", "language": "en",
                                                        "current": PASSWORD, "password": new_password})
        assert saved.status_code == 303
        assert "My account" in bea.get("/account").text and "Saved." in bea.get("/account?saved=1").text
        assert other_browser.get("/account").status_code == 303  # the other sign-in ended; this one goes on
        assert bea.get("/users").status_code == 403  # a member still
    with httpx.Client(base_url=bridge.url + "/admin") as client:
        assert try_sign_in(client, "bea", new_password).status_code == 303
