"""An ICS feed connection through the engine: mirrored, followed, read-only (bookings never pushed),
a 429 honoured, and an unchanged feed answered by one conditional request that writes nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from bridge import bookings
from bridge.secrets import Secrets, new_key
from bridge.settings import Settings
from bridge.store import calendars, connections, users
from bridge.store.db import Store
from bridge.store.models import Calendar, Connection, Item, SyncRun
from bridge.sync.engine import Engine
from tests.integration.test_sync_engine import NOW, day
from tests.servers import ics_feed_server


def feed(*events: tuple[str, str]) -> str:
    body = "".join(f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20261124T080000Z\r\nDTSTART:{start}\r\n"
                   f"DURATION:PT1H\r\nSUMMARY:Kurs\r\nEND:VEVENT\r\n" for uid, start in events)
    return f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//feed//EN\r\n{body}END:VCALENDAR\r\n"


def setup(store: Store, url: str) -> tuple[int, int]:
    with store.write() as session:
        tenant = users.create_tenant(session, "Studio")
        owner = users.create_user(session, tenant, login="ida", email="ida@example.org", password_hash="-")
        calendar = calendars.create_calendar(session, owner, "work", timezone="Europe/Berlin")
        connection = connections.create_connection(session, calendar, "ics")
        connections.set_account(session, connection, server_url="", remote_calendar=url)
        connection.direction = "both"  # what a careless caller might set: the feed stays read-only anyway
        return calendar.id, connection.id


def hrefs(store: Store, origin: str) -> list[str]:
    with store.read() as session:
        return list(session.scalars(select(Item.href).where(Item.origin == origin).order_by(Item.href)))


def test_a_feed_is_mirrored_followed_and_never_written(store: Store, tmp_path: Path) -> None:
    with ics_feed_server(feed(("a", "20261207T090000Z"), ("b", "20261208T090000Z"))) as served:
        calendar_id, connection_id = setup(store, served.url)
        engine = Engine(store, Settings(data_dir=tmp_path), Secrets([new_key()]), clock=lambda: NOW)
        with store.write() as session:
            calendar = session.get(Calendar, calendar_id)
            assert calendar is not None
            bookings.create(session, calendar, bookings.BookingRequest(day(9), day(9, 10), "Max", "max@example.com"),
                            "k", NOW)
        assert engine.run(connection_id).status == "ok"
        origin = f"connection:{connection_id}"
        assert len(hrefs(store, origin)) == 2
        requests = served.requests
        assert engine.run(connection_id).status == "ok"
        assert served.requests == requests + 1
        served.set_body(feed(("a", "20261207T110000Z")))
        assert engine.run(connection_id).status == "ok"
        (left,) = hrefs(store, origin)
        with store.read() as session:
            text = session.scalar(select(Item.text).where(Item.href == left))
            run = session.scalar(select(SyncRun).order_by(SyncRun.id.desc()).limit(1))
        assert text is not None and "20261207T110000Z" in text
        assert run is not None and json.loads(run.counts)["in"] == {"deleted": 1, "updated": 1}
        assert "out" not in json.loads(run.counts)


def test_a_rate_limited_feed_is_not_asked_again_before_retry_after(store: Store, tmp_path: Path) -> None:
    with ics_feed_server(feed(("a", "20261207T090000Z"))) as served:
        _, connection_id = setup(store, served.url)
        engine = Engine(store, Settings(data_dir=tmp_path), Secrets([new_key()]), clock=lambda: NOW)
        served.status, served.headers = 429, {"Retry-After": "120"}
        outcome = engine.run(connection_id)
        assert outcome.status == "failed" and outcome.retry_after == pytest.approx(120)
        with store.read() as session:
            connection = session.get(Connection, connection_id)
            assert connection is not None and connection.next_due_at is not None
            assert (connection.next_due_at - NOW).total_seconds() >= 120
            assert connection.sync_state is None
