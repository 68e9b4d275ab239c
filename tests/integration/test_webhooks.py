"""Webhooks: a tenant's changes are posted to its URL, signed (Standard Webhooks), retried with the
same webhook-id until a 2xx, never to another tenant's receiver, with a secret stored encrypted that
``secrets rotate`` keeps working. A real receiver listens on loopback; clocks are injected, so no
test waits for a back-off."""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge import bookings, changefeed, removal, webhooks
from bridge.cli import main
from bridge.secrets import Secrets, new_key
from bridge.settings import Settings
from bridge.storage_plugin.importer import import_calendar
from bridge.store import bookings as booking_rows
from bridge.store import calendars, changes, users
from bridge.store.db import Store
from bridge.store.models import Calendar, Webhook
from tests.ics import event

T0 = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
SLOT = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=3)


# -- a receiver on loopback -----------------------------------------------------------------------

@dataclass(frozen=True)
class Delivery:
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.body)
        return data


class Receiver:
    """Records every POST and answers with the queued statuses (then 204)."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self.statuses: deque[int] = deque()
        self.arrived = threading.Event()
        self.closed = False
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                receiver.deliveries.append(Delivery({k.lower(): v for k, v in self.headers.items()}, body))
                status = receiver.statuses.popleft() if receiver.statuses else 204
                self.send_response(status)
                if status in (301, 302, 307, 308):
                    self.send_header("location", receiver.url + "elsewhere")
                self.send_header("content-length", "0")
                self.end_headers()
                receiver.arrived.set()

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/calbridge/"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.close()


@pytest.fixture
def other_receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.close()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client() as http:
        yield http


@pytest.fixture
def secrets() -> Secrets:
    return Secrets([new_key()])


def verified(secret: str, delivery: Delivery) -> bool:
    """The Standard Webhooks check, written out here rather than borrowed from bridge.webhooks."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{delivery.headers['webhook-id']}.{delivery.headers['webhook-timestamp']}.".encode() + delivery.body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    offered = [part.partition(",") for part in delivery.headers["webhook-signature"].split()]
    return any(version == "v1" and hmac.compare_digest(value, expected) for version, _, value in offered)


# -- a tenant and what changes in it --------------------------------------------------------------

def tenant(store: Store, name: str, login: str) -> tuple[int, int]:
    """A tenant with one calendar; (tenant id, calendar id)."""
    with store.write() as session:
        row = users.create_tenant(session, name)
        owner = users.create_user(session, row, login=login, email=f"{login}@example.org", password_hash="x")
        return row.id, calendars.create_calendar(session, owner, "cal", timezone="Europe/Berlin").id


def book(store: Store, calendar_id: int, hour: int, key: str) -> str:
    with store.write() as session:
        calendar = session.get(Calendar, calendar_id)
        assert calendar is not None
        _lock(session, calendar)
        start = SLOT + timedelta(hours=hour)
        booking, _ = bookings.create(session, calendar, bookings.BookingRequest(
            start, start + timedelta(minutes=30), "Erika Mustermann", "erika@example.com"), key, T0)
        return booking.public_id


def cancel(store: Store, calendar_id: int, public_id: str) -> None:
    with store.write() as session:
        calendar = session.get(Calendar, calendar_id)
        assert calendar is not None
        _lock(session, calendar)
        booking = booking_rows.by_public_id(session, calendar.tenant_id, public_id)
        assert booking is not None
        bookings.cancel(session, calendar, booking, T0)


def _lock(session: Any, calendar: Calendar) -> None:
    owner = next(owner for row, owner in calendars.calendars_with_owner(session, calendar.tenant_id)
                 if row.id == calendar.id)
    calendars.lock_for_write(session, [(owner.login, calendar.slug)])


def set_hook(store: Store, tenant_id: int, url: str, secrets: Secrets) -> str:
    with store.write() as session:
        return webhooks.set_webhook(session, tenant_id, url, secrets)[1]


def hook(store: Store, tenant_id: int) -> Webhook:
    with store.read() as session:
        row = webhooks.webhook_of(session, tenant_id)
        assert row is not None
        return row


def hrefs(delivery: Delivery) -> list[tuple[str, bool, dict[str, str] | None]]:
    return [(change["href"], change["deleted"], change["booking"]) for change in delivery.json["changes"]]


