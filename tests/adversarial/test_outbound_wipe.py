"""A careless CalDAV client empties a practitioner's calendar: the wipe must not reach their external one.

Over HTTP against a live calbridge (SQLite and PostgreSQL) with a two-way connection to a real second
Radicale: twelve bookings made through /api/v1 are synced out; a single cancelled booking still goes
out at once; then a client deletes the bookings' items one by one over /dav. The next sync holds the
deletions (the external calendar keeps every event), says so in the run log and on the admin page,
alerts the owner once, and confirming applies them. The same holds for items the client wrote itself
(which the admin page can only say are still in the external calendar: nothing of them is kept here).
"""

from __future__ import annotations

import dataclasses
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select

from bridge.settings import Settings
from bridge.store.models import Outbox
from tests.conftest import Bridge
from tests.ics import event
from tests.integration.admin_client import sign_in
from tests.servers import RADICALE_PASSWORD, RADICALE_USER, DavServer

BOOKINGS = 12
PROPFIND = '<?xml version="1.0"?><d:propfind xmlns:d="DAV:"><d:prop><d:getetag/></d:prop></d:propfind>'


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Mail configured (never sent here: the live server runs no worker), so alerts are queued."""
    return dataclasses.replace(settings, smtp_host="127.0.0.1", mail_from="Kalender <kalender@praxis.example>")


@pytest.fixture
def praxis(bridge: Bridge) -> Bridge:
    bridge.add_user("Praxis Lind", "lena")
    bridge.add_calendar("lena", "praxis")
    return bridge


@pytest.fixture
def admin(praxis: Bridge) -> Iterator[httpx.Client]:
    with praxis.api(praxis.add_token("Praxis Lind", scope="admin")) as client:
        yield client


@pytest.fixture
def engine(praxis: Bridge) -> Iterator[httpx.Client]:
    with praxis.api(praxis.add_token("Praxis Lind")) as client:
        yield client


def remote_events(remote: DavServer, calendar: str) -> list[str]:
    """The hrefs of the events in the practitioner's external calendar, as their own app would list them."""
    with remote.client() as http:
        answer = http.request("PROPFIND", calendar, content=PROPFIND,
                              headers={"Depth": "1", "Content-Type": "application/xml"})
    assert answer.status_code == 207
    return sorted(h.text or "" for h in ET.fromstring(answer.content).iter("{DAV:}href")
                  if (h.text or "").endswith(".ics"))


def dav_items(client: httpx.Client, calendar: str) -> list[str]:
    answer = client.request("PROPFIND", calendar, content=PROPFIND,
                            headers={"Depth": "1", "Content-Type": "application/xml"})
    assert answer.status_code == 207
    return sorted(h.text or "" for h in ET.fromstring(answer.content).iter("{DAV:}href")
                  if (h.text or "").endswith(".ics"))


def sync(admin: httpx.Client, connection_id: int, **body: Any) -> dict[str, Any]:
    answer = admin.post(f"/connections/{connection_id}/sync", json=body)
    assert answer.status_code == 200, answer.text
    run: dict[str, Any] = answer.json()
    return run


def alerts(bridge: Bridge) -> list[str]:
    with bridge.store.read() as session:
        return list(session.scalars(select(Outbox.kind).where(Outbox.kind.like("alert_%"))))


def connect(praxis: Bridge, remote: DavServer, admin: httpx.Client) -> tuple[str, int]:
    """A two-way connection of Lena's calendar to a fresh calendar of the external Radicale."""
    calendar = remote.new_calendar()
    added = admin.post("/connections", json={
        "calendar": praxis.calendar_id("lena", "praxis"), "provider": "caldav", "url": remote.url,
        "username": RADICALE_USER, "password": RADICALE_PASSWORD, "remote_calendar": calendar, "direction": "both"})
    assert added.status_code == 201, added.text
    return calendar, int(added.json()["id"])


