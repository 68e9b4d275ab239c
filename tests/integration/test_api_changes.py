"""GET /api/v1/changes: the booking engine's change feed. It reports a booking cancelled by a sync (its
pushed event deleted in the external calendar) and a CalDAV client's PUT, resumes from its cursor
without repeats, pages, keeps to the token's tenant, and sends clients with a bad or expired cursor
back to the start. Every answer is checked against openapi.json."""

from __future__ import annotations

import base64
import json
import re
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from bridge.store import changes
from bridge.store.models import Calendar
from tests.api_schema import check
from tests.conftest import Bridge
from tests.ics import event
from tests.servers import RADICALE_PASSWORD, RADICALE_USER, DavServer, radicale_server

DAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=3)
REMOTE_EVENT = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//p//EN\r\nBEGIN:VEVENT\r\nUID:keep\r\n"
                "DTSTAMP:20261124T080000Z\r\nDTSTART:{start:%Y%m%dT%H%M%SZ}\r\nDTEND:{end:%Y%m%dT%H%M%SZ}\r\n"
                "SUMMARY:Zahnarzt\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")


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


def feed(client: httpx.Client, **params: Any) -> dict[str, Any]:
    answer = client.get("/changes", params=params)
    check(answer, "/changes", "get")
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def book(client: httpx.Client, calendar: int, start: datetime, key: str) -> dict[str, Any]:
    answer = client.post("/bookings", headers={"Idempotency-Key": key}, json={
        "calendar": calendar, "start": _iso(start), "end": _iso(start + timedelta(minutes=30)),
        "customer": {"name": "Erika Mustermann", "email": "erika@example.com"}})
    assert answer.status_code == 201, answer.text
    booking: dict[str, Any] = answer.json()
    return booking


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def remote_hrefs(server: DavServer, calendar: str) -> dict[str, str]:
    """Every event of a remote calendar: its URL and text."""
    with server.client() as http:
        listing = http.request("PROPFIND", calendar, headers={"Depth": "1"})
        assert listing.status_code == 207
        hrefs = re.findall(r"<(?:\w+:)?href>([^<]+\.ics)</(?:\w+:)?href>", listing.text)
        return {href: http.get(server.url + href).text for href in hrefs}


def keys(page: dict[str, Any]) -> list[tuple[int, int]]:
    return [(change["calendar"], change["number"]) for change in page["changes"]]


def test_the_feed_reports_a_cancellation_by_sync_and_a_client_put_and_resumes_without_repeats(
        salon: Bridge, admin: httpx.Client, server: DavServer) -> None:
    calendar = salon.calendar_id("nora", "cal")
    remote = server.new_calendar()
    with server.client() as http:
        http.put(remote + "keep.ics", content=REMOTE_EVENT.format(start=DAY + timedelta(hours=14),
                                                                  end=DAY + timedelta(hours=15)))
    booking = book(admin, calendar, DAY + timedelta(hours=9), "k1")

    start = feed(admin)
    assert start["changes"] == [{"calendar": calendar, "number": 1, "href": f"/dav/nora/cal/{booking['id']}.ics",
                                 "deleted": False, "at": start["changes"][0]["at"],
                                 "booking": {"id": booking["id"], "status": "confirmed"}}]
    assert not start["more"]
    assert feed(admin, since=start["next"])["changes"] == []  # nothing new: nothing repeated

    connection = admin.post("/connections", json={
        "calendar": calendar, "provider": "caldav", "url": server.url, "remote_calendar": remote,
        "username": RADICALE_USER, "password": RADICALE_PASSWORD}).json()
    first = admin.post(f"/connections/{connection['id']}/sync").json()
    assert first["status"] == "ok" and first["counts"]["out"]["created"] == 1 and first["counts"]["in"]["created"] == 1
    mirrored = feed(admin, since=start["next"])
    assert [(c["deleted"], c["booking"]) for c in mirrored["changes"]] == [(False, None)]  # the mirrored event
    assert re.fullmatch(rf"/dav/nora/cal/c{connection['id']}-[0-9a-f]+\.ics", mirrored["changes"][0]["href"])

    pushed = [href for href, text in remote_hrefs(server, remote).items() if booking["id"] in text]
    assert len(pushed) == 1
    with server.client() as http:
        assert http.delete(server.url + pushed[0]).status_code in (200, 204)
    cancelled = admin.post(f"/connections/{connection['id']}/sync").json()
    assert cancelled["status"] == "ok" and cancelled["counts"]["bookings"]["cancelled"] == 1, cancelled
    with salon.client("nora") as dav:
        assert dav.put("/dav/nora/cal/lunch.ics", content=event(
            "lunch", DAY + timedelta(hours=12), DAY + timedelta(hours=13))).status_code == 201

    latest = feed(admin, since=mirrored["next"])
    assert [(c["href"], c["deleted"], c["booking"]) for c in latest["changes"]] == [
        (f"/dav/nora/cal/{booking['id']}.ics", True, {"id": booking["id"], "status": "cancelled"}),
        ("/dav/nora/cal/lunch.ics", False, None),
    ]
    assert not latest["more"]
    seen = keys(start) + keys(mirrored) + keys(latest)
    assert len(seen) == len(set(seen)) == 4 and [n for _, n in seen] == sorted(n for _, n in seen)
    assert feed(admin, since=latest["next"])["changes"] == []
    with salon.api(salon.add_token("Salon")) as engine:  # the engine's token reads the same feed
        assert keys(feed(engine, since=start["next"])) == keys(mirrored) + keys(latest)