# -- the tests ------------------------------------------------------------------------------------

def test_bookings_and_an_item_change_reach_the_receiver_signed(store: Store, receiver: Receiver,
                                                               client: httpx.Client, secrets: Secrets,
                                                               tmp_path: Path) -> None:
    tenant_id, calendar_id = tenant(store, "Salon", "nora")
    book(store, calendar_id, 8, "before")  # before the webhook: not posted
    secret = set_hook(store, tenant_id, receiver.url, secrets)
    assert secret.startswith("whsec_") and len(base64.b64decode(secret[6:])) == 32

    booked = book(store, calendar_id, 9, "k1")
    assert webhooks.deliver_due(store, secrets, client, T0) == 1
    [first] = receiver.deliveries
    assert verified(secret, first)
    assert first.headers["content-type"] == "application/json"
    assert first.headers["webhook-timestamp"] == str(int(T0.timestamp()))
    assert first.headers["webhook-id"].startswith("msg_")
    assert first.json["more"] is False and first.json["restarted"] is False
    assert hrefs(first) == [(f"/dav/nora/cal/{booked}.ics", False, {"id": booked, "status": "confirmed"})]
    assert first.json["changes"][0]["number"] == 2 and first.json["changes"][0]["calendar"] == calendar_id
    assert hook(store, tenant_id).cursor == first.json["next"]

    cancel(store, calendar_id, booked)
    import_calendar(store, Settings(data_dir=tmp_path), "nora", "cal",
                    event("lunch", SLOT + timedelta(hours=12), SLOT + timedelta(hours=13)))
    assert webhooks.deliver_due(store, secrets, client, T0 + timedelta(minutes=1)) == 1
    second = receiver.deliveries[1]
    assert verified(secret, second) and second.headers["webhook-id"] != first.headers["webhook-id"]
    [(cancelled, deleted, status), (lunch, _, none)] = hrefs(second)
    assert (cancelled, deleted, status) == (f"/dav/nora/cal/{booked}.ics", True, {"id": booked, "status": "cancelled"})
    assert lunch.startswith("/dav/nora/cal/") and none is None
    # The payload's cursor is a feed cursor: the booking engine may read on from it with GET /changes.
    with store.read() as session:
        assert changefeed.page(session, tenant_id, changefeed.decode_cursor(second.json["next"])).changes == []

    state = hook(store, tenant_id)
    assert (state.failures, state.last_status, state.last_error) == (0, 204, None)
    assert webhooks.deliver_due(store, secrets, client, T0 + timedelta(minutes=2)) == 0
    assert len(receiver.deliveries) == 2


def test_removing_a_calendar_posts_each_booking_it_cancelled(store: Store, receiver: Receiver,
                                                              client: httpx.Client, secrets: Secrets) -> None:
    tenant_id, calendar_id = tenant(store, "Salon", "nora")
    booked = [book(store, calendar_id, 9, "k1"), book(store, calendar_id, 10, "k2")]
    set_hook(store, tenant_id, receiver.url, secrets)
    with store.write() as session:
        calendar = session.get(Calendar, calendar_id)
        owner = users.user_by_login(session, "nora")
        assert calendar is not None and owner is not None
        removal.remove_calendar(session, calendar, owner, T0, confirmed=True, changes_kept_days=30,
                                keys=removal.ChannelKeys(secrets))

    assert webhooks.deliver_due(store, secrets, client, T0) == 1
    [posted] = receiver.deliveries
    assert hrefs(posted) == [(f"/dav/nora/cal/{public_id}.ics", True, {"id": public_id, "status": "cancelled"})
                             for public_id in booked]


