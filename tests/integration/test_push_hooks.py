"""Push notices (/hooks/google, /hooks/microsoft): a notice with the channel's token makes the connection's
next run due now and that run is logged as a push; a wrong token or an unknown channel changes nothing; the
Graph validation handshake is echoed; channels are made only with an HTTPS base URL and renewed a day before
they expire, the old one stopped after the new one exists."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from bridge.adapters.base import Channel
from bridge.secrets import Secrets, new_key
from bridge.settings import Settings, replace
from bridge.store import calendars, channels, connections, users
from bridge.store.db import Store
from bridge.store.models import Connection, PushChannel, SyncRun
from bridge.sync import push
from bridge.sync.engine import Engine
from tests.conftest import Bridge
from tests.servers import ics_feed_server

LATER = datetime(2030, 1, 1, tzinfo=UTC)


def connection_with_channel(store: Store, provider: str, channel_id: str, token: str) -> int:
    with store.write() as session:
        tenant = users.create_tenant(session, f"Praxis {channel_id}")
        owner = users.create_user(session, tenant, login=f"dr-{channel_id}", email="dr@example.org", password_hash="-")
        calendar = calendars.create_calendar(session, owner, "work", timezone="Europe/Berlin")
        connection = connections.create_connection(session, calendar, provider)
        connection.next_due_at = LATER
        channels.keep(session, connection, channel_id=channel_id, resource_id="res-1", token=token,
                      expires_at=LATER)
        return connection.id


def due(store: Store, connection_id: int) -> tuple[bool, datetime | None]:
    with store.read() as session:
        connection = session.get(Connection, connection_id)
        assert connection is not None
        return connection.push_pending, connection.next_due_at


def google_notice(bridge: Bridge, channel_id: str, token: str, state: str = "exists") -> httpx.Response:
    return httpx.post(f"{bridge.url}/hooks/google", headers={
        "X-Goog-Channel-ID": channel_id, "X-Goog-Channel-Token": token, "X-Goog-Resource-State": state,
        "X-Goog-Resource-ID": "res-1", "X-Goog-Message-Number": "2"})


def test_a_google_notice_with_the_channels_token_makes_the_next_run_due_now(bridge: Bridge) -> None:
    connection_id = connection_with_channel(bridge.store, "google", "chan-g1", "s3cret-token")
    assert google_notice(bridge, "chan-g1", "s3cret-token", state="sync").status_code == 200
    assert due(bridge.store, connection_id) == (False, LATER)  # the first message only says it works
    assert google_notice(bridge, "chan-g1", "s3cret-token").status_code == 200
    pending, next_due = due(bridge.store, connection_id)
    assert pending and next_due is not None and next_due < datetime.now(UTC) + timedelta(seconds=1)


@pytest.mark.parametrize(("channel_id", "token"), [("chan-g2", "wrong"), ("no-such-channel", "s3cret-token"),
                                                   ("chan-g2", "")])
def test_a_google_notice_with_a_wrong_token_or_channel_changes_nothing(bridge: Bridge, channel_id: str,
                                                                      token: str) -> None:
    connection_id = connection_with_channel(bridge.store, "google", "chan-g2", "s3cret-token")
    assert google_notice(bridge, channel_id, token).status_code == 404
    assert due(bridge.store, connection_id) == (False, LATER)


def test_a_channel_of_one_provider_is_not_reached_through_the_others_hook(bridge: Bridge) -> None:
    connection_id = connection_with_channel(bridge.store, "microsoft", "sub-x", "state-x")
    assert google_notice(bridge, "sub-x", "state-x").status_code == 404
    assert due(bridge.store, connection_id) == (False, LATER)


def test_graphs_validation_request_is_echoed_as_plain_text(bridge: Bridge) -> None:
    answer = httpx.post(f"{bridge.url}/hooks/microsoft", params={"validationToken": "Validation: Token <x>&y"})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    assert answer.text == "Validation: Token <x>&y"


def test_graph_notices_need_the_subscriptions_client_state(bridge: Bridge) -> None:
    connection_id = connection_with_channel(bridge.store, "microsoft", "sub-1", "client-state-1")
    forged = {"value": [{"subscriptionId": "sub-1", "clientState": "guess", "changeType": "updated"}]}
    assert httpx.post(f"{bridge.url}/hooks/microsoft", json=forged).status_code == 403
    assert due(bridge.store, connection_id) == (False, LATER)
    real = {"value": [{"subscriptionId": "sub-1", "clientState": "client-state-1", "changeType": "updated",
                       "resource": "me/events/AAA"}]}
    assert httpx.post(f"{bridge.url}/hooks/microsoft", json=real).status_code == 202
    assert due(bridge.store, connection_id)[0]


@pytest.mark.parametrize("body", [b"not json", b'{"value": [{"clientState": "x"}]}', b'{"nothing": 1}'])
def test_a_malformed_graph_notice_is_refused(bridge: Bridge, body: bytes) -> None:
    assert httpx.post(f"{bridge.url}/hooks/microsoft", content=body).status_code == 400


def test_an_oversized_graph_notice_is_refused(bridge: Bridge) -> None:
    body = json.dumps({"value": [{"subscriptionId": "s", "clientState": "x" * 300_000}]})
    assert httpx.post(f"{bridge.url}/hooks/microsoft", content=body).status_code == 413


def test_a_run_made_due_by_a_notice_is_logged_as_a_push(bridge: Bridge) -> None:
    with ics_feed_server("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//f//EN\r\nEND:VCALENDAR\r\n") as feed:
        connection_id = connection_with_channel(bridge.store, "ics", "chan-ics", "tok")
        with bridge.store.write() as session:
            connection = session.get(Connection, connection_id)
            assert connection is not None
            connections.set_account(session, connection, server_url="", remote_calendar=feed.url)
        assert google_notice(bridge, "chan-ics", "tok").status_code == 404  # an ics channel is not google's
        with bridge.store.write() as session:
            assert channels.notice(session, "ics", "chan-ics", "tok", datetime.now(UTC)) == connection_id
        engine = Engine(bridge.store, bridge.settings, Secrets([new_key()]))
        assert engine.run(connection_id).status == "ok"
        assert engine.run(connection_id).status == "ok"
        with bridge.store.read() as session:
            triggers = list(session.scalars(select(SyncRun.trigger).where(SyncRun.connection_id == connection_id)
                                            .order_by(SyncRun.id)))
        assert triggers == ["push", "schedule"]
        assert due(bridge.store, connection_id)[0] is False


# -- keeping the channel ----------------------------------------------------------------------------------

@dataclass
class RecordingProvider:
    """The provider's side of watch/unwatch, recording what it was asked (the adapters' own watch calls are
    tested against the stand-ins)."""

    lifetime: timedelta
    now: datetime
    watched: list[tuple[str, str]] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)

    def watch(self, address: str, token: str) -> Channel:
        self.watched.append((address, token))
        return Channel(f"chan-{len(self.watched)}", "res", self.now + self.lifetime)

    def unwatch(self, channel: Channel) -> None:
        self.stopped.append(channel.id)


def test_channels_need_a_public_https_base_url() -> None:
    settings = Settings()
    assert push.hook_address(settings, "google") is None
    assert push.hook_address(replace(settings, base_url="http://bridge.example"), "google") is None
    assert push.hook_address(replace(settings, base_url="https://bridge.example/"), "microsoft") == \
        "https://bridge.example/hooks/microsoft"


def test_a_channel_is_made_once_renewed_a_day_before_expiry_and_the_old_one_stopped(store: Store) -> None:
    now = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
    connection_id = connection_with_channel(store, "google", "seed", "t")
    with store.write() as session:  # start without a channel
        session.delete(channels.of_connection(session, connection_id))
    provider = RecordingProvider(timedelta(days=7), now)
    address = "https://bridge.example/hooks/google"
    push.keep_channel(store, provider, connection_id, address, now)
    push.keep_channel(store, provider, connection_id, address, now + timedelta(days=5))
    assert [a for a, _ in provider.watched] == [address] and provider.stopped == []
    push.keep_channel(store, provider, connection_id, address, now + timedelta(days=6, hours=1))
    assert len(provider.watched) == 2 and provider.stopped == ["chan-1"]
    with store.read() as session:
        (kept,) = session.scalars(select(PushChannel).where(PushChannel.connection_id == connection_id)).all()
    assert kept.channel_id == "chan-2"
    token = provider.watched[1][1]
    assert kept.token_hash == channels.token_hash(token) and token not in kept.token_hash