def test_the_feed_pages_in_commit_order_per_calendar(salon: Bridge, admin: httpx.Client) -> None:
    salon.add_calendar("nora", "room")
    cal, room = salon.calendar_id("nora", "cal"), salon.calendar_id("nora", "room")
    with salon.client("nora") as dav:
        for index in range(3):
            for slug in ("cal", "room"):
                start = DAY + timedelta(hours=8 + index)
                assert dav.put(f"/dav/nora/{slug}/e{index}.ics",
                               content=event(f"{slug}{index}", start, start + timedelta(hours=1))).status_code == 201
        assert dav.delete("/dav/nora/cal/e0.ics").status_code in (200, 204)
    whole = feed(admin)
    assert keys(whole) == [(cal, 1), (cal, 2), (cal, 3), (cal, 4), (room, 1), (room, 2), (room, 3)]
    assert whole["changes"][3]["deleted"] and whole["changes"][3]["href"] == "/dav/nora/cal/e0.ics"

    paged: list[tuple[int, int]] = []
    cursor: str | None = None
    for _ in range(10):
        page = feed(admin, limit=2, **({"since": cursor} if cursor else {}))
        paged += keys(page)
        cursor = page["next"]
        if not page["more"]:
            break
    assert paged == keys(whole)
    assert feed(admin, since=cursor)["changes"] == []


def test_a_token_sees_only_its_tenants_changes(bridge: Bridge) -> None:
    bridge.add_user("A", "anna")
    bridge.add_calendar("anna", "cal")
    bridge.add_user("B", "bert")
    bridge.add_calendar("bert", "cal")
    with bridge.api(bridge.add_token("B")) as b:
        book(b, bridge.calendar_id("bert", "cal"), DAY + timedelta(hours=9), "b1")
        theirs = feed(b)
    assert len(theirs["changes"]) == 1
    with bridge.api(bridge.add_token("A")) as a:
        assert feed(a)["changes"] == [] and not feed(a)["more"]
        assert feed(a, since=theirs["next"])["changes"] == []  # another tenant's cursor shows nothing either
        book(a, bridge.calendar_id("anna", "cal"), DAY + timedelta(hours=9), "a1")
        assert [c["calendar"] for c in feed(a)["changes"]] == [bridge.calendar_id("anna", "cal")]


def _packed(data: object) -> str:
    """A cursor-shaped string around ``data`` (the feed's cursors are zlib-packed JSON, base64url)."""
    return base64.urlsafe_b64encode(zlib.compress(json.dumps(data).encode())).decode().rstrip("=")


@pytest.mark.parametrize("cursor", [
    "", "not-a-cursor", _packed({"v": 2, "p": []}), _packed({"v": 1, "p": [[1, "epoch", -1]]}),
    _packed({"v": 1, "p": [[1, "epoch"]]}), _packed([1, 2]), base64.urlsafe_b64encode(b"plain").decode(),
])
def test_a_malformed_cursor_is_a_problem_that_says_start_over(salon: Bridge, admin: httpx.Client,
                                                              cursor: str) -> None:
    answer = admin.get("/changes", params={"since": cursor})
    check(answer, "/changes", "get")
    assert answer.status_code == 400 and answer.json()["type"].endswith("/invalid-cursor")
    assert "start over" in answer.json()["detail"]


def test_a_cursor_ahead_of_the_calendar_and_a_bad_limit_are_refused(salon: Bridge, admin: httpx.Client) -> None:
    with salon.store.read() as session:
        row = session.get(Calendar, salon.calendar_id("nora", "cal"))
        assert row is not None
        ahead = _packed({"v": 1, "p": [[row.id, row.sync_epoch, row.change_counter + 5]]})
    answer = admin.get("/changes", params={"since": ahead})
    check(answer, "/changes", "get")
    assert answer.status_code == 400 and "start over" in answer.json()["detail"]
    for limit in ("0", "1001", "ten"):
        refused = admin.get("/changes", params={"limit": limit})
        check(refused, "/changes", "get")
        assert refused.status_code == 422 and refused.json()["field"] == "limit"


def test_an_expired_cursor_gets_410_and_a_fresh_start_works(salon: Bridge, admin: httpx.Client) -> None:
    calendar = salon.calendar_id("nora", "cal")
    book(admin, calendar, DAY + timedelta(hours=9), "k1")
    old = feed(admin, limit=1)["next"]
    assert feed(admin, since=old)["changes"] == []
    book(admin, calendar, DAY + timedelta(hours=11), "k2")
    kept = feed(admin, since=old)
    with salon.store.write() as session:  # forget every change so far, as the sync-token lifetime would
        row = session.get(Calendar, calendar)
        assert row is not None
        changes.prune(session, row, older_than=datetime.now(UTC) + timedelta(seconds=1))
    expired = admin.get("/changes", params={"since": old})
    check(expired, "/changes", "get")
    assert expired.status_code == 410 and expired.json()["type"].endswith("/cursor-expired")
    assert "start over" in expired.json()["detail"]
    assert feed(admin, since=kept["next"])["changes"] == []  # a cursor at the newest change is still good
    fresh = feed(admin)
    assert fresh["changes"] == [] and feed(admin, since=fresh["next"])["changes"] == []
    book(admin, calendar, DAY + timedelta(hours=13), "k3")
    assert [c["number"] for c in feed(admin, since=fresh["next"])["changes"]] == [3]


def test_a_calendar_recreated_under_the_same_id_is_read_from_its_start(salon: Bridge, admin: httpx.Client) -> None:
    calendar = salon.calendar_id("nora", "cal")
    book(admin, calendar, DAY + timedelta(hours=9), "k1")
    book(admin, calendar, DAY + timedelta(hours=11), "k2")
    other_epoch = _packed({"v": 1, "p": [[calendar, "another-epoch", 2]]})  # what a deleted calendar left behind
    assert [c["number"] for c in feed(admin, since=other_epoch)["changes"]] == [1, 2]
