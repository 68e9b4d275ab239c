"""A burst of due connections of one provider never has more than ``provider_concurrency`` runs talking to
it at once, however many the worker runs in parallel; other providers are not held up by it."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import func, select

from bridge.secrets import Secrets, new_key
from bridge.settings import Settings
from bridge.store import calendars, connections, users
from bridge.store.db import Store
from bridge.store.models import SyncRun
from bridge.sync.engine import Engine
from bridge.sync.slots import ProviderSlots
from bridge.sync.worker import Worker
from tests.integration.test_sync_engine import NOW
from tests.servers import ics_feed_server

EMPTY = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//feed//EN\r\nEND:VCALENDAR\r\n"


def feed_connections(store: Store, url: str, count: int) -> list[int]:
    with store.write() as session:
        tenant = users.create_tenant(session, "Kette")
        owner = users.create_user(session, tenant, login="kette", email="kette@example.org", password_hash="-")
        ids = []
        for n in range(count):
            calendar = calendars.create_calendar(session, owner, f"raum-{n}", timezone="Europe/Berlin")
            connection = connections.create_connection(session, calendar, "ics")
            connections.set_account(session, connection, server_url="", remote_calendar=url)
            connection.next_due_at = NOW
            ids.append(connection.id)
        return ids


def test_a_burst_of_100_connections_keeps_to_the_providers_limit(store: Store, tmp_path: Path) -> None:
    with ics_feed_server(EMPTY) as served:
        served.delay = 0.02
        ids = feed_connections(store, served.url, 100)
        settings = Settings(data_dir=tmp_path, provider_concurrency=3)
        engine = Engine(store, settings, Secrets([new_key()]), clock=lambda: NOW, slots=ProviderSlots(3))
        worker = Worker(store, lambda connection_id, trigger: engine.run(connection_id, trigger=trigger),
                        concurrency=20, clock=lambda: NOW)
        ran = 0
        while ran < len(ids):
            done = worker.run_pending()
            assert done, "due connections were left unclaimed"
            ran += done
        assert served.requests == 100
        assert served.most_in_flight == 3  # reached, never passed
        with store.read() as session:
            finished = session.scalar(select(func.count()).select_from(SyncRun).where(SyncRun.status == "ok"))
        assert finished == 100


def test_a_provider_at_its_limit_does_not_hold_up_another() -> None:
    slots = ProviderSlots(1)
    entered = threading.Event()

    def other_provider() -> None:
        with slots.slot("microsoft"):
            entered.set()

    with slots.slot("google"):
        thread = threading.Thread(target=other_provider, daemon=True)
        thread.start()
        assert entered.wait(5), "a run of another provider waited for google's slot"
    thread.join(5)