def test_a_failing_receiver_gets_the_same_page_again_and_the_cursor_waits_for_a_2xx(
        store: Store, receiver: Receiver, client: httpx.Client, secrets: Secrets) -> None:
    tenant_id, calendar_id = tenant(store, "Salon", "nora")
    secret = set_hook(store, tenant_id, receiver.url, secrets)
    start = hook(store, tenant_id).cursor
    book(store, calendar_id, 9, "k1")
    receiver.statuses.extend([500, 503])

    assert webhooks.deliver_due(store, secrets, client, T0) == 0
    failed = hook(store, tenant_id)
    assert (failed.cursor, failed.failures, failed.last_status, failed.last_error) == (start, 1, 500, "HTTP 500")
    assert failed.next_attempt_at == T0 + webhooks.retry_delay(1)
    assert webhooks.deliver_due(store, secrets, client, T0 + webhooks.retry_delay(1) / 2) == 0  # backing off
    assert len(receiver.deliveries) == 1

    again = T0 + webhooks.retry_delay(1)
    assert webhooks.deliver_due(store, secrets, client, again) == 0
    assert (hook(store, tenant_id).cursor, hook(store, tenant_id).failures) == (start, 2)
    first, second = receiver.deliveries
    assert (second.headers["webhook-id"], second.body) == (first.headers["webhook-id"], first.body)  # the same page
    assert second.headers["webhook-timestamp"] == str(int(again.timestamp()))

    book(store, calendar_id, 11, "k2")  # the page grows: another page, another id
    last = again + webhooks.retry_delay(2)
    assert webhooks.deliver_due(store, secrets, client, last - timedelta(seconds=1)) == 0
    assert webhooks.deliver_due(store, secrets, client, last) == 1
    third = receiver.deliveries[2]
    assert all(verified(secret, delivery) for delivery in receiver.deliveries)
    assert len(first.json["changes"]) == 1 and len(third.json["changes"]) == 2
    assert third.headers["webhook-id"] != first.headers["webhook-id"]
    done = hook(store, tenant_id)
    assert (done.cursor, done.failures, done.last_status, done.last_error) == (third.json["next"], 0, 204, None)
    assert webhooks.deliver_due(store, secrets, client, last) == 0 and len(receiver.deliveries) == 3


def test_the_back_off_doubles_up_to_an_hour() -> None:
    assert [webhooks.retry_delay(n).total_seconds() for n in (1, 2, 3, 9, 10, 1000)] == [
        10, 20, 40, 2560, 3600, 3600]


def test_a_redirect_is_not_followed_and_a_receiver_that_is_down_is_retried(
        store: Store, receiver: Receiver, client: httpx.Client, secrets: Secrets) -> None:
    tenant_id, calendar_id = tenant(store, "Salon", "nora")
    set_hook(store, tenant_id, receiver.url, secrets)
    book(store, calendar_id, 9, "k1")
    receiver.statuses.append(302)
    assert webhooks.deliver_due(store, secrets, client, T0) == 0
    assert len(receiver.deliveries) == 1  # the Location was not asked
    assert (hook(store, tenant_id).last_status, hook(store, tenant_id).failures) == (302, 1)

    receiver.close()
    down = T0 + webhooks.retry_delay(1)
    assert webhooks.deliver_due(store, secrets, client, down) == 0
    state = hook(store, tenant_id)
    assert (state.failures, state.last_status, state.last_error) == (2, None, "ConnectError")
    assert state.next_attempt_at == down + webhooks.retry_delay(2)


def test_nothing_is_posted_when_nothing_changed(store: Store, receiver: Receiver, client: httpx.Client,
                                                secrets: Secrets) -> None:
    tenant_id, calendar_id = tenant(store, "Salon", "nora")
    book(store, calendar_id, 9, "k1")
    set_hook(store, tenant_id, receiver.url, secrets)
    for minutes in range(3):
        assert webhooks.deliver_due(store, secrets, client, T0 + timedelta(minutes=minutes)) == 0
    with store.write() as session:  # a property change moves the counter but is no item change
        calendar = session.get(Calendar, calendar_id)
        assert calendar is not None
        calendars.set_props(session, calendar, {"D:displayname": "Salon"})
    assert webhooks.deliver_due(store, secrets, client, T0 + timedelta(minutes=5)) == 0
    assert receiver.deliveries == []
    assert changefeed.decode_cursor(hook(store, tenant_id).cursor)[calendar_id][1] == 2  # moved past it


