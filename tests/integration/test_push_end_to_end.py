"""Push from end to end with Microsoft Graph: a bridge served over HTTPS subscribes after a run, Graph's
validation request reaches /hooks/microsoft and is answered as Graph requires (or there is no subscription),
and Graph's change notice, with the clientState the bridge chose, makes the next worker round sync the
connection at once, logged as a push."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bridge.secrets import Secrets, new_key
from bridge.settings import Settings
from bridge.store import calendars, connections, users
from bridge.store.db import Store
from bridge.store.models import Connection, Item, PushChannel, SyncRun
from bridge.sync.engine import Engine
from bridge.sync.worker import Worker
from bridge.web.app import create_app
from tests.scenarios.microsoft_driver import MicrosoftDriver, MicrosoftProvider, microsoft_provider
from tests.scenarios.world import single
from tests.standins import tls
from tests.standins.serve import serve

SOON = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MicrosoftProvider]:
    with microsoft_provider(tmp_path_factory.mktemp("graph")) as running:
        yield running


@pytest.fixture
def driver(provider: MicrosoftProvider) -> Iterator[MicrosoftDriver]:
    with provider.new_driver() as fresh:
        yield fresh


def subscriptions_of(driver: MicrosoftDriver) -> list[dict[str, str]]:
    """The stand-in's subscriptions to this driver's calendar (others' tests leave theirs behind)."""
    return [s for s in driver.standin.subscriptions() if driver.calendar_id in str(s["resource"])]


def connect(store: Store, secrets: Secrets, driver: MicrosoftDriver) -> int:
    account = driver.account()
    with store.write() as session:
        tenant = users.create_tenant(session, "Praxis Push")
        owner = users.create_user(session, tenant, login="dr-push", email="dr-push@example.org", password_hash="-")
        calendar = calendars.create_calendar(session, owner, "work", timezone="Europe/Berlin")
        connection = connections.create_connection(session, calendar, "microsoft")
        connections.set_account(session, connection, server_url=account.server_url,
                                remote_calendar=account.remote_calendar,
                                credentials=secrets.encrypt(json.dumps(dict(account.credentials))))
        return connection.id


def test_graph_validates_the_hook_and_its_notice_syncs_the_connection_at_once(
        store: Store, tmp_path: Path, driver: MicrosoftDriver) -> None:
    secrets = Secrets([new_key()])
    connection_id = connect(store, secrets, driver)
    with serve(create_app(Settings(data_dir=tmp_path), store), https=True) as origin:
        settings = Settings(data_dir=tmp_path, base_url=origin, provider_ca_file=tls.ca_file())
        engine = Engine(store, settings, secrets)
        assert engine.run(connection_id).status == "ok"

        (subscription,) = subscriptions_of(driver)  # made only after the hook echoed the validation
        assert subscription["notificationUrl"] == f"{origin}/hooks/microsoft"
        with store.read() as session:
            channel = session.scalars(select(PushChannel)).one()
            assert channel.channel_id == subscription["id"] and channel.connection_id == connection_id
            connection = session.get(Connection, connection_id)
            assert connection is not None and connection.next_due_at > datetime.now(UTC) + timedelta(seconds=60)

        driver.create("neu@outlook", single("neu@outlook", SOON, summary="Kontrolle"))
        assert driver.standin.notify_subscribers(driver.calendar_id) == [202]

        worker = Worker(store, lambda cid, trigger: engine.run(cid, trigger=trigger), concurrency=1)
        assert worker.run_pending() == 1  # due now, not at the next scheduled time
    with store.read() as session:
        last = session.scalars(select(SyncRun).order_by(SyncRun.id.desc()).limit(1)).one()
        assert (last.trigger, last.status, last.requests) == ("push", "ok", 1)
        assert session.scalars(select(Item.uid)).all() == ["neu@outlook"]


def test_a_hook_that_does_not_echo_the_validation_gets_no_subscription(
        store: Store, tmp_path: Path, driver: MicrosoftDriver) -> None:
    secrets = Secrets([new_key()])
    connection_id = connect(store, secrets, driver)
    with serve(create_app(Settings(data_dir=tmp_path), store), https=True) as origin:
        # a base URL whose /hooks/microsoft is not the bridge's: Graph's validation request finds nothing there
        settings = Settings(data_dir=tmp_path, base_url=origin + "/elsewhere", provider_ca_file=tls.ca_file())
        assert Engine(store, settings, secrets).run(connection_id).status == "ok"  # the run itself is fine
    assert subscriptions_of(driver) == []
    with store.read() as session:
        assert session.scalars(select(PushChannel)).all() == []
