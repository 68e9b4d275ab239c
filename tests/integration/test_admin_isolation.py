"""Tenant isolation and roles on /admin. Every route with an id in its path is tried, from the app's
route table, with tenant B's ids while signed in as tenant A's admin: all answer 404, the answer of
an id that does not exist, and B's objects are untouched. A route whose parameter has no test
object fails the test, so a new route cannot skip the check."""

from __future__ import annotations

from bridge.store import tokens, users
from bridge.store.models import Calendar, Connection, ServiceToken, User
from tests.conftest import Bridge
from tests.integration.admin_client import add_connection, csrf_of, fill, post_form, route_table, sign_in

UNSCOPED = {  # routes without an id; each is checked below not to show or touch tenant B
    ("GET", "/"), ("GET", "/login"), ("POST", "/login"), ("POST", "/logout"),
    ("GET", "/calendars"), ("POST", "/calendars"), ("GET", "/users"), ("POST", "/users"),
    ("GET", "/tokens"), ("POST", "/tokens"), ("GET", "/busy"), ("GET", "/oauth/callback"),
    ("GET", "/account"), ("POST", "/account"),
}


def _ids(bridge: Bridge, login: str, slug: str) -> dict[str, int]:
    connection_id = add_connection(bridge, login, slug)
    with bridge.store.read() as session:
        user = users.user_by_login(session, login)
        assert user is not None
        return {"calendar_id": bridge.calendar_id(login, slug), "user_id": user.id, "connection_id": connection_id,
                "token_id": tokens.tokens_of_tenant(session, user.tenant_id)[0].id}


def test_tenant_as_admin_gets_404_for_every_object_of_tenant_b(bridge: Bridge) -> None:
    bridge.add_user("A", "anna", role="admin")
    bridge.add_calendar("anna", "praxis")
    bridge.add_token("A")
    bridge.add_user("B", "bert", role="admin")
    bridge.add_calendar("bert", "salon-geheim")
    bridge.add_token("B")
    theirs = _ids(bridge, "bert", "salon-geheim")
    absent = {name: 999_999 for name in theirs}
    routes = route_table(bridge)
    with_ids = {route for route in routes if "{" in route[1]}
    assert routes - with_ids == UNSCOPED, "a new route without an id needs a check in this module"
    assert with_ids, "no route has an id"

    with sign_in(bridge, "anna") as anna:
        token = csrf_of(anna.get("/calendars"))
        for method, path in sorted(with_ids):
            for ids in (theirs, absent):
                url = fill(path, ids)
                answer = anna.get(url) if method == "GET" else anna.request(method, url, data={"csrf": token})
                assert answer.status_code == 404, (method, url, answer.status_code)
                assert "salon-geheim" not in answer.text and "bert" not in answer.text

        # the routes without an id: listings show only A's objects, forms cannot reach B's
        for page in ("/calendars", "/users", "/tokens", "/busy", "/account"):
            text = anna.get(page).text
            assert "bert" not in text and "salon-geheim" not in text
        answer = anna.get("/busy", params={"calendar": theirs["calendar_id"], "date": "2026-12-07", "time": "10:00"})
        assert answer.status_code == 404 and "salon-geheim" not in answer.text
        answer = anna.get(f"/calendars/{theirs['calendar_id']}/connect", params={"provider": "caldav"})
        assert answer.status_code == 404
        answer = anna.get("/oauth/callback", params={"code": "x", "state": "y"})  # no sealed sign-in: nothing
        assert answer.status_code == 400 and "salon-geheim" not in answer.text
        answer = post_form(anna, "/calendars", "/calendars", {"owner": str(theirs["user_id"]), "slug": "planted",
                                                              "timezone": "Europe/Berlin"})
        assert answer.status_code == 404
        assert post_form(anna, "/tokens", "/tokens", {"name": "mine", "scope": "engine"}).status_code == 201

    with bridge.store.read() as session:  # B's objects are all still there, unchanged
        assert session.get(Calendar, theirs["calendar_id"]) is not None
        assert session.get(User, theirs["user_id"]) is not None
        b_token = session.get(ServiceToken, theirs["token_id"])
        assert b_token is not None and b_token.revoked_at is None
        assert len(tokens.tokens_of_tenant(session, b_token.tenant_id)) == 1
        bert = session.get(User, theirs["user_id"])
        assert bert is not None
        assert [c.slug for c in session.query(Calendar).filter_by(owner_id=bert.id)] == ["salon-geheim"]
        b_connection = session.get(Connection, theirs["connection_id"])
        assert b_connection is not None and b_connection.enabled and b_connection.options == "{}"


def test_a_member_sees_and_reaches_only_their_own_calendars(bridge: Bridge) -> None:
    bridge.add_user("A", "anna", role="admin")
    bridge.add_user("A", "bea")
    bridge.add_user("A", "carl")
    bridge.add_calendar("bea", "bea-termine")
    bridge.add_calendar("carl", "carl-termine")
    mine, colleagues = bridge.calendar_id("bea", "bea-termine"), bridge.calendar_id("carl", "carl-termine")
    with sign_in(bridge, "bea") as bea:
        listing = bea.get("/calendars").text
        assert "bea-termine" in listing and "carl-termine" not in listing
        assert "/admin/users" not in listing  # no links to the admin's pages
        assert 'action="/admin/calendars"' not in listing  # and no form to create calendars
        assert bea.get(f"/calendars/{mine}").status_code == 200
        assert bea.get(f"/calendars/{colleagues}").status_code == 404  # as if absent
        for page in ("/users", "/tokens"):
            assert bea.get(page).status_code == 403
        token = csrf_of(bea.get("/calendars"))
        for url, data in ((f"/calendars/{mine}/delete", {}), ("/calendars", {"owner": "1", "slug": "x"}),
                          ("/tokens", {"name": "x", "scope": "admin"}),
                          ("/users", {"login": "x", "email": "x@example.org", "password": "long enough pw"})):
            assert bea.post(url, data={"csrf": token, **data}).status_code == 403
    with sign_in(bridge, "anna") as anna:  # the admin sees every calendar of the tenant
        listing = anna.get("/calendars").text
        assert "bea-termine" in listing and "carl-termine" in listing
        assert anna.get(f"/calendars/{colleagues}").status_code == 200
