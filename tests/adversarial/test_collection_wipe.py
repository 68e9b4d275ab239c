"""Issue 16: what the booking engine depends on is not deleted or overwritten over CalDAV.

Apple Calendar's "Delete calendar" is one click, and a PUT of an empty VCALENDAR to a calendar's
URL replaced everything in it. Here a careless (or hostile) member does both to the calendar the
booking engine books into, in every spelling of the path; the calendar, its events, the booking,
the connection and the change feed must be as they were. Calendars the client made itself stay
the client's to delete, up to a limit. Removing a calendar or user through the API or the admin
page says first what it ends, and then the booking engine hears of every booking it cancelled.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import httpx
import pytest

from bridge.settings import Settings
from bridge.store import users
from tests.api_schema import check
from tests.conftest import Bridge
from tests.integration.admin_client import post_form, sign_in
from tests.servers import RADICALE_PASSWORD, RADICALE_USER, DavServer

LIMIT = 2
EMPTY = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//careless//EN\r\nEND:VCALENDAR\r\n"
NEED_PRIVILEGES = re.compile(r"<D:need-privileges>.*<D:href>/dav/weber/praxis/</D:href>", re.S)
PROPFIND = ('<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop></D:propfind>')


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """As tests/conftest.py has it, with a small MKCALENDAR limit to reach."""
    return Settings(data_dir=tmp_path, max_body_bytes=1024 * 1024, auth_failure_delay_seconds=0,
                    provider_private_networks=True, mkcalendar_limit=LIMIT)


@pytest.fixture
def praxis(bridge: Bridge) -> Bridge:
    """Tenant Praxis: member weber with the provisioned calendar praxis; tenant Salon: member nora."""
    bridge.add_user("Praxis", "chef", role="admin")
    bridge.add_user("Praxis", "weber")
    bridge.add_calendar("weber", "praxis")
    bridge.add_user("Salon", "nora")
    bridge.add_calendar("nora", "salon")
    return bridge


@pytest.fixture
def engine(praxis: Bridge) -> Iterator[httpx.Client]:
    """The booking engine of Praxis, with a token of the admin scope."""
    with praxis.api(praxis.add_token("Praxis", scope="admin")) as client:
        yield client


@pytest.fixture
def weber(praxis: Bridge) -> Iterator[httpx.Client]:
    with praxis.client("weber") as client:
        yield client


def book(engine: httpx.Client, calendar: int, hours_ahead: int) -> str:
    start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=hours_ahead)
    answer = engine.post("/bookings", headers={"Idempotency-Key": uuid.uuid4().hex}, json={
        "calendar": calendar, "start": _iso(start), "end": _iso(start + timedelta(minutes=30)),
        "customer": {"name": "Erika Mustermann", "email": "erika@example.com"}})
    assert answer.status_code == 201, answer.text
    booking_id: str = answer.json()["id"]
    return booking_id


def connect(engine: httpx.Client, calendar: int, remote: DavServer) -> int:
    answer = engine.post("/connections", json={
        "calendar": calendar, "provider": "caldav", "url": remote.url, "username": RADICALE_USER,
        "password": RADICALE_PASSWORD, "remote_calendar": remote.new_calendar()})
    assert answer.status_code == 201, answer.text
    connection_id: int = answer.json()["id"]
    return connection_id


def put_event(client: httpx.Client, path: str, uid: str) -> None:
    text = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\n"
            f"UID:{uid}\r\nDTSTAMP:20261201T000000Z\r\nDTSTART:20261215T090000Z\r\nDTEND:20261215T100000Z\r\n"
            "SUMMARY:Team\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    answer = client.put(f"{path}{uid}.ics", content=text, headers={"Content-Type": "text/calendar"})
    assert answer.status_code == 201, answer.text


def listing(client: httpx.Client, path: str) -> dict[str, str]:
    """href -> etag of the calendar and every item in it, as a CalDAV client lists them."""
    answer = client.request("PROPFIND", path, content=PROPFIND, headers={"Depth": "1"})
    assert answer.status_code == 207, answer.text
    return {response.findtext("{DAV:}href", ""): response.findtext(".//{DAV:}getetag", "")
            for response in ElementTree.fromstring(answer.content).iter("{DAV:}response")}


def items(client: httpx.Client, path: str) -> dict[str, str]:
    return {href: etag for href, etag in listing(client, path).items() if not href.endswith("/")}


def feed(engine: httpx.Client) -> list[dict[str, Any]]:
    answer = engine.get("/changes", params={"limit": 1000})
    check(answer, "/changes", "get")
    assert answer.status_code == 200, answer.text
    changes: list[dict[str, Any]] = answer.json()["changes"]
    return changes


def what_they_see(weber: httpx.Client, engine: httpx.Client, booking: str, connection: int) -> dict[str, Any]:
    """Everything weber and the booking engine would notice going missing."""
    return {"listing": listing(weber, "/dav/weber/praxis/"), "booking": engine.get(f"/bookings/{booking}").json(),
            "connection": engine.get(f"/connections/{connection}").status_code,
            "calendars": engine.get("/calendars").json(), "feed": feed(engine)}


@pytest.fixture
def booked(praxis: Bridge, engine: httpx.Client, weber: httpx.Client, remote: DavServer) -> tuple[str, int]:
    """The praxis calendar with a booking, an event weber wrote, and a connection."""
    calendar = praxis.calendar_id("weber", "praxis")
    booking = book(engine, calendar, 30)
    put_event(weber, "/dav/weber/praxis/", "team-meeting")
    return booking, connect(engine, calendar, remote)


# -- over CalDAV ------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/dav/weber/praxis/", "/dav/weber/praxis", "/dav//weber/./praxis/"])
def test_a_member_cannot_delete_the_calendar_the_booking_engine_books_into(
        praxis: Bridge, weber: httpx.Client, engine: httpx.Client, booked: tuple[str, int], path: str) -> None:
    booking, connection = booked
    before = what_they_see(weber, engine, booking, connection)
    assert len(before["listing"]) == 3 and before["booking"]["status"] == "confirmed"

    answer = weber.delete(path)

    assert answer.status_code == 403
    assert NEED_PRIVILEGES.search(answer.text), answer.text
    assert "<D:unbind />" in answer.text
    assert what_they_see(weber, engine, booking, connection) == before


@pytest.mark.parametrize("path", ["/dav/weber/praxis/", "/dav/weber/praxis"])
def test_a_put_of_an_empty_calendar_over_it_loses_nothing(
        praxis: Bridge, weber: httpx.Client, engine: httpx.Client, booked: tuple[str, int], path: str) -> None:
    booking, connection = booked
    before = what_they_see(weber, engine, booking, connection)

    answer = weber.put(path, content=EMPTY, headers={"Content-Type": "text/calendar"})

    assert answer.status_code == 403
    assert NEED_PRIVILEGES.search(answer.text), answer.text
    assert what_they_see(weber, engine, booking, connection) == before


def test_even_an_empty_provisioned_calendar_is_not_deleted_over_caldav(praxis: Bridge, weber: httpx.Client) -> None:
    assert weber.delete("/dav/weber/praxis/").status_code == 403
    assert weber.request("PROPFIND", "/dav/weber/praxis/", headers={"Depth": "0"}).status_code == 207


def test_another_tenant_cannot_touch_the_calendar(praxis: Bridge, weber: httpx.Client, engine: httpx.Client,
                                                   booked: tuple[str, int]) -> None:
    booking, connection = booked
    before = what_they_see(weber, engine, booking, connection)
    with praxis.client("nora") as nora:
        assert nora.delete("/dav/weber/praxis/").status_code in (403, 404)
        assert nora.put("/dav/weber/praxis/", content=EMPTY,
                        headers={"Content-Type": "text/calendar"}).status_code in (403, 404)
        assert nora.request("MKCALENDAR", "/dav/weber/mine/").status_code in (403, 404)
        assert items(nora, "/dav/nora/salon/") == {}
    assert what_they_see(weber, engine, booking, connection) == before


def test_a_calendar_the_client_made_is_its_own_to_delete_up_to_the_limit(praxis: Bridge, weber: httpx.Client,
                                                                          engine: httpx.Client) -> None:
    assert weber.request("MKCALENDAR", "/dav/weber/one/").status_code == 201
    assert weber.request("MKCALENDAR", "/dav/weber/two/").status_code == 201
    put_event(weber, "/dav/weber/one/", "scratch")

    refused = weber.request("MKCALENDAR", "/dav/weber/three/")
    assert refused.status_code == 403
    assert f"at most {LIMIT} calendars" in refused.text and "mkcalendar_limit" in refused.text
    refused_put = weber.put("/dav/weber/three/", content=EMPTY, headers={"Content-Type": "text/calendar"})
    assert refused_put.status_code == 403
    assert weber.request("PROPFIND", "/dav/weber/three/", headers={"Depth": "0"}).status_code == 404

    assert weber.put("/dav/weber/two/", content=EMPTY, headers={"Content-Type": "text/calendar"}).status_code == 201
    assert weber.delete("/dav/weber/one/").status_code == 200
    assert weber.request("PROPFIND", "/dav/weber/one/", headers={"Depth": "0"}).status_code == 404
    assert weber.request("MKCALENDAR", "/dav/weber/three/").status_code == 201  # room again
    assert [c["slug"] for c in engine.get("/calendars").json()["calendars"] if c["owner"] == "weber"] == [
        "praxis", "three", "two"]


def test_a_client_made_calendar_with_a_booking_is_kept(praxis: Bridge, weber: httpx.Client,
                                                      engine: httpx.Client) -> None:
    assert weber.request("MKCALENDAR", "/dav/weber/own/").status_code == 201
    booking = book(engine, praxis.calendar_id("weber", "own"), 40)
    answer = weber.delete("/dav/weber/own/")
    assert answer.status_code == 403 and "<D:need-privileges>" in answer.text
    assert engine.get(f"/bookings/{booking}").json()["status"] == "confirmed"
    assert len(items(weber, "/dav/weber/own/")) == 1


# -- through the API and the admin page -------------------------------------------------------------

def test_the_api_says_first_what_a_calendar_removal_ends_then_cancels_each_booking(
        praxis: Bridge, weber: httpx.Client, engine: httpx.Client, booked: tuple[str, int]) -> None:
    booking, connection = booked
    calendar = praxis.calendar_id("weber", "praxis")
    second = book(engine, calendar, 50)
    before = what_they_see(weber, engine, booking, connection)

    asked = engine.delete(f"/calendars/{calendar}")
    check(asked, "/calendars/{calendar_id}", "delete")
    assert asked.status_code == 409
    assert asked.headers["content-type"].startswith("application/problem+json")
    assert asked.json()["type"].endswith("/confirmation-needed")
    assert asked.json()["consequences"] == {"calendars": 1, "bookings": 2, "connections": 1}
    assert "2 booking(s)" in asked.json()["detail"]
    assert what_they_see(weber, engine, booking, connection) == before

    done = engine.delete(f"/calendars/{calendar}", params={"confirm": "true"})
    check(done, "/calendars/{calendar_id}", "delete")
    assert done.status_code == 204

    ended = [c for c in feed(engine) if c["booking"] is not None and c["deleted"]]
    assert sorted(c["booking"]["id"] for c in ended) == sorted([booking, second])
    assert all(c["booking"]["status"] == "cancelled" and c["calendar"] == calendar for c in ended)
    for ended_booking in (booking, second):
        answer = engine.get(f"/bookings/{ended_booking}")
        check(answer, "/bookings/{booking_id}", "get")
        assert (answer.json()["status"], answer.json()["event"]) == ("cancelled", None)
    assert engine.delete(f"/bookings/{booking}").json()["status"] == "cancelled"  # cancelling again is harmless
    assert engine.get(f"/calendars/{calendar}").status_code == 404
    assert engine.get(f"/connections/{connection}").status_code == 404
    assert weber.request("PROPFIND", "/dav/weber/praxis/", headers={"Depth": "0"}).status_code == 404
    assert praxis.add_calendar("weber", "praxis")  # the name is free again; the old changes stay readable
    assert {c["booking"]["id"] for c in feed(engine) if c["booking"]} >= {booking, second}


def test_the_api_removes_a_user_only_when_confirmed_and_reports_the_cancellations(
        praxis: Bridge, weber: httpx.Client, engine: httpx.Client) -> None:
    booking = book(engine, praxis.calendar_id("weber", "praxis"), 60)
    asked = engine.delete("/users/weber")
    check(asked, "/users/{login}", "delete")
    assert asked.status_code == 409 and asked.json()["consequences"]["bookings"] == 1
    assert engine.get("/users/weber").status_code == 200

    assert engine.delete("/users/weber", params={"confirm": "true"}).status_code == 204
    assert engine.get("/users/weber").status_code == 404
    assert weber.request("PROPFIND", "/dav/weber/", headers={"Depth": "0"}).status_code == 401
    assert [(c["booking"]["id"], c["booking"]["status"], c["deleted"]) for c in feed(engine) if c["booking"]][-1] == (
        booking, "cancelled", True)


def test_the_admin_page_shows_the_counts_before_it_removes(praxis: Bridge, weber: httpx.Client,
                                                           engine: httpx.Client, booked: tuple[str, int]) -> None:
    booking, connection = booked
    calendar = praxis.calendar_id("weber", "praxis")
    before = what_they_see(weber, engine, booking, connection)
    with sign_in(praxis, "chef") as admin:
        asked = post_form(admin, f"/calendars/{calendar}", f"/calendars/{calendar}/delete")
        assert asked.status_code == 200
        assert "1 Buchungen werden storniert" in asked.text and "1 Verbindungen" in asked.text
        assert what_they_see(weber, engine, booking, connection) == before

        done = post_form(admin, f"/calendars/{calendar}", f"/calendars/{calendar}/delete", {"confirmed": "yes"})
        assert done.status_code == 303
        assert admin.get(f"/calendars/{calendar}").status_code == 404
    assert [(c["booking"]["id"], c["booking"]["status"]) for c in feed(engine) if c["deleted"] and c["booking"]] == [
        (booking, "cancelled")]


def test_the_admin_page_asks_before_removing_a_user_with_bookings(praxis: Bridge, weber: httpx.Client,
                                                                  engine: httpx.Client) -> None:
    booking = book(engine, praxis.calendar_id("weber", "praxis"), 70)
    with praxis.store.read() as session:
        found = users.user_by_login(session, "weber")
        assert found is not None
        weber_id = found.id
    with sign_in(praxis, "chef") as admin:
        asked = post_form(admin, "/users", f"/users/{weber_id}/delete")
        assert asked.status_code == 200 and "Benutzer weber" in asked.text and "1 Buchungen" in asked.text
        assert engine.get(f"/bookings/{booking}").json()["status"] == "confirmed"
        assert post_form(admin, "/users", f"/users/{weber_id}/delete", {"confirmed": "yes"}).status_code == 303
        assert "weber" not in admin.get("/users").text
    assert engine.get(f"/bookings/{booking}").json()["status"] == "cancelled"
    with praxis.client("weber") as gone:
        assert gone.request("PROPFIND", "/dav/weber/", headers={"Depth": "0"}).status_code == 401


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
