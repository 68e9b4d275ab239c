"""Every form of /admin, enumerated from the route table: a POST without the session's CSRF token,
or with a wrong one, is refused with 403 and changes nothing."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from bridge.store import tokens, users
from bridge.store.models import Calendar, Connection, ServiceToken, SyncRun, User
from tests.conftest import Bridge
from tests.integration.admin_client import add_connection, csrf_of, fill, route_table, sign_in

LOGIN_FORM = ("POST", "/login")  # before any session: its double-submit token is tested in test_admin_login
FORMS = {  # what each form would do with a valid token
    ("POST", "/logout"): {},
    ("POST", "/calendars"): {"owner": "{user_id}", "slug": "forged", "timezone": "Europe/Berlin"},
    ("POST", "/calendars/{calendar_id:int}/delete"): {},
    ("POST", "/users"): {"login": "mallory", "email": "m@example.org", "password": "long enough pw",
                         "role": "admin", "language": "de"},
    ("POST", "/users/{user_id:int}/delete"): {},
    ("POST", "/users/{user_id:int}"): {"email": "m@example.org", "role": "admin", "language": "en",
                                       "password": "taken over now"},
    ("POST", "/account"): {"email": "m@example.org", "language": "en", "current": "correct horse battery",
                           "password": "taken over now"},
    ("POST", "/tokens"): {"name": "forged", "scope": "admin"},
    ("POST", "/tokens/{token_id:int}/revoke"): {},
    ("POST", "/calendars/{calendar_id:int}/connect"): {"provider": "caldav", "url": "https://dav.example/",
                                                       "username": "u", "password": "p"},
    ("POST", "/calendars/{calendar_id:int}/sign-in"): {"provider": "google"},
    ("POST", "/calendars/{calendar_id:int}/connect/finish"): {"pending": "x", "remote": "y"},
    ("POST", "/connections/{connection_id:int}/options"): {"anonymize_location": "1", "direction": "inbound"},
    ("POST", "/connections/{connection_id:int}/sync"): {},
    ("POST", "/connections/{connection_id:int}/reset"): {},
    ("POST", "/connections/{connection_id:int}/enabled"): {"enabled": "0"},
    ("POST", "/connections/{connection_id:int}/disconnect"): {"mirrored": "remove"},
}


def _state(bridge: Bridge) -> tuple[Any, ...]:
    with bridge.store.read() as session:
        return (session.scalar(select(func.count()).select_from(Calendar)) or 0,
                [(c.enabled, c.direction, c.options) for c in session.scalars(select(Connection))],
                session.scalar(select(func.count()).select_from(SyncRun)) or 0,
                [(u.email, u.role, u.language, u.password_hash) for u in session.scalars(select(User))],
                session.scalar(select(func.count()).select_from(ServiceToken)) or 0,
                session.scalar(select(func.count()).select_from(ServiceToken)
                               .where(ServiceToken.revoked_at.is_not(None))) or 0)


def test_a_form_without_a_valid_csrf_token_is_refused_and_changes_nothing(bridge: Bridge) -> None:
    bridge.add_user("A", "anna", role="admin")
    bridge.add_user("A", "bea")
    bridge.add_calendar("bea", "praxis")
    bridge.add_token("A")
    with bridge.store.read() as session:
        bea = users.user_by_login(session, "bea")
        assert bea is not None
        ids = {"calendar_id": bridge.calendar_id("bea", "praxis"), "user_id": bea.id,
               "token_id": tokens.tokens_of_tenant(session, bea.tenant_id)[0].id}
    ids["connection_id"] = add_connection(bridge, "bea", "praxis")
    posts = {route for route in route_table(bridge) if route[0] == "POST"}
    assert posts == set(FORMS) | {LOGIN_FORM}, "a new form needs a case here"
    before = _state(bridge)
    with sign_in(bridge, "anna") as client:
        for (_, path), form in FORMS.items():
            data = {key: value.format(**ids) for key, value in form.items()}
            for token in (None, "", "not-the-token"):
                sent = data if token is None else {**data, "csrf": token}
                answer = client.post(fill(path, ids), data=sent)
                assert answer.status_code == 403, (path, token, answer.status_code)
                assert "text/html" in answer.headers["content-type"]
        assert _state(bridge) == before
        assert client.get("/calendars").status_code == 200  # the forged logout did not end the session


def test_a_token_of_another_session_is_refused(bridge: Bridge) -> None:
    bridge.add_user("A", "anna", role="admin")
    bridge.add_user("A", "bea", role="admin")
    with sign_in(bridge, "bea") as bea:
        theirs = csrf_of(bea.get("/calendars"))
    with sign_in(bridge, "anna") as anna:
        answer = anna.post("/tokens", data={"csrf": theirs, "name": "forged", "scope": "admin"})
        assert answer.status_code == 403
    assert _state(bridge)[4] == 0