def test_a_tenants_changes_never_reach_another_tenants_webhook(store: Store, receiver: Receiver,
                                                               other_receiver: Receiver, client: httpx.Client,
                                                               secrets: Secrets) -> None:
    a, a_calendar = tenant(store, "A", "anna")
    b, b_calendar = tenant(store, "B", "bert")
    a_secret = set_hook(store, a, receiver.url, secrets)
    b_secret = set_hook(store, b, other_receiver.url, secrets)
    a_booking = book(store, a_calendar, 9, "same-key")
    assert webhooks.deliver_due(store, secrets, client, T0) == 1
    assert other_receiver.deliveries == []
    b_booking = book(store, b_calendar, 9, "same-key")
    assert webhooks.deliver_due(store, secrets, client, T0 + timedelta(minutes=1)) == 1
    [for_a] = receiver.deliveries
    [for_b] = other_receiver.deliveries
    assert verified(a_secret, for_a) and not verified(b_secret, for_a)
    assert verified(b_secret, for_b) and not verified(a_secret, for_b)
    assert [c["booking"]["id"] for c in for_a.json["changes"]] == [a_booking]
    assert [(c["calendar"], c["booking"]["id"]) for c in for_b.json["changes"]] == [(b_calendar, b_booking)]
    assert all(change["href"].startswith("/dav/bert/") for change in for_b.json["changes"])


def test_an_expired_cursor_restarts_from_the_oldest_kept_change_and_says_so(
        store: Store, receiver: Receiver, client: httpx.Client, secrets: Secrets) -> None:
    tenant_id, calendar_id = tenant(store, "Salon", "nora")
    set_hook(store, tenant_id, receiver.url, secrets)
    book(store, calendar_id, 9, "k1")
    assert webhooks.deliver_due(store, secrets, client, T0) == 1
    book(store, calendar_id, 10, "k2")  # never delivered: forgotten below
    with store.write() as session:
        calendar = session.get(Calendar, calendar_id)
        assert calendar is not None
        changes.prune(session, calendar, older_than=datetime.now(UTC) + timedelta(seconds=1))
    third = book(store, calendar_id, 11, "k3")
    assert webhooks.deliver_due(store, secrets, client, T0 + timedelta(minutes=1)) == 1
    restarted = receiver.deliveries[1]
    assert restarted.json["restarted"] is True
    assert [(c["number"], c["booking"]["id"]) for c in restarted.json["changes"]] == [(3, third)]
    assert webhooks.deliver_due(store, secrets, client, T0 + timedelta(minutes=2)) == 0


