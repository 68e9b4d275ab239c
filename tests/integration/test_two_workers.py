"""Two `calbridge worker` processes on one PostgreSQL share 200 due connections: every connection is
synced exactly once in the cycle while both processes claim at once (leases with SKIP LOCKED)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from bridge.store import calendars, connections, migrate, users
from bridge.store.db import Store
from bridge.store.models import Item, SyncRun
from tests.servers import ics_feed_server

FEED = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//feed//EN\r\nBEGIN:VEVENT\r\nUID:kurs@feed\r\n"
        "DTSTAMP:20261124T080000Z\r\nDTSTART:20261207T090000Z\r\nDURATION:PT1H\r\nSUMMARY:Kurs\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n")
CONNECTIONS = 200


@pytest.mark.postgres
def test_two_worker_processes_sync_each_of_200_connections_once(postgres_url: str, tmp_path: Path) -> None:
    store = Store(postgres_url)
    migrate.upgrade(store)
    with ics_feed_server(FEED) as feed:
        with store.write() as session:
            tenant = users.create_tenant(session, "Kette")
            for n in range(CONNECTIONS):
                owner = users.create_user(session, tenant, login=f"p{n}", email=f"p{n}@example.org",
                                          password_hash="-")
                calendar = calendars.create_calendar(session, owner, "work", timezone="Europe/Berlin")
                connection = connections.create_connection(session, calendar, "ics")
                connections.set_account(session, connection, server_url="", remote_calendar=feed.url)
        env = {**os.environ, "BRIDGE_DATABASE_URL": postgres_url, "BRIDGE_DATA_DIR": str(tmp_path),
               "BRIDGE_LOG_LEVEL": "warning"}
        command = [sys.executable, "-m", "bridge", "worker", "--concurrency", "6"]
        logs = [(tmp_path / f"worker{n}.log").open("wb") for n in range(2)]
        workers = [subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT) for log in logs]
        try:
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:
                with store.read() as session:
                    finished = session.scalar(select(func.count()).select_from(SyncRun)
                                              .where(SyncRun.status != "running"))
                if finished == CONNECTIONS:
                    break
                assert all(worker.poll() is None for worker in workers), "a worker process died"
                time.sleep(0.5)
            time.sleep(1)  # a run that started twice would show up now
        finally:
            for worker in workers:
                worker.terminate()
                worker.wait(20)
            for log in logs:
                log.close()
    with store.read() as session:
        runs = session.execute(select(SyncRun.connection_id, SyncRun.status)).all()
        mirrored = session.scalar(select(func.count()).select_from(Item))
    store.dispose()
    assert len(runs) == CONNECTIONS, "every connection synced exactly once in the cycle"
    assert {connection_id for connection_id, _ in runs} == set(range(1, CONNECTIONS + 1))
    assert {status for _, status in runs} == {"ok"}
    assert mirrored == CONNECTIONS
    started = [(tmp_path / f"worker{n}.log").read_text() for n in range(2)]
    assert all("sync worker" in text for text in started), started
