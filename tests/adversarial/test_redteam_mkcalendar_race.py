"""Red team: racing MKCALENDAR, extended MKCOL and whole-calendar PUT past ``mkcalendar_limit``."""

from __future__ import annotations

import concurrent.futures
from pathlib import Path

import pytest

from bridge.settings import Settings
from bridge.store import calendars, users
from tests.adversarial.test_redteam_dav_methods import EMPTY
from tests.conftest import Bridge

LIMIT = 2
MKCOL = ('<?xml version="1.0"?><D:mkcol xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop>'
         '<D:resourcetype><D:collection/><C:calendar/></D:resourcetype></D:prop></D:set></D:mkcol>')


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, max_body_bytes=1024 * 1024, auth_failure_delay_seconds=0,
                    provider_private_networks=True, mkcalendar_limit=LIMIT)


def make(bridge: Bridge, n: int) -> int:
    with bridge.client("weber") as weber:
        if n % 3 == 0:
            return weber.request("MKCALENDAR", f"/dav/weber/c{n}/").status_code
        if n % 3 == 1:
            return weber.request("MKCOL", f"/dav/weber/c{n}/", content=MKCOL).status_code
        return weber.put(f"/dav/weber/c{n}/", content=EMPTY, headers={"Content-Type": "text/calendar"}).status_code


def test_racing_creations_stop_at_the_limit(bridge: Bridge) -> None:
    bridge.add_user("Praxis", "weber")
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda n: make(bridge, n), range(16)))
    assert all(status < 500 for status in statuses), statuses
    with bridge.store.read() as session:
        owner = users.user_by_login(session, "weber")
        assert owner is not None
        assert calendars.client_made_count(session, owner.id) == LIMIT
    with bridge.client("weber") as weber:  # deleting one frees a place, and only one
        assert weber.delete("/dav/weber/" + next(
            c.slug for c in _client_made(bridge)) + "/").status_code in (200, 204)
        assert make(bridge, 99) in (200, 201, 204)
        assert make(bridge, 100) == 403


def _client_made(bridge: Bridge) -> list[calendars.Calendar]:
    with bridge.store.read() as session:
        owner = users.user_by_login(session, "weber")
        assert owner is not None
        return [c for c in calendars.calendars_of_owner(session, owner.id) if c.creator == "client"]
