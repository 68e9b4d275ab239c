"""A booking's event in the provider's calendar app: deleting it cancels the booking and dragging it
reschedules it, exactly as the booking engine would have; nothing else about it changes behind the
booking engine's back.

Asserted as the booking engine and the customer notice it: the booking over ``/api/v1``, the change
feed, the customer's mail in the outbox, free/busy; and another tenant's booking untouched.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from bridge.settings import Settings
from bridge.store.models import Item, Outbox
from tests.conftest import Bridge

MONDAY = datetime(2026, 12, 7, tzinfo=UTC)
DAY = {"start": "2026-12-07T00:00:00Z", "end": "2026-12-08T00:00:00Z"}


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Mail configured (no worker runs here, so mails stay queued in the outbox to be read)."""
    return dataclasses.replace(settings, smtp_host="127.0.0.1", smtp_port=9, mail_from="Salon <salon@example.org>")


@dataclasses.dataclass
class Salon:
    bridge: Bridge
    engine: httpx.Client
    other_engine: httpx.Client
    booking: dict[str, Any]
    other_booking: dict[str, Any]

    def dav(self, login: str = "nora") -> httpx.Client:
        return self.bridge.client(login)

    def current(self, booking: dict[str, Any] | None = None) -> dict[str, Any]:
        found = (booking or self.booking)
        engine = self.engine if booking is None or booking is self.booking else self.other_engine
        answer = engine.get(f"/bookings/{found['id']}")
        assert answer.status_code == 200
        body: dict[str, Any] = answer.json()
        return body

    def busy(self) -> list[tuple[str, str]]:
        answer = self.engine.post("/freebusy", json={"calendars": [self.booking["calendar"]], **DAY})
        return [(p["start"], p["end"]) for p in answer.json()["calendars"][0]["busy"]]

    def mails(self) -> list[str]:
        with self.bridge.store.read() as session:
            return list(session.scalars(select(Outbox.kind).order_by(Outbox.id)))


@pytest.fixture
def salon(bridge: Bridge) -> Iterator[Salon]:
    """nora's calendar with one booking (9:00-9:30 UTC) and otto's of another tenant with one of his."""
    bridge.add_user("Salon", "nora")
    bridge.add_calendar("nora", "cal")
    bridge.add_user("Other", "otto")
    bridge.add_calendar("otto", "cal")
    with bridge.api(bridge.add_token("Salon")) as engine, bridge.api(bridge.add_token("Other")) as other:
        booking = _book(engine, bridge.calendar_id("nora", "cal"), "k1")
        other_booking = _book(other, bridge.calendar_id("otto", "cal"), "k2")
        yield Salon(bridge, engine, other, booking, other_booking)


def _book(engine: httpx.Client, calendar: int, key: str) -> dict[str, Any]:
    body = {"calendar": calendar, "start": _iso(MONDAY + timedelta(hours=9)),
            "end": _iso(MONDAY + timedelta(hours=9, minutes=30)),
            "customer": {"name": "Erika Mustermann", "email": "erika@example.com", "language": "de"},
            "notes": "Haarschnitt"}
    answer = engine.post("/bookings", json=body, headers={"Idempotency-Key": key})
    assert answer.status_code == 201, answer.text
    created: dict[str, Any] = answer.json()
    return created


def _changes_since(salon: Salon, cursor: str) -> list[dict[str, Any]]:
    answer = salon.engine.get("/changes", params={"since": cursor})
    assert answer.status_code == 200
    found: list[dict[str, Any]] = answer.json()["changes"]
    return found


def _cursor(salon: Salon) -> str:
    page = salon.engine.get("/changes", params={"limit": 1000}).json()
    assert not page["more"]
    cursor: str = page["next"]
    return cursor


def _dragged(text: str, start: str, end: str) -> str:
    """The event as a calendar app writes it back after a drag: new times, its own bookkeeping."""
    text = re.sub(r"DTSTART;TZID=Europe/Berlin:\d{8}T\d{6}", f"DTSTART;TZID=Europe/Berlin:{start}", text)
    text = re.sub(r"DTEND;TZID=Europe/Berlin:\d{8}T\d{6}", f"DTEND;TZID=Europe/Berlin:{end}", text)
    text = re.sub(r"DTSTAMP:\d{8}T\d{6}Z", "DTSTAMP:20261201T120000Z", text)
    return text.replace("END:VEVENT", "LAST-MODIFIED:20261201T120000Z\r\nCLASS:PUBLIC\r\n"
                                      "X-APPLE-TRAVEL-ADVISORY-BEHAVIOR:AUTOMATIC\r\nEND:VEVENT")


def test_deleting_a_booking_in_a_calendar_app_cancels_it(salon: Salon) -> None:
    cursor = _cursor(salon)
    with salon.dav() as dav:
        assert dav.delete(salon.booking["event"]).status_code in (200, 204)
        assert dav.get(salon.booking["event"]).status_code == 404
    booking = salon.current()
    assert booking["status"] == "cancelled" and booking["event"] is None
    assert booking["sequence"] == salon.booking["sequence"] + 1
    feed = _changes_since(salon, cursor)
    assert [(c["deleted"], c["booking"]) for c in feed] == [
        (True, {"id": salon.booking["id"], "status": "cancelled"})]
    assert salon.mails() == ["booking_confirmed", "booking_confirmed", "booking_cancelled"]
    assert salon.busy() == []
    assert salon.current(salon.other_booking)["status"] == "confirmed"


