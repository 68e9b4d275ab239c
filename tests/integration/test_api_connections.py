"""/api/v1/connections end to end against a second Radicale: add (the account tested first; plain-word
problems and nothing stored), sync, the sync log, options, 409 while a run holds the lease, disconnect;
every route tenant-scoped, and every answer checked against openapi.json."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from starlette.routing import Route

from bridge.store.models import Connection, Item, SyncRun
from bridge.sync import scheduler
from bridge.web.api import create_api
from tests.api_schema import check
from tests.conftest import Bridge
from tests.servers import RADICALE_PASSWORD, RADICALE_USER, DavServer, radicale_server

EVENT = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//p//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\n"
         "DTSTAMP:20261124T080000Z\r\nDTSTART:{start:%Y%m%dT%H%M%SZ}\r\nDTEND:{end:%Y%m%dT%H%M%SZ}\r\n"
         "SUMMARY:{summary}\r\n{extra}END:VEVENT\r\nEND:VCALENDAR\r\n")
ONE = "/connections/{connection_id}"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DavServer]:
    with radicale_server(tmp_path_factory.mktemp("radicale")) as running:
        yield running


@pytest.fixture
def salon(bridge: Bridge) -> Bridge:
    bridge.add_user("Salon", "nora")
    bridge.add_calendar("nora", "cal")
    return bridge


@pytest.fixture
def admin(salon: Bridge) -> Iterator[httpx.Client]:
    with salon.api(salon.add_token("Salon", scope="admin")) as client:
        yield client


def put(server: DavServer, calendar: str, name: str, summary: str, extra: str = "", days: int = 3) -> None:
    start = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0) + timedelta(days=days)
    body = EVENT.format(uid=name, start=start, end=start + timedelta(hours=1), summary=summary, extra=extra)
    with server.client() as http:
        assert http.put(calendar + name + ".ics", content=body).status_code in (201, 204)


def add(client: httpx.Client, bridge: Bridge, server: DavServer, remote: str | None, owner: str = "nora",
        **extra: Any) -> httpx.Response:
    body: dict[str, Any] = {"calendar": bridge.calendar_id(owner, "cal"), "provider": "caldav", "url": server.url,
                            "username": RADICALE_USER, "password": RADICALE_PASSWORD, **extra}
    if remote is not None:
        body["remote_calendar"] = remote
    return client.post("/connections", json=body)


def count(bridge: Bridge, model: type[Any]) -> int:
    with bridge.store.read() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def item_texts(bridge: Bridge) -> list[tuple[str, str]]:
    with bridge.store.read() as session:
        return [(item.origin, item.text) for item in session.scalars(select(Item))]


def problem(answer: httpx.Response, status: int, kind: str) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = answer.json()
    assert body["type"].endswith("/" + kind) and body["detail"]
    return body


def test_a_connection_from_add_to_disconnect(salon: Bridge, admin: httpx.Client, server: DavServer) -> None:
    remote = server.new_calendar()
    put(server, remote, "a", "Färben", "LOCATION:Praxis Dr. Roth\r\n")
    put(server, remote, "b", "Geheim", "CLASS:PRIVATE\r\n", days=4)

    added = add(admin, salon, server, remote, options={"anonymize_location": True})
    check(added, "/connections", "post")
    assert added.status_code == 201, added.text
    connection = added.json()
    one = f"/connections/{connection['id']}"
    assert added.headers["location"] == "/api/v1" + one
    assert connection["remote_calendar"] == remote and connection["direction"] == "both"
    assert connection["has_credentials"] and connection["options"]["anonymize_location"]
    assert connection["last_run"] is None and not connection["syncing"]
    assert RADICALE_PASSWORD not in added.text and "password" not in connection
    twice = add(admin, salon, server, remote)  # the same remote calendar again: it would be mirrored twice
    check(twice, "/connections", "post")
    assert problem(twice, 409, "already-connected")["connection"] == connection["id"]
    with salon.store.read() as session:
        stored = session.scalar(select(Connection))
        assert stored is not None and stored.credentials and RADICALE_PASSWORD not in stored.credentials

    with salon.api(salon.add_token("Salon")) as engine:  # may read, may not change
        listed = engine.get("/connections")
        check(listed, "/connections", "get")
        assert [c["id"] for c in listed.json()["connections"]] == [connection["id"]]
        assert engine.get(one).status_code == 200 and engine.get(one + "/runs").status_code == 200
        for refused in (engine.post(one + "/sync"), engine.patch(one, json={"enabled": False}), engine.delete(one),
                        add(engine, salon, server, remote)):
            problem(refused, 403, "forbidden")
    assert count(salon, SyncRun) == 0 and count(salon, Connection) == 1

    synced = admin.post(one + "/sync")
    check(synced, ONE + "/sync", "post")
    run = synced.json()
    assert (run["status"], run["trigger"], run["baseline"]) == ("ok", "manual", True), run
    assert run["counts"]["in"]["created"] == 2 and run["finished_at"] is not None and run["requests"] > 0
    texts = item_texts(salon)
    assert len(texts) == 2 and {origin for origin, _ in texts} == {f"connection:{connection['id']}"}
    assert not any("Geheim" in text or "Praxis" in text for _, text in texts)

    reset = admin.post(one + "/sync", json={"reset": True})
    check(reset, ONE + "/sync", "post")
    assert (reset.json()["trigger"], reset.json()["status"], reset.json()["baseline"]) == ("reset", "ok", True)
    assert len(item_texts(salon)) == 2  # a resync without duplicates

    first = admin.get(one + "/runs", params={"limit": 1})
    check(first, ONE + "/runs", "get")
    assert [r["trigger"] for r in first.json()["runs"]] == ["reset"]
    assert first.json()["next_before"] == reset.json()["id"]
    second = admin.get(one + "/runs", params={"limit": 1, "before": first.json()["next_before"]})
    check(second, ONE + "/runs", "get")
    assert [r["id"] for r in second.json()["runs"]] == [run["id"]] and second.json()["next_before"] is None
    assert [r["id"] for r in admin.get(one + "/runs").json()["runs"]] == [reset.json()["id"], run["id"]]
    for bad in ({"limit": 0}, {"limit": 101}, {"before": "x"}):
        check(admin.get(one + "/runs", params=bad), ONE + "/runs", "get")
        problem(admin.get(one + "/runs", params=bad), 422, "invalid-request")
    read = admin.get(one)
    check(read, ONE, "get")
    assert read.json()["last_run"]["id"] == reset.json()["id"] and read.json()["next_due_at"] is not None

    tightened = admin.patch(one, json={"options": {"no_personal_data": True}})
    check(tightened, ONE, "patch")
    change = tightened.json()["options_change"]
    # The private event had no details to remove: only the other one is rewritten.
    assert change["tightened"] == ["no_personal_data"] and change["rewritten"] == 1 and not change["baseline_due"]
    assert tightened.json()["options"]["no_personal_data"]
    assert not any("Färben" in text for _, text in item_texts(salon))

    paused = admin.patch(one, json={"enabled": False, "direction": "inbound"})
    check(paused, ONE, "patch")
    assert (paused.json()["enabled"], paused.json()["direction"]) == (False, "inbound")
    assert "options_change" not in paused.json()
    refused = admin.post(one + "/sync")  # disabling stops all syncing, manual runs too
    check(refused, ONE + "/sync", "post")
    problem(refused, 409, "connection-disabled")
    assert not admin.get(one).json()["syncing"] and len(admin.get(one + "/runs").json()["runs"]) == 2
    for bad, field in (({"options": {"colour": "red"}}, "options"), ({"direction": "sideways"}, "direction"),
                       ({"enabled": True, "options": {"no_personal_data": "yes"}}, "options"),
                       ({"remote_calendar": "elsewhere"}, "remote_calendar"), ({"enabled": "true"}, "enabled")):
        refused = admin.patch(one, json=bad)
        check(refused, ONE, "patch")
        assert problem(refused, 422, "invalid-request")["field"] == field
    unchanged = admin.get(one).json()
    assert (unchanged["enabled"], unchanged["direction"]) == (False, "inbound")  # all or nothing

    gone = admin.delete(one)
    check(gone, ONE, "delete")
    assert gone.json() == {"id": connection["id"], "mirrored_items": 2, "mirrored_removed": False}
    assert {origin for origin, _ in item_texts(salon)} == {"client"}  # kept as ordinary items
    for answer in (admin.get(one), admin.get(one + "/runs"), admin.post(one + "/sync")):
        problem(answer, 404, "not-found")
    assert admin.get("/connections").json() == {"connections": []} and count(salon, SyncRun) == 0


def test_disconnect_can_remove_the_mirrored_items(salon: Bridge, admin: httpx.Client, server: DavServer) -> None:
    remote = server.new_calendar()
    put(server, remote, "a", "Färben")
    one = f"/connections/{add(admin, salon, server, remote).json()['id']}"
    assert admin.post(one + "/sync").json()["status"] == "ok" and len(item_texts(salon)) == 1
    refused = admin.delete(one, params={"remove_mirrored": "perhaps"})
    check(refused, ONE, "delete")
    assert problem(refused, 422, "invalid-request")["field"] == "remove_mirrored"
    gone = admin.delete(one, params={"remove_mirrored": "true"})
    check(gone, ONE, "delete")
    assert gone.json()["mirrored_items"] == 1 and gone.json()["mirrored_removed"]
    assert item_texts(salon) == [] and count(salon, Connection) == 0


@pytest.mark.parametrize(("change", "kind", "words"), [
    ({"password": "not-the-pw-7731"}, "account-unusable", "refused the credentials"),
    ({"url": "http://127.0.0.1:9/"}, "account-unusable", "could not be used"),
    ({"remote_calendar": None}, "remote-calendar-needed", "remote_calendar"),
])
def test_an_account_that_cannot_work_is_explained_and_not_stored(salon: Bridge, admin: httpx.Client,
                                                                 server: DavServer, change: dict[str, Any],
                                                                 kind: str, words: str) -> None:
    server.new_calendar()  # the account has several calendars
    remote = change.get("remote_calendar", server.default_calendar)
    answer = add(admin, salon, server, remote, **{k: v for k, v in change.items() if k != "remote_calendar"})
    check(answer, "/connections", "post")
    refused = problem(answer, 422, kind)
    assert words in refused["detail"] and "Traceback" not in answer.text and "not-the-pw" not in answer.text
    if kind == "remote-calendar-needed":
        assert server.default_calendar in [c["id"] for c in refused["calendars"]]
    assert count(salon, Connection) == 0


@pytest.mark.parametrize(("change", "field"), [
    ({"provider": "google"}, "provider"),
    ({"provider": "ics", "direction": "both"}, "direction"),
    ({"direction": "sideways"}, "direction"),
    ({"options": {"colour": "red"}}, "options"),
    ({"options": {"sync_timezone": "Mars/Olympus"}}, "options"),
    ({"username": "", "password": "alone"}, "username"),
    ({"calendar": "nora/cal"}, "calendar"),
    ({"colour": "red"}, "colour"),
])
def test_invalid_requests_are_refused_before_the_account_is_tried(salon: Bridge, admin: httpx.Client,
                                                                  change: dict[str, Any], field: str) -> None:
    body = {"calendar": salon.calendar_id("nora", "cal"), "provider": "caldav", "url": "http://127.0.0.1:9/",
            "username": RADICALE_USER, "password": RADICALE_PASSWORD, **change}
    answer = admin.post("/connections", json=body)
    check(answer, "/connections", "post")
    assert problem(answer, 422, "invalid-request")["field"] == field
    assert count(salon, Connection) == 0


def test_a_sync_or_disconnect_while_a_run_holds_the_lease_gets_409(salon: Bridge, admin: httpx.Client,
                                                                    server: DavServer) -> None:
    remote = server.new_calendar()
    put(server, remote, "a", "Färben")
    connection_id = add(admin, salon, server, remote).json()["id"]
    one = f"/connections/{connection_id}"
    assert scheduler.claim_one(salon.store, connection_id, "worker:test", datetime.now(UTC), 300)
    assert admin.get(one).json()["syncing"]
    for answer, method in ((admin.post(one + "/sync", json={"confirm_deletions": True}), "post"),
                           (admin.delete(one), "delete")):
        check(answer, ONE + ("/sync" if method == "post" else ""), method)
        problem(answer, 409, "sync-in-progress")
    assert count(salon, SyncRun) == 0 and count(salon, Connection) == 1
    scheduler.release(salon.store, connection_id, "worker:test")
    synced = admin.post(one + "/sync", json={"confirm_deletions": True})
    assert synced.status_code == 200 and synced.json()["status"] == "ok"
    assert not admin.get(one).json()["syncing"]  # the manual run gave its lease back
    malformed = admin.post(one + "/sync", content=b"{", headers={"Content-Type": "application/json"})
    check(malformed, ONE + "/sync", "post")
    problem(malformed, 400, "malformed-json")
    typo = admin.post(one + "/sync", json={"rest": True})
    check(typo, ONE + "/sync", "post")
    assert problem(typo, 422, "invalid-request")["field"] == "rest"


def _connection_routes(bridge: Bridge) -> set[tuple[str, str]]:
    app = create_api(bridge.settings, bridge.store)
    return {(method, route.path.replace(":int", "")) for route in app.routes if isinstance(route, Route)
            and route.path.startswith("/connections") for method in (route.methods or ()) if method != "HEAD"}


def test_a_token_of_tenant_a_never_reaches_a_connection_of_tenant_b(bridge: Bridge, server: DavServer) -> None:
    bridge.add_user("A", "anna")
    bridge.add_calendar("anna", "cal")
    bridge.add_user("B", "bert")
    bridge.add_calendar("bert", "cal")
    remote = server.new_calendar()
    put(server, remote, "a", "Färben")
    with bridge.api(bridge.add_token("B", scope="admin")) as b:
        theirs = add(b, bridge, server, remote, owner="bert", options={"anonymize_location": True}).json()
        assert b.post(f"/connections/{theirs['id']}/sync").json()["status"] == "ok"
        before = b.get(f"/connections/{theirs['id']}").json()
    one = f"/connections/{theirs['id']}"
    unreachable = {"calendar": theirs["calendar"], "provider": "caldav", "url": "http://127.0.0.1:9/"}

    cases: dict[tuple[str, str], Callable[[httpx.Client], httpx.Response]] = {
        ("POST", "/connections"): lambda a: a.post("/connections", json=unreachable),  # 404 before any request
        ("GET", ONE): lambda a: a.get(one),
        ("PATCH", ONE): lambda a: a.patch(one, json={"enabled": False, "options": {"anonymize_location": False}}),
        ("DELETE", ONE): lambda a: a.delete(one, params={"remove_mirrored": "true"}),
        ("POST", ONE + "/sync"): lambda a: a.post(one + "/sync", json={"reset": True}),
        ("GET", ONE + "/runs"): lambda a: a.get(one + "/runs"),
    }
    assert set(cases) | {("GET", "/connections")} == _connection_routes(bridge)
    for scope in ("admin", "engine"):
        with bridge.api(bridge.add_token("A", scope=scope)) as a:
            for (method, path), call in cases.items():
                answer = call(a)
                check(answer, path, method.lower())
                expected = 404 if scope == "admin" or method == "GET" else 403
                assert answer.status_code == expected, f"{scope}: {method} {path} answered {answer.status_code}"
            listed = a.get("/connections")
            check(listed, "/connections", "get")
            assert listed.json() == {"connections": []}
    with bridge.api(bridge.add_token("B")) as b:
        after = b.get(one).json()
        assert after == before and len(b.get(one + "/runs").json()["runs"]) == 1
    assert count(bridge, Connection) == 1