def test_a_client_deleting_every_booking_item_does_not_empty_the_external_calendar(
        praxis: Bridge, remote: DavServer, admin: httpx.Client, engine: httpx.Client) -> None:
    calendar, connection_id = connect(praxis, remote, admin)
    first = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0) + timedelta(days=2)
    booked = []
    for n in range(BOOKINGS):
        start = first + timedelta(days=n)
        answer = engine.post("/bookings", headers={"Idempotency-Key": f"wipe-{n}"}, json={
            "calendar": praxis.calendar_id("lena", "praxis"), "start": start.isoformat(),
            "end": (start + timedelta(minutes=30)).isoformat(),
            "customer": {"name": f"Kundin {n:02d}", "email": f"kundin{n}@example.org", "language": "de"}})
        assert answer.status_code == 201, answer.text
        booked.append(answer.json()["id"])
    assert sync(admin, connection_id)["status"] == "ok"
    assert len(remote_events(remote, calendar)) == BOOKINGS

    # the booking engine cancels one booking: it leaves the practitioner's calendar with the next sync
    assert engine.delete(f"/bookings/{booked[0]}").status_code == 200
    one = sync(admin, connection_id)
    assert one["status"] == "ok" and one["counts"]["out"] == {"deleted": 1}
    assert len(remote_events(remote, calendar)) == BOOKINGS - 1

    # a careless client deletes what it sees, one item at a time
    with praxis.client("lena") as dav:
        seen = dav_items(dav, "/dav/lena/praxis/")
        assert len(seen) == BOOKINGS - 1
        for href in seen:
            assert dav.delete(href).status_code in (200, 204)
        assert dav_items(dav, "/dav/lena/praxis/") == []

    held = sync(admin, connection_id)
    assert held["status"] == "held"
    assert held["counts"]["held"] == BOOKINGS - 1 and "out" not in held["counts"]
    assert {entry["action"] for entry in held["counts"]["held_deletions"]} == {"PushDelete"}
    assert len(remote_events(remote, calendar)) == BOOKINGS - 1  # the practitioner's calendar is whole
    assert alerts(praxis) == ["alert_held"]
    again = sync(admin, connection_id)  # held again, and the owner is not mailed again
    assert again["status"] == "held" and alerts(praxis) == ["alert_held"]
    runs = admin.get(f"/connections/{connection_id}/runs").json()
    assert [run["status"] for run in runs["runs"][:2]] == ["held", "held"]

    with sign_in(praxis, "lena") as browser:  # the owner sees what would go, by name and time
        log = browser.get(f"/connections/{connection_id}/log").text
    assert "Diese Termine würden dort entfernt" in log
    assert "Kundin 01" in log and "Kundin 11" in log and "Kundin 00" not in log
    local = (first + timedelta(days=1)).astimezone(ZoneInfo("Europe/Berlin"))
    assert f"{local:%d.%m.%Y %H:%M}" in log

    confirmed = sync(admin, connection_id, confirm_deletions=True)
    assert confirmed["status"] == "ok" and confirmed["counts"]["out"] == {"deleted": BOOKINGS - 1}
    assert remote_events(remote, calendar) == []
    assert sync(admin, connection_id)["status"] == "ok"


def test_a_client_deleting_the_items_it_wrote_does_not_empty_the_external_calendar(
        praxis: Bridge, remote: DavServer, admin: httpx.Client) -> None:
    calendar, connection_id = connect(praxis, remote, admin)
    first = datetime.now(UTC).replace(hour=14, minute=0, second=0, microsecond=0) + timedelta(days=2)
    with praxis.client("lena") as dav:
        for n in range(BOOKINGS):
            start = first + timedelta(days=n)
            body = event(f"termin-{n}@phone", start, start + timedelta(hours=1), summary=f"Termin {n}")
            assert dav.put(f"/dav/lena/praxis/termin-{n}.ics", content=body,
                           headers={"Content-Type": "text/calendar"}).status_code == 201
    assert sync(admin, connection_id)["status"] == "ok"
    assert len(remote_events(remote, calendar)) == BOOKINGS

    with praxis.client("lena") as dav:  # later the same client "cleans up"
        for href in dav_items(dav, "/dav/lena/praxis/"):
            assert dav.delete(href).status_code in (200, 204)

    held = sync(admin, connection_id)
    assert held["status"] == "held" and held["counts"]["held"] == BOOKINGS
    assert len(remote_events(remote, calendar)) == BOOKINGS
    assert alerts(praxis) == ["alert_held"]
    with sign_in(praxis, "lena") as browser:  # nothing of a client's item is kept here: the page says where it is
        log = browser.get(f"/connections/{connection_id}/log").text
    assert "Diese Termine würden dort entfernt" in log
    assert log.count("(hier gelöscht, im externen Kalender noch vorhanden)") == BOOKINGS

    assert sync(admin, connection_id, confirm_deletions=True)["counts"]["out"] == {"deleted": BOOKINGS}
    assert remote_events(remote, calendar) == []
