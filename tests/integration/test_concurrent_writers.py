"""Two calbridge processes on one PostgreSQL, writing to one calendar at once."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from bridge.passwords import hash_password
from bridge.store import calendars, migrate, users
from bridge.store.db import Store
from bridge.store.models import Change, Item
from tests.conftest import PASSWORD, free_port
from tests.ics import event

pytestmark = pytest.mark.postgres
T0 = datetime(2026, 12, 1, 9, tzinfo=UTC)
CAL = "/dav/wanda/cal/"
RESPONSE = re.compile(r"<response><href>([^<]+)</href>(.*?)</response>", re.S)


@pytest.fixture
def servers(postgres_url: str, tmp_path: Path) -> Iterator[tuple[list[str], Store]]:
    store = Store(postgres_url)
    migrate.upgrade(store)
    with store.write() as session:
        tenant = users.create_tenant(session, "Busy")
        owner = users.create_user(session, tenant, login="wanda", email="w@example.org",
                                  password_hash=hash_password(PASSWORD))
        calendars.create_calendar(session, owner, "cal", timezone="UTC")
    env = {**os.environ, "BRIDGE_DATABASE_URL": postgres_url, "BRIDGE_DATA_DIR": str(tmp_path),
           "BRIDGE_AUTH_FAILURE_DELAY_SECONDS": "0", "BRIDGE_LOG_LEVEL": "warning"}
    env.pop("BRIDGE_CONFIG", None)
    ports = [free_port(), free_port()]
    processes = [subprocess.Popen([sys.executable, "-m", "bridge", "serve", "--port", str(port)], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for port in ports]
    urls = [f"http://127.0.0.1:{port}" for port in ports]
    try:
        for url, process in zip(urls, processes, strict=True):
            _wait_healthy(url, process)
        yield urls, store
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(10)
        store.dispose()


def _wait_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {process.stderr.read().decode() if process.stderr else ''}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("server did not become healthy")


def _sync(http: httpx.Client, token: str) -> tuple[str, dict[str, str | None]]:
    body = ('<?xml version="1.0" encoding="utf-8"?><D:sync-collection xmlns:D="DAV:">'
            f"<D:sync-token>{token}</D:sync-token><D:sync-level>1</D:sync-level>"
            "<D:prop><D:getetag/></D:prop></D:sync-collection>")
    answer = http.request("REPORT", CAL, content=body, headers={"Depth": "1"})
    assert answer.status_code == 207, answer.text
    new_token = answer.text.split("<sync-token>")[1].split("</sync-token>")[0]
    delta: dict[str, str | None] = {}
    for href, rest in RESPONSE.findall(answer.text):
        etag = re.search(r"<getetag>([^<]+)</getetag>", rest)
        delta[href] = None if etag is None or "HTTP/1.1 404" in rest else etag.group(1).replace("&quot;", '"')
    return new_token, delta


def test_two_processes_lose_nothing_and_a_syncing_client_sees_every_change(
        servers: tuple[list[str], Store]) -> None:
    urls, store = servers
    clients = [httpx.Client(base_url=url, auth=("wanda", PASSWORD), timeout=30) for url in urls]
    stop = threading.Event()
    mirror: dict[str, str | None] = {}
    tokens: list[int] = []

    def follow() -> None:
        token = ""
        turn = 0
        while True:
            last_round = stop.is_set()
            token, delta = _sync(clients[turn % 2], token)
            tokens.append(int(token.rsplit("-", 1)[1]))
            mirror.update(delta)
            turn += 1
            if last_round:
                return

    def write(n: int) -> None:
        http = clients[n % 2]
        href = f"{CAL}w-{n}.ics"
        assert http.put(href, content=event(f"w-{n}@test", T0, T0 + timedelta(hours=1)),
                        headers={"If-None-Match": "*"}).status_code == 201
        if n % 3 == 0:
            assert http.put(href, content=event(f"w-{n}@test", T0, T0 + timedelta(hours=2), "moved")
                            ).status_code == 204
        if n % 5 == 0:
            assert http.delete(href).status_code == 200

    def race_same_uid(n: int) -> int:
        return clients[n % 2].put(f"{CAL}dup-{n}.ics", content=event("contested@test", T0, T0 + timedelta(hours=1))
                                  ).status_code

    follower = threading.Thread(target=follow)
    follower.start()
    with ThreadPoolExecutor(6) as pool:
        list(pool.map(write, range(120)))
        contested = list(pool.map(race_same_uid, range(8)))
    stop.set()
    follower.join(60)

    # Lost updates: every If-Match'ed rival of one etag but one gets 412.
    first = clients[0].put(f"{CAL}shared.ics", content=event("shared@test", T0, T0 + timedelta(hours=1)))
    etag = first.headers["etag"]
    with ThreadPoolExecutor(6) as pool:
        outcomes = list(pool.map(
            lambda n: clients[n % 2].put(f"{CAL}shared.ics", headers={"If-Match": etag},
                                         content=event("shared@test", T0, T0 + timedelta(hours=1), f"v{n}")
                                         ).status_code, range(6)))
    assert sorted(outcomes) == [204, 412, 412, 412, 412, 412]
    _, final_delta = _sync(clients[1], "")
    for client in clients:
        client.close()

    assert sorted(contested).count(201) == 1 and set(contested) <= {201, 409}
    with store.read() as session:
        numbers = list(session.scalars(select(Change.number).order_by(Change.number)))
        rows = dict(session.execute(select(Item.href, Item.etag)).all())
        uids = list(session.scalars(select(Item.uid)))
    assert numbers == list(range(1, len(numbers) + 1)), "change numbers are gapless and unique"
    assert len(uids) == len(set(uids))
    assert len(tokens) > 2 and tokens == sorted(tokens), "the follower synced during the writes; tokens never go back"
    expected = {f"{CAL}w-{n}.ics" for n in range(120) if n % 5} | {
        f"{CAL}{href}" for href in rows if href.startswith("dup-")}
    seen_present = {href for href, etag_seen in mirror.items() if etag_seen is not None}
    assert seen_present == expected, "the follower missed or kept something"
    for href in expected:
        assert mirror[href] == rows[href.rsplit("/", 1)[1]]
    assert set(final_delta) == expected | {f"{CAL}shared.ics"}
