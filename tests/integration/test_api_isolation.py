"""Tenant isolation on every /api/v1 route, enumerated from the app's route table so that a
new route without a case here fails the test."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
from openapi_spec_validator import validate
from starlette.routing import Route

from bridge.store import connections
from bridge.store.models import Calendar
from bridge.web.api import create_api
from bridge.web.api.openapi import document
from tests.conftest import Bridge

T0 = datetime(2026, 12, 7, 9, tzinfo=UTC)
WINDOW = {"start": "2026-12-07T00:00:00Z", "end": "2026-12-14T00:00:00Z"}
PUBLIC = {("GET", "/openapi.json")}  # the API description holds no tenant data


def _routes(bridge: Bridge) -> set[tuple[str, str]]:
    app = create_api(bridge.settings, bridge.store)
    return {(method, route.path) for route in app.routes if isinstance(route, Route)
            for method in (route.methods or ()) if method != "HEAD"}


def test_a_token_of_tenant_a_gets_404_for_every_object_of_tenant_b(bridge: Bridge) -> None:
    bridge.add_user("A", "anna", role="admin")
    bridge.add_calendar("anna", "cal")
    bridge.add_user("B", "bert", role="admin")
    bridge.add_calendar("bert", "cal")
    theirs = bridge.calendar_id("bert", "cal")
    with bridge.api(bridge.add_token("B", scope="admin")) as b:
        booking = b.post("/bookings", headers={"Idempotency-Key": "b1"}, json={
            "calendar": theirs, "start": "2026-12-07T09:00:00Z", "end": "2026-12-07T10:00:00Z",
            "customer": {"name": "Kunde B", "email": "kunde@example.com"}}).json()["id"]
    with bridge.store.write() as session:
        calendar = session.get(Calendar, theirs)
        assert calendar is not None
        connection = connections.create_connection(session, calendar, "caldav").id

    cases: dict[tuple[str, str], Callable[[httpx.Client], httpx.Response]] = {
        ("POST", "/freebusy"): lambda a: a.post("/freebusy", json={"calendars": [theirs], **WINDOW}),
        ("POST", "/free-slots"): lambda a: a.post("/free-slots", json={
            "calendars": [theirs], "windows": [WINDOW], "duration": "PT30M"}),
        ("POST", "/bookings"): lambda a: a.post("/bookings", headers={"Idempotency-Key": "a1"}, json={
            "calendar": theirs, "start": "2026-12-08T09:00:00Z", "end": "2026-12-08T10:00:00Z",
            "customer": {"name": "Kunde A", "email": "kunde@example.com"}}),
        ("GET", "/bookings/{booking_id}"): lambda a: a.get(f"/bookings/{booking}"),
        ("PATCH", "/bookings/{booking_id}"): lambda a: a.patch(f"/bookings/{booking}", json={
            "start": (T0 + timedelta(days=1)).isoformat(), "end": (T0 + timedelta(days=1, hours=1)).isoformat()}),
        ("DELETE", "/bookings/{booking_id}"): lambda a: a.delete(f"/bookings/{booking}"),
        ("GET", "/calendars/{calendar_id:int}"): lambda a: a.get(f"/calendars/{theirs}"),
        ("PATCH", "/calendars/{calendar_id:int}"): lambda a: a.patch(f"/calendars/{theirs}",
                                                                    json={"bcc_provider": True}),
        ("DELETE", "/calendars/{calendar_id:int}"): lambda a: a.delete(f"/calendars/{theirs}"),
        ("POST", "/calendars"): lambda a: a.post("/calendars", json={"owner": "bert", "slug": "new"}),
        ("GET", "/users/{login}"): lambda a: a.get("/users/bert"),
        ("DELETE", "/users/{login}"): lambda a: a.delete("/users/bert"),
        ("POST", "/connections"): lambda a: a.post("/connections", json={  # 404 before any request goes out
            "calendar": theirs, "provider": "caldav", "url": "http://127.0.0.1:9/"}),
        ("GET", "/connections/{connection_id:int}"): lambda a: a.get(f"/connections/{connection}"),
        ("PATCH", "/connections/{connection_id:int}"): lambda a: a.patch(f"/connections/{connection}",
                                                                        json={"enabled": False}),
        ("DELETE", "/connections/{connection_id:int}"): lambda a: a.delete(f"/connections/{connection}"),
        ("POST", "/connections/{connection_id:int}/sync"): lambda a: a.post(f"/connections/{connection}/sync"),
        ("GET", "/connections/{connection_id:int}/runs"): lambda a: a.get(f"/connections/{connection}/runs"),
    }
    listings: dict[tuple[str, str], Callable[[httpx.Client], httpx.Response]] = {
        ("GET", "/calendars"): lambda a: a.get("/calendars"),
        ("GET", "/users"): lambda a: a.get("/users"),
        ("POST", "/users"): lambda a: a.post("/users", json={"login": "bert", "email": "x@example.org",
                                                             "password": "long enough pw"}),
        ("GET", "/connections"): lambda a: a.get("/connections"),
        ("GET", "/changes"): lambda a: a.get("/changes"),
    }
    assert set(cases) | set(listings) | PUBLIC == _routes(bridge)

    with bridge.api(bridge.add_token("A", scope="admin")) as a:
        for (method, path), call in cases.items():
            answer = call(a)
            assert answer.status_code == 404, f"{method} {path} answered {answer.status_code} across tenants"
            assert answer.headers["content-type"] == "application/problem+json"
        assert [c["owner"] for c in listings["GET", "/calendars"](a).json()["calendars"]] == ["anna"]
        assert [u["login"] for u in listings["GET", "/users"](a).json()["users"]] == ["anna"]
        assert listings["GET", "/connections"](a).json()["connections"] == []
        assert listings["GET", "/changes"](a).json()["changes"] == []
        # Logins are CalDAV paths, unique across the installation: taken, but nothing of B is shown.
        taken = listings["POST", "/users"](a)
        assert taken.status_code == 409 and "x@example.org" not in taken.text
    with bridge.api(bridge.add_token("B")) as b:
        still = b.get(f"/bookings/{booking}").json()
        assert still["status"] == "confirmed" and still["start"] == "2026-12-07T09:00:00Z"
        assert b.get(f"/calendars/{theirs}").status_code == 200
        assert b.get(f"/connections/{connection}").json()["enabled"]
        assert len(b.get("/changes").json()["changes"]) == 1


def test_the_openapi_document_is_valid_and_describes_exactly_the_routes(bridge: Bridge) -> None:
    served = httpx.get(bridge.url + "/api/v1/openapi.json").json()
    assert served == document()
    validate(served)
    described = {(method.upper(), path) for path, item in served["paths"].items()
                 for method in item if method in ("get", "post", "patch", "put", "delete")}
    routed = {(method, path.replace(":int", "")) for method, path in _routes(bridge) - PUBLIC}
    assert described == routed