def test_dragging_a_booking_in_a_calendar_app_reschedules_it(salon: Salon) -> None:
    cursor = _cursor(salon)
    with salon.dav() as dav:
        text = dav.get(salon.booking["event"]).text
        moved = dav.put(salon.booking["event"], content=_dragged(text, "20261207T140000", "20261207T150000"),
                        headers={"Content-Type": "text/calendar", "If-Match": dav.get(salon.booking["event"])
                                 .headers["ETag"]})
        assert moved.status_code in (200, 204), moved.text
        stored = dav.get(salon.booking["event"]).text
    assert "DTSTART;TZID=Europe/Berlin:20261207T140000" in stored and "X-CALBRIDGE-BOOKING" in stored
    booking = salon.current()
    assert (booking["status"], booking["start"], booking["end"]) == (
        "confirmed", "2026-12-07T13:00:00Z", "2026-12-07T14:00:00Z")
    assert booking["sequence"] == salon.booking["sequence"] + 1
    with salon.bridge.store.read() as session:
        assert session.scalars(select(Item.origin).where(Item.uid.startswith(salon.booking["id"]))).all() == [
            "booking"]
    feed = _changes_since(salon, cursor)
    assert [(c["href"], c["deleted"], c["booking"]) for c in feed] == [
        (salon.booking["event"], False, {"id": salon.booking["id"], "status": "confirmed"})]
    assert salon.mails()[-1] == "booking_rescheduled"
    assert salon.busy() == [("2026-12-07T13:00:00Z", "2026-12-07T14:00:00Z")]
    assert salon.current(salon.other_booking)["start"] == "2026-12-07T09:00:00Z"


def test_saving_a_booking_unchanged_changes_nothing(salon: Salon) -> None:
    cursor = _cursor(salon)
    with salon.dav() as dav:
        text = dav.get(salon.booking["event"]).text
        assert dav.put(salon.booking["event"], content=text).status_code in (200, 204)
    assert salon.current() == salon.booking
    assert _changes_since(salon, cursor) == []
    assert salon.mails() == ["booking_confirmed", "booking_confirmed"]


def _retitled(text: str) -> str:
    return re.sub(r"SUMMARY:[^\r\n]*", "SUMMARY:Mittagspause", text)


def _with_alarm(text: str) -> str:
    return text.replace("END:VEVENT", "BEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:x\r\nTRIGGER:-PT15M\r\n"
                                      "END:VALARM\r\nEND:VEVENT")


def _as_task(text: str) -> str:
    uid = re.search(r"UID:([^\r\n]*)", text)
    assert uid is not None
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VTODO\r\n"
            f"UID:{uid.group(1)}\r\nDTSTAMP:20261201T120000Z\r\nSUMMARY:mine\r\nEND:VTODO\r\nEND:VCALENDAR\r\n")


def _repaired(text: str) -> str:
    return _dragged(text, "20261207T140000", "20261207T150000").replace(
        "END:VEVENT", "DURATION:PT0S\r\nEND:VEVENT")


def _other_uid(text: str) -> str:
    return re.sub(r"UID:[^\r\n]*", "UID:mine-1", text)


EDITS = {"a new title": _retitled, "an alarm": _with_alarm, "a task": _as_task,
         "a body Radicale repairs": _repaired, "another UID": _other_uid}


@pytest.mark.parametrize("edit", list(EDITS), ids=list(EDITS))
def test_other_edits_of_a_booking_are_refused_not_lost(salon: Salon, edit: str) -> None:
    cursor = _cursor(salon)
    with salon.dav() as dav:
        text = dav.get(salon.booking["event"]).text
        answer = dav.put(salon.booking["event"], content=EDITS[edit](text))
        assert answer.status_code == 403 and "need-privileges" in answer.text, answer.text
        assert dav.get(salon.booking["event"]).text == text
    assert salon.current() == salon.booking
    assert _changes_since(salon, cursor) == []


def test_a_booking_cannot_be_moved_or_overwritten_by_move(salon: Salon) -> None:
    event = salon.booking["event"]
    with salon.dav() as dav:
        text = dav.get(event).text
        away = dav.request("MOVE", event, headers={"Destination": "/dav/nora/cal/elsewhere.ics"})
        assert away.status_code == 403 and "need-privileges" in away.text
        assert dav.put("/dav/nora/cal/mine.ics", content=_other_uid(text)).status_code == 201
        onto = dav.request("MOVE", "/dav/nora/cal/mine.ics", headers={"Destination": event, "Overwrite": "T"})
        assert onto.status_code == 403 and "need-privileges" in onto.text
        assert dav.get(event).text == text
    assert salon.current() == salon.booking


def test_a_stale_delete_and_a_stranger_leave_the_booking(salon: Salon) -> None:
    event = salon.booking["event"]
    with salon.dav() as dav:
        assert dav.delete(event, headers={"If-Match": '"stale"'}).status_code == 412
    with salon.dav("otto") as dav:
        assert dav.delete(event).status_code in (403, 404)
        assert dav.put(event, content="BEGIN:VCALENDAR\r\nEND:VCALENDAR\r\n").status_code in (403, 404)
    assert salon.current() == salon.booking
    assert salon.mails() == ["booking_confirmed", "booking_confirmed"]
