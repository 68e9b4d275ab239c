"""The storage plugin's backstop (issue 16): even a request the /dav gate did not stop cannot delete or
overwrite a calendar the booking engine depends on, nor make calendars past ``mkcalendar_limit``."""

from __future__ import annotations

import pytest
from radicale import config as radicale_config

from bridge.settings import Settings, replace
from bridge.storage_plugin.collection import SqlCollection
from bridge.storage_plugin.storage import SqlStorage
from bridge.store import calendars, items, users
from bridge.store.db import Store
from bridge.store.errors import CalendarProtected


@pytest.fixture
def storage(store: Store, settings: Settings) -> SqlStorage:
    with store.write() as session:
        tenant = users.create_tenant(session, "Praxis")
        weber = users.create_user(session, tenant, login="weber", email="weber@example.org", password_hash="!")
        calendars.create_calendar(session, weber, "praxis", timezone="Europe/Berlin")
    return SqlStorage(store, replace(settings, mkcalendar_limit=1), radicale_config.load())


def _collection(storage: SqlStorage, path: str) -> SqlCollection:
    found = next(iter(storage.discover(path)))
    assert isinstance(found, SqlCollection)
    return found


def _creators(store: Store) -> dict[str, str]:
    with store.read() as session:
        return {c.slug: c.creator for c, _ in calendars.calendars_with_owner(session)}


def test_a_provisioned_calendar_is_neither_deleted_nor_overwritten(storage: SqlStorage, store: Store) -> None:
    with storage.acquire_lock("w", "weber", path="/weber/praxis/"), pytest.raises(CalendarProtected):
        _collection(storage, "/weber/praxis/").delete()
    with storage.acquire_lock("w", "weber", path="/weber/praxis/"), pytest.raises(ValueError, match="provisioned"):
        storage.create_collection("/weber/praxis/", items=[], props={"tag": "VCALENDAR"})
    assert _creators(store) == {"praxis": "provisioned"}


def test_a_client_made_calendar_is_the_clients_to_delete_within_the_limit(
        storage: SqlStorage, store: Store) -> None:
    with storage.acquire_lock("w", "weber", path="/weber/own/"):
        storage.create_collection("/weber/own/", props={"tag": "VCALENDAR"})
    assert _creators(store) == {"praxis": "provisioned", "own": "client"}
    with storage.acquire_lock("w", "weber", path="/weber/more/"), pytest.raises(ValueError, match="at most 1"):
        storage.create_collection("/weber/more/", props={"tag": "VCALENDAR"})
    with storage.acquire_lock("w", "weber", path="/weber/own/"):
        _collection(storage, "/weber/own/").delete()
    assert _creators(store) == {"praxis": "provisioned"}
    with store.read() as session:
        weber = users.user_by_login(session, "weber")
        assert weber is not None and calendars.client_made_count(session, weber.id) == 0
        praxis = calendars.calendar_of(session, weber.id, "praxis")
        assert praxis is not None and items.all_of(session, praxis.id) == []