def test_pages_follow_one_another_at_once(store: Store, receiver: Receiver, client: httpx.Client,
                                          secrets: Secrets, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(webhooks, "PAGE_LIMIT", 1)
    tenant_id, calendar_id = tenant(store, "Salon", "nora")
    set_hook(store, tenant_id, receiver.url, secrets)
    booked = [book(store, calendar_id, 9 + index, f"k{index}") for index in range(2)]
    assert webhooks.deliver_due(store, secrets, client, T0) == 1
    assert webhooks.deliver_due(store, secrets, client, T0) == 1  # due again at once
    assert webhooks.deliver_due(store, secrets, client, T0) == 0
    assert [d.json["more"] for d in receiver.deliveries] == [True, False]
    assert [d.json["changes"][0]["booking"]["id"] for d in receiver.deliveries] == booked


def test_a_claimed_webhook_waits_for_its_sender_until_the_claim_runs_out(
        store: Store, receiver: Receiver, client: httpx.Client, secrets: Secrets) -> None:
    tenant_id, calendar_id = tenant(store, "Salon", "nora")
    set_hook(store, tenant_id, receiver.url, secrets)
    book(store, calendar_id, 9, "k1")
    assert webhooks._claim(store, T0, 10) == [hook(store, tenant_id).id]  # a sender that then died
    assert webhooks.deliver_due(store, secrets, client, T0) == 0 and receiver.deliveries == []
    assert webhooks.deliver_due(store, secrets, client, T0 + timedelta(seconds=webhooks.CLAIM_SECONDS)) == 1


def test_the_sender_thread_delivers_and_stops(store: Store, receiver: Receiver, secrets: Secrets) -> None:
    tenant_id, calendar_id = tenant(store, "Salon", "nora")
    set_hook(store, tenant_id, receiver.url, secrets)
    book(store, calendar_id, 9, "k1")
    sender = webhooks.WebhookSender(store, secrets, poll_seconds=0.05)
    stop = threading.Event()
    thread = threading.Thread(target=sender.serve, args=(stop,), daemon=True)
    thread.start()
    try:
        assert receiver.arrived.wait(30)
    finally:
        stop.set()
        thread.join(30)
        sender.close()
    assert not thread.is_alive() and len(receiver.deliveries) == 1


@pytest.mark.parametrize("url", ["ftp://example.org/hook", "file:///etc/passwd", "example.org/hook", "",
                                 "https://user:pw@example.org/hook", "http:///no-host"])
def test_only_http_and_https_urls_are_taken(url: str) -> None:
    with pytest.raises(ValueError):
        webhooks.check_url(url)


# -- the secret at rest and the CLI ---------------------------------------------------------------

def _cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def cli_env(store: Store, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> str:
    """The CLI on the test's database with one key; returns the key."""
    for name in ("BRIDGE_CONFIG",):
        monkeypatch.delenv(name, raising=False)
    key = new_key()
    monkeypatch.setenv("BRIDGE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("BRIDGE_DATABASE_URL", store.url.render_as_string(hide_password=False))
    monkeypatch.setenv("BRIDGE_SECRET_KEYS", key)
    return key


def test_the_secret_is_stored_encrypted_and_secrets_rotate_keeps_it_working(
        store: Store, receiver: Receiver, client: httpx.Client, cli_env: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    tenant_id, calendar_id = tenant(store, "Salon", "nora")
    code, secret, _ = _cli(monkeypatch, capsys, "webhook", "set", "--tenant", "Salon", "--url", receiver.url)
    secret = secret.strip()
    assert code == 0 and secret.startswith("whsec_")
    stored = hook(store, tenant_id).secret
    assert secret not in stored and secret[6:] not in stored and "whsec" not in stored
    assert Secrets([cli_env]).decrypt(stored) == secret

    new = new_key()
    monkeypatch.setenv("BRIDGE_SECRET_KEYS", f"{new},{cli_env}")
    code, out, _ = _cli(monkeypatch, capsys, "secrets", "rotate")
    assert code == 0 and "1 webhook secrets re-encrypted" in out
    rotated = hook(store, tenant_id).secret
    assert rotated != stored and Secrets([new]).decrypt(rotated) == secret

    book(store, calendar_id, 9, "k1")
    assert webhooks.deliver_due(store, Secrets([new]), client, T0) == 1  # the old key is gone
    assert verified(secret, receiver.deliveries[0])


def test_webhook_set_show_remove(store: Store, receiver: Receiver, client: httpx.Client, cli_env: str,
                                 monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    tenant_id, calendar_id = tenant(store, "Salon", "nora")
    code, _, err = _cli(monkeypatch, capsys, "webhook", "set", "--tenant", "Salon", "--url", "ftp://example.org/")
    assert code == 2 and "http" in err
    code, _, err = _cli(monkeypatch, capsys, "webhook", "show", "--tenant", "Salon")
    assert code == 2 and "no webhook" in err
    code, secret, _ = _cli(monkeypatch, capsys, "webhook", "set", "--tenant", "Salon", "--url", receiver.url)
    assert code == 0

    receiver.statuses.append(500)
    book(store, calendar_id, 9, "k1")
    webhooks.deliver_due(store, Secrets([cli_env]), client, T0)
    code, out, _ = _cli(monkeypatch, capsys, "webhook", "show", "--tenant", "Salon")
    assert code == 0 and secret.strip() not in out and "whsec" not in out
    assert f"url\t{receiver.url}" in out and "failing: 1 failed" in out and "HTTP 500" in out
    assert f"calendar {calendar_id} (nora/cal)\tdelivered through change 0 of 1" in out

    code, again, _ = _cli(monkeypatch, capsys, "webhook", "set", "--tenant", "Salon", "--url", receiver.url + "v2")
    assert code == 0 and again != secret
    replaced = hook(store, tenant_id)
    assert (replaced.url, replaced.failures) == (receiver.url + "v2", 0)
    assert changefeed.decode_cursor(replaced.cursor) == {}  # kept: the booking is still pending

    code, out, _ = _cli(monkeypatch, capsys, "webhook", "remove", "--tenant", "Salon")
    assert code == 0 and "removed" in out
    with store.read() as session:
        assert webhooks.webhook_of(session, tenant_id) is None
    assert _cli(monkeypatch, capsys, "webhook", "remove", "--tenant", "Salon")[0] == 2
