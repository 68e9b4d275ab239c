"""/api/v1 as the booking engine uses it: free/busy, free slots, bookings, provisioning."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from bridge.store.models import Booking, Item
from tests.api_schema import check
from tests.conftest import Bridge
from tests.ics import event

MONDAY = datetime(2026, 12, 7, tzinfo=UTC)  # 7 December 2026, a Monday
CAL = "/dav/nora/cal/"


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@pytest.fixture
def salon(bridge: Bridge) -> Bridge:
    bridge.add_user("Salon", "nora")
    bridge.add_calendar("nora", "cal")
    return bridge


@pytest.fixture
def engine(salon: Bridge) -> Iterator[httpx.Client]:
    with salon.api(salon.add_token("Salon")) as client:
        yield client


def _book(engine: httpx.Client, calendar: int, start: datetime, minutes: int = 30, key: str = "k1",
          name: str = "Erika Mustermann") -> httpx.Response:
    body = {"calendar": calendar, "start": _iso(start), "end": _iso(start + timedelta(minutes=minutes)),
            "customer": {"name": name, "email": "erika@example.com", "language": "de"}, "notes": "Haarschnitt"}
    return engine.post("/bookings", json=body, headers={"Idempotency-Key": key})


def _counts(bridge: Bridge) -> tuple[int, int]:
    with bridge.store.read() as session:
        return (session.scalar(select(func.count()).select_from(Item)) or 0,
                session.scalar(select(func.count()).select_from(Booking)) or 0)


def test_freebusy_reports_client_events_series_and_bookings_with_their_source(salon: Bridge,
                                                                              engine: httpx.Client) -> None:
    calendar = salon.calendar_id("nora", "cal")
    with salon.client("nora") as dav:
        dav.put(CAL + "one.ics", content=event("one", MONDAY + timedelta(hours=9), MONDAY + timedelta(hours=10)))
        weekly = event("weekly", MONDAY + timedelta(hours=12), MONDAY + timedelta(hours=13),
                       extra="RRULE:FREQ=WEEKLY;COUNT=3\r\n")
        assert dav.put(CAL + "weekly.ics", content=weekly).status_code == 201
        dav.put(CAL + "free.ics", content=event("free", MONDAY + timedelta(hours=15), MONDAY + timedelta(hours=16),
                                                extra="TRANSP:TRANSPARENT\r\n"))
    assert _book(engine, calendar, MONDAY + timedelta(hours=10, minutes=30)).status_code == 201

    answer = engine.post("/freebusy", json={"calendars": [calendar], "start": _iso(MONDAY),
                                            "end": _iso(MONDAY + timedelta(days=14))})
    check(answer, "/freebusy", "post")
    busy = answer.json()["calendars"][0]["busy"]
    assert [(b["start"], b["end"], b["source"]["kind"]) for b in busy] == [
        ("2026-12-07T09:00:00Z", "2026-12-07T10:00:00Z", "client"),
        ("2026-12-07T10:30:00Z", "2026-12-07T11:00:00Z", "booking"),
        ("2026-12-07T12:00:00Z", "2026-12-07T13:00:00Z", "client"),
        ("2026-12-14T12:00:00Z", "2026-12-14T13:00:00Z", "client"),
    ]
    assert "summary" not in str(answer.json()).lower()
    assert answer.json()["merged"][0] == {"start": "2026-12-07T09:00:00Z", "end": "2026-12-07T10:00:00Z"}


def test_free_slots_skip_busy_time(salon: Bridge, engine: httpx.Client) -> None:
    calendar = salon.calendar_id("nora", "cal")
    with salon.client("nora") as dav:
        dav.put(CAL + "one.ics", content=event("one", MONDAY + timedelta(hours=9), MONDAY + timedelta(hours=10)))
    answer = engine.post("/free-slots", json={
        "calendars": [calendar], "duration": "PT30M", "step": "PT30M",
        "windows": [{"start": _iso(MONDAY + timedelta(hours=8)), "end": _iso(MONDAY + timedelta(hours=11))}]})
    check(answer, "/free-slots", "post")
    assert [slot["start"][11:16] for slot in answer.json()["slots"]] == ["08:00", "08:30", "10:00", "10:30"]


def test_a_booking_is_an_event_for_caldav_clients_at_once(salon: Bridge, engine: httpx.Client) -> None:
    created = _book(engine, salon.calendar_id("nora", "cal"), MONDAY + timedelta(hours=9))
    check(created, "/bookings", "post")
    assert created.status_code == 201
    booking = created.json()
    with salon.client("nora") as dav:
        text = dav.get(booking["event"]).text
    assert "SUMMARY:Erika Mustermann" in text and "X-CALBRIDGE-BOOKING:" + booking["id"] in text
    assert "DTSTART;TZID=Europe/Berlin:20261207T100000" in text and "BEGIN:VTIMEZONE" in text


def test_the_same_idempotency_key_returns_the_first_booking(salon: Bridge, engine: httpx.Client) -> None:
    calendar = salon.calendar_id("nora", "cal")
    first = _book(engine, calendar, MONDAY + timedelta(hours=9), key="same")
    again = _book(engine, calendar, MONDAY + timedelta(hours=9), key="same")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"] and again.headers["Idempotent-Replayed"] == "true"
    other = _book(engine, calendar, MONDAY + timedelta(hours=11), key="same")
    assert other.status_code == 422 and other.json()["type"].endswith("idempotency-key-reused")
    assert _counts(salon) == (1, 1)


def test_a_busy_slot_gets_409_with_the_conflicting_periods(salon: Bridge, engine: httpx.Client) -> None:
    calendar = salon.calendar_id("nora", "cal")
    with salon.client("nora") as dav:
        dav.put(CAL + "one.ics", content=event("one", MONDAY + timedelta(hours=9), MONDAY + timedelta(hours=10)))
    refused = _book(engine, calendar, MONDAY + timedelta(hours=9, minutes=30), key="late")
    check(refused, "/bookings", "post")
    assert refused.status_code == 409
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["conflicts"] == [
        {"start": "2026-12-07T09:30:00Z", "end": "2026-12-07T10:00:00Z", "type": "BUSY"}]
    assert _counts(salon) == (1, 0)


def test_reschedule_and_cancel(salon: Bridge, engine: httpx.Client) -> None:
    calendar = salon.calendar_id("nora", "cal")
    booking = _book(engine, calendar, MONDAY + timedelta(hours=9)).json()
    moved = engine.patch(f"/bookings/{booking['id']}", json={"start": _iso(MONDAY + timedelta(hours=14)),
                                                             "end": _iso(MONDAY + timedelta(hours=15))})
    check(moved, "/bookings/{booking_id}", "patch")
    assert moved.json()["start"] == "2026-12-07T14:00:00Z" and moved.json()["sequence"] == 1
    with salon.client("nora") as dav:
        assert "DTSTART;TZID=Europe/Berlin:20261207T150000" in dav.get(booking["event"]).text
    cancelled = engine.delete(f"/bookings/{booking['id']}")
    check(cancelled, "/bookings/{booking_id}", "delete")
    assert cancelled.json()["status"] == "cancelled"
    with salon.client("nora") as dav:
        assert dav.get(booking["event"]).status_code == 404
    free = engine.post("/freebusy", json={"calendars": [calendar], "start": _iso(MONDAY),
                                          "end": _iso(MONDAY + timedelta(days=1))})
    assert free.json()["calendars"][0]["busy"] == []
    assert engine.get(f"/bookings/{booking['id']}").json()["status"] == "cancelled"


def test_twenty_concurrent_requests_for_one_slot_make_one_booking(salon: Bridge, engine: httpx.Client) -> None:
    calendar = salon.calendar_id("nora", "cal")
    token = engine.headers["Authorization"]

    def attempt(n: int) -> int:
        with httpx.Client(base_url=salon.url + "/api/v1", headers={"Authorization": token}, timeout=60) as client:
            return _book(client, calendar, MONDAY + timedelta(hours=9), key=f"race-{n}", name=f"Kunde {n}").status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=20) as pool:
        statuses = sorted(pool.map(attempt, range(20)))
    assert statuses == [201] + [409] * 19
    assert _counts(salon) == (1, 1)


@pytest.mark.parametrize(("path", "body", "status", "field"), [
    ("/freebusy", {"calendars": [0], "start": "2026-12-08T00:00:00Z", "end": "2026-12-07T00:00:00Z"}, 422, "end"),
    ("/freebusy", {"calendars": [0], "start": "2026-12-07T00:00:00Z"}, 422, "end"),
    ("/freebusy", {"calendars": [0], "start": "2026-01-01T00:00:00Z", "end": "2027-01-03T00:00:00Z"}, 422, "end"),
    ("/freebusy", {"calendars": [0], "start": "2026-12-07T00:00:00", "end": "2026-12-08T00:00:00Z"}, 422, "start"),
    ("/freebusy", {"calendars": [], "start": "2026-12-07T00:00:00Z", "end": "2026-12-08T00:00:00Z"}, 422,
     "calendars"),
    ("/free-slots", {"calendars": [0], "duration": "half an hour",
                     "windows": [{"start": "2026-12-07T08:00:00Z", "end": "2026-12-07T12:00:00Z"}]}, 422, "duration"),
    ("/bookings", {"calendar": 0, "start": "2026-12-07T09:00:00Z", "end": "2026-12-07T08:00:00Z",
                   "customer": {"name": "A", "email": "a@example.com"}}, 422, None),
    ("/bookings", {"calendar": 0, "start": "2026-12-07T09:00:00Z", "end": "2026-12-07T10:00:00Z",
                   "customer": {"name": "A", "email": "not-an-address"}}, 422, None),
], ids=["inverted", "unbounded", "over-366-days", "no-offset", "no-calendars", "bad-duration", "booking-inverted",
        "bad-email"])
def test_bad_input_is_a_clear_problem_and_writes_nothing(salon: Bridge, engine: httpx.Client, path: str,
                                                         body: dict[str, Any], status: int, field: str | None) -> None:
    calendar = salon.calendar_id("nora", "cal")
    body = {**body, **({"calendars": [calendar]} if body.get("calendars") else {}),
            **({"calendar": calendar} if "calendar" in body else {})}
    answer = engine.post(path, json=body, headers={"Idempotency-Key": "bad"})
    assert answer.status_code == status
    assert answer.headers["content-type"] == "application/problem+json"
    problem = answer.json()
    assert problem["status"] == status and problem["detail"]
    if field:
        assert problem["field"] == field
    assert _counts(salon) == (0, 0)


def test_malformed_json_unknown_calendars_and_bad_time_zones(salon: Bridge) -> None:
    with salon.api(salon.add_token("Salon", scope="admin")) as admin:
        malformed = admin.post("/freebusy", content=b"{not json", headers={"Content-Type": "application/json"})
        assert malformed.status_code == 400 and malformed.json()["type"].endswith("malformed-json")
        unknown = admin.post("/freebusy", json={"calendars": [999999], "start": "2026-12-07T00:00:00Z",
                                                "end": "2026-12-08T00:00:00Z"})
        assert unknown.status_code == 404
        zone = admin.post("/calendars", json={"owner": "nora", "slug": "mars", "timezone": "Mars/Olympus"})
        assert zone.status_code == 422 and "Mars/Olympus" in zone.json()["detail"]
        assert [c["slug"] for c in admin.get("/calendars").json()["calendars"]] == ["cal"]


def test_requests_without_a_valid_token_get_401_and_engine_tokens_cannot_provision(salon: Bridge) -> None:
    with httpx.Client(base_url=salon.url + "/api/v1") as anonymous:
        refused = anonymous.get("/calendars")
        assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
    with salon.api("cbt_forged") as forged:
        assert forged.get("/calendars").status_code == 401
    with salon.api(salon.add_token("Salon")) as engine:
        assert engine.get("/calendars").status_code == 200
        assert engine.get("/users").status_code == 403


def test_provisioning_users_and_calendars(salon: Bridge) -> None:
    with salon.api(salon.add_token("Salon", scope="admin")) as admin:
        user = admin.post("/users", json={"login": "tom", "email": "tom@example.org", "password": "long enough pw"})
        check(user, "/users", "post")
        calendar = admin.post("/calendars", json={"owner": "tom", "slug": "chair-2", "timezone": "Europe/Vienna",
                                                  "name": "Stuhl 2"})
        check(calendar, "/calendars", "post")
        assert calendar.status_code == 201 and calendar.json()["path"] == "/dav/tom/chair-2/"
        with salon.client("tom", "long enough pw") as dav:
            assert dav.request("PROPFIND", "/dav/tom/chair-2/", headers={"Depth": "0"}).status_code == 207
        check(admin.get("/calendars"), "/calendars", "get")
        check(admin.get("/users"), "/users", "get")
        assert admin.delete(f"/calendars/{calendar.json()['id']}").status_code == 204
        assert admin.delete("/users/tom").status_code == 204
        assert admin.get("/users/tom").status_code == 404
