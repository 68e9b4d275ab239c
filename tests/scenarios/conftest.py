"""Fixtures of the provider-neutral scenarios: one running provider per session and name, a fresh remote
calendar (a driver) per test, and a world connecting it to a fresh calendar on the parametrised store.

A provider joins the suite with one entry in ``PROVIDERS``: a name and a function that starts it for the
session (a context manager yielding a :class:`tests.scenarios.driver.Provider`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from bridge.store.db import Store
from tests.scenarios.caldav_driver import caldav_provider
from tests.scenarios.driver import Provider, RemoteDriver
from tests.scenarios.ews_driver import ews_provider
from tests.scenarios.google_driver import google_provider
from tests.scenarios.microsoft_driver import microsoft_provider
from tests.scenarios.world import World, make_world

PROVIDERS: dict[str, Callable[[Path], AbstractContextManager[Provider]]] = {
    "radicale": lambda directory: caldav_provider("radicale", directory),
    "xandikos": lambda directory: caldav_provider("xandikos", directory),
    "google": lambda directory: google_provider(directory),
    "microsoft": lambda directory: microsoft_provider(directory),
    "exchange": lambda directory: ews_provider(directory),
}


@pytest.fixture(scope="session", params=sorted(PROVIDERS))
def provider(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    with PROVIDERS[request.param](tmp_path_factory.mktemp(request.param)) as running:
        yield running


@pytest.fixture
def driver(provider: Provider) -> Iterator[RemoteDriver]:
    with provider.new_driver() as fresh:
        yield fresh


@pytest.fixture
def world(store: Store, driver: RemoteDriver, tmp_path: Path) -> World:
    return make_world(store, driver, tmp_path)
