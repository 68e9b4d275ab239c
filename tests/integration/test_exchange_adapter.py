"""The EWS adapter against the EWS stand-in (tests/standins/ews.py) over loopback TLS: what a connection to an
Exchange Server mailbox does, seen from the engine's side (deltas, writes, errors) and from the server's (which
SOAP operations it received)."""

from __future__ import annotations

import gc
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import icalendar
import pytest
from sqlalchemy import select

from bridge.adapters import Account, ca_bundle, open_adapter
from bridge.adapters.base import AuthExpired, Permanent, RateLimited, TokenInvalid, Transient, Window
from bridge.adapters.exchange import ExchangeAdapter, Quirks
from bridge.cli import main
from bridge.store.db import Store
from bridge.store.models import Connection
from bridge.sync import connection_admin
from tests.scenarios.ews_driver import EwsDriver, EwsProvider
from tests.scenarios.world import NOW, World, make_world
from tests.scenarios.world import single as world_single_text
from tests.standins import tls
from tests.standins.ews import EwsStandIn, Mailbox, RunningEws, ews_standin

WINDOW = Window(datetime(2026, 10, 25, tzinfo=UTC), datetime(2028, 5, 18, tzinfo=UTC))
VERSION = "15.1.2507.6"


@pytest.fixture(scope="module")
def running() -> Iterator[RunningEws]:
    with ews_standin() as served:
        yield served


@pytest.fixture
def standin(running: RunningEws) -> EwsStandIn:
    return running.standin


@pytest.fixture
def mailbox(standin: EwsStandIn) -> Mailbox:
    return standin.new_mailbox()


def credentials(mailbox: Mailbox, **changes: str) -> dict[str, str]:
    return {"auth": "basic", "username": mailbox.username, "password": mailbox.password, "email": mailbox.email,
            "version": VERSION, **changes}


def adapter(running: RunningEws, mailbox: Mailbox, **changes: str) -> ExchangeAdapter:
    return ExchangeAdapter(credentials(mailbox, **changes), mailbox.calendar_id, server_url=running.ews_url,
                           ca_bundle=ca_bundle(tls.ca_file()))


@pytest.fixture
def ews(running: RunningEws, mailbox: Mailbox) -> Iterator[ExchangeAdapter]:
    made = adapter(running, mailbox)
    yield made
    made.close()


def event(uid: str, start: datetime, *, minutes: int = 60, summary: str = "Termin",
          extra: str = "") -> icalendar.Calendar:
    fmt = "%Y%m%dT%H%M%SZ"
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//EN", "BEGIN:VEVENT", f"UID:{uid}",
             "DTSTAMP:20261124T080000Z", f"DTSTART:{start.strftime(fmt)}",
             f"DTEND:{(start + timedelta(minutes=minutes)).strftime(fmt)}", f"SUMMARY:{summary}",
             *([extra] if extra else []), "END:VEVENT", "END:VCALENDAR", ""]
    return icalendar.Calendar.from_ical("\r\n".join(lines))


SERIES = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//test//EN
BEGIN:VEVENT
UID:standup@phone
DTSTAMP:20261124T080000Z
DTSTART;TZID=Europe/Berlin:20261207T090000
DTEND;TZID=Europe/Berlin:20261207T093000
RRULE:FREQ=WEEKLY;COUNT=6
EXDATE;TZID=Europe/Berlin:20261221T090000
SUMMARY:Stand-up
END:VEVENT
BEGIN:VEVENT
UID:standup@phone
DTSTAMP:20261124T080000Z
RECURRENCE-ID;TZID=Europe/Berlin:20261214T090000
DTSTART;TZID=Europe/Berlin:20261216T140000
DTEND;TZID=Europe/Berlin:20261216T143000
SUMMARY:Stand-up (verlegt)
END:VEVENT
END:VCALENDAR
""".replace("\n", "\r\n")


def summaries(events: list) -> dict[str, str]:  # type: ignore[type-arg]
    return {str(e.calendar.walk("VEVENT")[0]["UID"]): str(e.calendar.walk("VEVENT")[0]["SUMMARY"]) for e in events}


def operations(standin: EwsStandIn, mailbox: Mailbox) -> list[str]:
    with standin.lock:
        return [operation for email, operation in standin.requests if email == mailbox.email]


def test_a_full_fetch_lists_the_events_in_the_window_with_their_uid_and_markers(ews: ExchangeAdapter) -> None:
    ews.create(event("in@x", datetime(2026, 12, 7, 9), summary="Zahnarzt",
                     extra="TRANSP:TRANSPARENT\r\nDESCRIPTION:Befund mitbringen\r\nLOCATION:Praxis 2"), "k-in")
    ews.create(event("private@x", datetime(2026, 12, 8, 9), summary="Arzt", extra="CLASS:PRIVATE"), "k-private")
    ews.create(event("old@x", datetime(2025, 1, 7, 9), summary="Alt"), "k-old")
    delta = ews.fetch(None, WINDOW)
    assert delta.complete and delta.deleted == []
    assert summaries(delta.changed) == {"in@x": "Zahnarzt", "private@x": "Arzt"}
    by_uid = {str(e.calendar.walk("VEVENT")[0]["UID"]): e for e in delta.changed}
    free = by_uid["in@x"].calendar.walk("VEVENT")[0]
    assert (str(free["TRANSP"]), str(free["X-MICROSOFT-CDO-BUSYSTATUS"])) == ("TRANSPARENT", "FREE")
    assert free.decoded("DTSTART") == datetime(2026, 12, 7, 9, tzinfo=UTC)
    assert (str(free["DESCRIPTION"]), str(free["LOCATION"])) == ("Befund mitbringen", "Praxis 2")
    assert str(by_uid["private@x"].calendar.walk("VEVENT")[0]["CLASS"]) == "PRIVATE"
    assert {e.key for e in delta.changed} == {"k-in", "k-private"}


def test_an_incremental_fetch_lists_what_changed_and_what_was_deleted(
        running: RunningEws, ews: ExchangeAdapter, mailbox: Mailbox, standin: EwsStandIn) -> None:
    keep = ews.create(event("keep@x", datetime(2026, 12, 7, 9)), "k1")
    change = ews.create(event("change@x", datetime(2026, 12, 8, 9)), "k2")
    gone = ews.create(event("gone@x", datetime(2026, 12, 9, 9)), "k3")
    first = ews.fetch(None, WINDOW)
    assert len(first.changed) == 3

    other = adapter(running, mailbox)  # another client of the mailbox
    other.update(change.remote_id, change.etag, event("change@x", datetime(2026, 12, 8, 15), summary="verschoben"))
    other.delete(gone.remote_id, gone.etag)
    other.create(event("new@x", datetime(2026, 12, 10, 9), summary="neu"), "k4")
    other.close()

    before = len(operations(standin, mailbox))
    delta = ews.fetch(first.state, WINDOW)
    assert operations(standin, mailbox)[before:] == ["SyncFolderItems", "GetItem"]  # the changes, read in one batch
    assert not delta.complete
    assert summaries(delta.changed) == {"change@x": "verschoben", "new@x": "neu"}
    assert delta.deleted == [gone.remote_id]
    assert keep.remote_id not in {e.remote_id for e in delta.changed}


def test_a_quiet_cycle_is_exactly_one_sync_folder_items_request(
        ews: ExchangeAdapter, standin: EwsStandIn, mailbox: Mailbox) -> None:
    ews.create(event("e@x", datetime(2026, 12, 7, 9)), "k1")
    state = ews.fetch(None, WINDOW).state
    before, made = len(operations(standin, mailbox)), ews.requests_made
    delta = ews.fetch(state, WINDOW)
    assert delta.changed == [] and delta.deleted == []
    assert operations(standin, mailbox)[before:] == ["SyncFolderItems"]
    assert ews.requests_made == made + 1


def test_a_window_rolled_by_more_than_a_day_lists_the_folder_again(ews: ExchangeAdapter) -> None:
    ews.create(event("later@x", WINDOW.end + timedelta(days=3)), "k-later")  # beyond today's window
    first = ews.fetch(None, WINDOW)
    assert first.changed == []
    assert ews.fetch(first.state, WINDOW).complete is False  # the same window: changes only
    rolled = Window(WINDOW.start + timedelta(days=7), WINDOW.end + timedelta(days=7))
    delta = ews.fetch(first.state, rolled)
    assert delta.complete and summaries(delta.changed) == {"later@x": "Termin"}  # it entered the window


def test_a_listing_longer_than_a_page_is_read_to_its_end(running: RunningEws, mailbox: Mailbox,
                                                          standin: EwsStandIn) -> None:
    paging = ExchangeAdapter(credentials(mailbox), mailbox.calendar_id, server_url=running.ews_url,
                             ca_bundle=ca_bundle(tls.ca_file()), quirks=Quirks(page_size=2))
    for n in range(5):
        paging.create(event(f"e{n}@x", datetime(2026, 12, 7 + n, 9)), f"k{n}")
    before = len(operations(standin, mailbox))
    delta = paging.fetch(None, WINDOW)
    assert sorted(summaries(delta.changed)) == [f"e{n}@x" for n in range(5)]
    assert operations(standin, mailbox)[before:] == ["SyncFolderItems"] * 3 + ["GetItem"]
    assert paging.fetch(delta.state, WINDOW).changed == []
    paging.close()


def test_an_invalid_sync_state_is_token_invalid_and_a_full_fetch_recovers(
        ews: ExchangeAdapter, standin: EwsStandIn) -> None:
    ews.create(event("e@x", datetime(2026, 12, 7, 9)), "k1")
    state = ews.fetch(None, WINDOW).state
    standin.invalidate_sync_states()
    with pytest.raises(TokenInvalid):
        ews.fetch(state, WINDOW)
    again = ews.fetch(None, WINDOW)
    assert again.complete and summaries(again.changed) == {"e@x": "Termin"}


def test_a_series_comes_back_with_its_moved_and_its_deleted_occurrence(
        ews: ExchangeAdapter, standin: EwsStandIn, mailbox: Mailbox) -> None:
    created = ews.create(icalendar.Calendar.from_ical(SERIES), "k-series")
    assert len(standin.item_ids(mailbox.calendar_id)) == 1  # one master, not six items
    (found,) = ews.fetch(None, WINDOW).changed
    assert found.remote_id == created.remote_id and found.etag == created.etag
    master, *overrides = found.calendar.walk("VEVENT")
    berlin = master.decoded("DTSTART").tzinfo
    assert getattr(berlin, "key", None) == "Europe/Berlin"  # the Windows name mapped back to IANA
    assert master.decoded("DTSTART") == datetime(2026, 12, 7, 8, tzinfo=UTC)
    assert "FREQ=WEEKLY" in master["RRULE"].to_ical().decode() and "COUNT=6" in master["RRULE"].to_ical().decode()
    assert [d.dt.astimezone(UTC) for d in master["EXDATE"].dts] == [datetime(2026, 12, 21, 8, tzinfo=UTC)]
    (moved,) = overrides
    assert moved.decoded("RECURRENCE-ID").astimezone(UTC) == datetime(2026, 12, 14, 8, tzinfo=UTC)
    assert moved.decoded("DTSTART") == datetime(2026, 12, 16, 13, tzinfo=UTC)
    assert str(moved["SUMMARY"]) == "Stand-up (verlegt)"


def test_an_all_day_event_keeps_its_dates(ews: ExchangeAdapter) -> None:
    text = event("day@x", datetime(2026, 12, 7)).to_ical().decode()
    text = text.replace("DTSTART:20261207T000000Z", "DTSTART;VALUE=DATE:20261207").replace(
        "DTEND:20261207T010000Z", "DTEND;VALUE=DATE:20261209")
    ews.create(icalendar.Calendar.from_ical(text), "k-day")
    (found,) = ews.fetch(None, WINDOW).changed
    head = found.calendar.walk("VEVENT")[0]
    assert (head.decoded("DTSTART"), head.decoded("DTEND")) == (datetime(2026, 12, 7).date(),
                                                                 datetime(2026, 12, 9).date())


def test_a_stale_change_key_is_read_again_and_the_update_retried(
        running: RunningEws, ews: ExchangeAdapter, mailbox: Mailbox, standin: EwsStandIn) -> None:
    created = ews.create(event("e@x", datetime(2026, 12, 7, 9)), "k1")
    other = adapter(running, mailbox)
    other.update(created.remote_id, created.etag, event("e@x", datetime(2026, 12, 7, 9), summary="dort"))
    other.close()
    before = len(operations(standin, mailbox))
    updated = ews.update(created.remote_id, created.etag, event("e@x", datetime(2026, 12, 7, 11), summary="hier"))
    assert operations(standin, mailbox)[before:] == ["UpdateItem", "GetItem", "UpdateItem"]
    (found,) = ews.fetch(None, WINDOW).changed
    assert summaries([found]) == {"e@x": "hier"} and found.etag == updated.etag


def test_a_create_retried_with_the_same_key_makes_one_event(
        running: RunningEws, ews: ExchangeAdapter, mailbox: Mailbox, standin: EwsStandIn) -> None:
    first = ews.create(event("e@x", datetime(2026, 12, 7, 9)), "push-1")
    again = adapter(running, mailbox)  # a new run after a crash: nothing in memory
    second = again.create(event("e@x", datetime(2026, 12, 7, 9)), "push-1")
    again.close()
    assert second.remote_id == first.remote_id and second.key == "push-1"
    assert standin.item_ids(mailbox.calendar_id) == [first.remote_id]


def test_server_busy_with_a_back_off_is_rate_limited_for_that_long(ews: ExchangeAdapter, standin: EwsStandIn) -> None:
    state = ews.fetch(None, WINDOW).state
    standin.fail_next(1, "ErrorServerBusy", back_off_ms=3000)
    with pytest.raises(RateLimited) as raised:
        ews.fetch(state, WINDOW)
    assert raised.value.retry_after == 3
    assert ews.fetch(state, WINDOW).changed == []  # nothing retried behind the engine's back; it works again


def test_a_wrong_password_is_auth_expired_after_one_request(running: RunningEws, mailbox: Mailbox) -> None:
    wrong = adapter(running, mailbox, password="not-the-password")
    with pytest.raises(AuthExpired) as raised:
        wrong.fetch(None, WINDOW)
    assert "not-the-password" not in str(raised.value) and mailbox.username not in str(raised.value)
    assert wrong.requests_made == 1  # no retry storm
    wrong.close()


def test_ntlm_signs_in_once_per_connection_and_a_quiet_cycle_stays_one_request(
        running: RunningEws, mailbox: Mailbox, standin: EwsStandIn) -> None:
    ntlm = adapter(running, mailbox, auth="ntlm")
    ntlm.create(event("e@x", datetime(2026, 12, 7, 9)), "k1")
    state = ntlm.fetch(None, WINDOW).state
    before, made = len(operations(standin, mailbox)), ntlm.requests_made
    assert ntlm.fetch(state, WINDOW).changed == []
    assert operations(standin, mailbox)[before:] == ["SyncFolderItems"]
    assert ntlm.requests_made == made + 1  # the connection is authenticated already: no handshake again
    ntlm.close()


def test_a_wrong_ntlm_password_is_auth_expired_without_a_retry_storm(running: RunningEws, mailbox: Mailbox) -> None:
    wrong = adapter(running, mailbox, auth="ntlm", password="not-the-password")
    with pytest.raises(AuthExpired):
        wrong.fetch(None, WINDOW)
    assert wrong.requests_made <= 3  # the bare request and one NTLM handshake, nothing retried
    wrong.close()
    gc.collect()  # requests_ntlm leaves the refused handshake's responses (and socket) in a reference cycle


def test_the_server_version_is_detected_once_and_kept(running: RunningEws, mailbox: Mailbox) -> None:
    saved: list[dict[str, str]] = []
    creds = credentials(mailbox)
    del creds["version"]
    fresh = ExchangeAdapter(creds, mailbox.calendar_id, server_url=running.ews_url, save_credentials=saved.append,
                            ca_bundle=ca_bundle(tls.ca_file()))
    fresh.fetch(None, WINDOW)
    fresh.close()
    assert [s["version"] for s in saved] == [VERSION]


def test_the_registry_builds_the_adapter_of_an_exchange_connection(running: RunningEws, mailbox: Mailbox) -> None:
    account = Account("exchange", running.ews_url, mailbox.calendar_id, credentials(mailbox), ca_file=tls.ca_file())
    with open_adapter(account) as opened:
        assert [c.id for c in opened.list_calendars()] == [mailbox.calendar_id]


# -- the connection test: what failed, in plain words ---------------------------------------------------

def check(account: Account) -> str:
    with pytest.raises(connection_admin.ConnectionProblem) as raised:
        connection_admin.check_account(account)
    return str(raised.value)


def test_the_connection_test_names_a_wrong_password(running: RunningEws, mailbox: Mailbox) -> None:
    account = connection_admin.exchange_account(running.ews_url, "", mailbox.username, "wrong", email=mailbox.email,
                                                auth="basic", ca_file=tls.ca_file())
    assert "authentication" in check(account)


def test_the_connection_test_names_an_unknown_host(mailbox: Mailbox) -> None:
    account = connection_admin.exchange_account("https://ews.does-not-exist.invalid/EWS/Exchange.asmx", "",
                                                mailbox.username, mailbox.password, email=mailbox.email,
                                                auth="basic", version=VERSION, ca_file=tls.ca_file())
    assert "(DNS)" in check(account)


def test_the_connection_test_names_an_untrusted_certificate(running: RunningEws, mailbox: Mailbox) -> None:
    account = connection_admin.exchange_account(running.ews_url, "", mailbox.username, mailbox.password,
                                                email=mailbox.email, auth="basic", version=VERSION)
    assert "TLS" in check(account)  # the tests' CA is not among the public authorities


def test_the_connection_test_names_a_calendar_the_account_may_not_open(
        running: RunningEws, standin: EwsStandIn, mailbox: Mailbox) -> None:
    stranger = standin.new_mailbox()
    account = connection_admin.exchange_account(running.ews_url, stranger.calendar_id, mailbox.username,
                                                mailbox.password, email=mailbox.email, auth="basic",
                                                version=VERSION, ca_file=tls.ca_file())
    with open_adapter(account) as opened, pytest.raises((Permanent, Transient)) as raised:
        opened.fetch(None, WINDOW)
    assert "permissions" in str(raised.value)


def test_the_connection_test_names_an_address_autodiscover_cannot_resolve() -> None:
    account = connection_admin.exchange_account("", "", "PRAXIS\\weber", "secret", email="weber@praxis.invalid",
                                                auth="ntlm", version=VERSION)
    assert "autodiscover" in check(account)


def test_the_connection_test_keeps_what_it_detected(running: RunningEws, mailbox: Mailbox) -> None:
    account = connection_admin.exchange_account(running.ews_url, "", mailbox.username, mailbox.password,
                                                email=mailbox.email, auth="basic", ca_file=tls.ca_file())
    checked = connection_admin.check_new(account, hint="--remote")
    assert checked.remote_calendar == mailbox.calendar_id
    assert account.credentials["version"] == VERSION  # stored with the connection: no detection per run


def test_basic_authentication_is_refused_over_plain_http(mailbox: Mailbox) -> None:
    plain = ExchangeAdapter(credentials(mailbox), "", server_url="http://mail.example.test/EWS/Exchange.asmx")
    with pytest.raises(Permanent, match="TLS"):
        plain.fetch(None, WINDOW)


# -- through the sync engine: throttling and a refused password -------------------------------------------

@pytest.fixture
def world(store: Store, running: RunningEws, tmp_path: Path) -> Iterator[World]:
    with EwsProvider(running.standin, running.origin).new_driver() as driver:
        yield make_world(store, driver, tmp_path)


def world_single(uid: str) -> str:
    return world_single_text(uid, datetime(2026, 12, 7, 9, tzinfo=UTC))


def test_a_quiet_scheduled_run_sends_one_request(world: World, standin: EwsStandIn) -> None:
    world.driver.create("e@phone", world_single("e@phone"))
    assert world.sync().status == "ok"
    before = len(standin.requests)
    assert world.sync().status == "ok"
    assert world.last_run().requests == 1
    assert [operation for _, operation in standin.requests[before:]] == ["SyncFolderItems"]


def test_a_run_told_to_back_off_3_s_is_rescheduled_after_it_not_retried(world: World, standin: EwsStandIn) -> None:
    assert world.sync().status == "ok"
    standin.fail_next(1, "ErrorServerBusy", back_off_ms=3000)
    outcome = world.sync()
    assert (outcome.status, outcome.retry_after) == ("failed", 3)
    connection = world.connection()
    assert connection.next_due_at is not None and connection.next_due_at > NOW  # the scheduler waits
    assert world.sync().status == "ok"


def test_a_wrong_password_needs_attention_after_one_run_without_a_retry_storm(
        world: World, standin: EwsStandIn) -> None:
    assert world.sync().status == "ok"
    driver = world.driver
    assert isinstance(driver, EwsDriver)
    with world.store.write() as session:
        connection = session.get(Connection, world.connection_id)
        assert connection is not None
        credentials = json.loads(world.engine.secrets.decrypt(connection.credentials))
        connection.credentials = world.engine.secrets.encrypt(json.dumps({**credentials, "password": "changed"}))
    before = len(standin.requests)
    outcome = world.sync()
    assert outcome.status == "failed" and outcome.auth_failed
    assert world.connection().needs_attention
    assert world.last_run().requests == 1  # one refused request, nothing retried
    assert len(standin.requests) == before  # the stand-in never got past authentication


# -- calbridge connection add … exchange ---------------------------------------------------------------------

def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *argv: str,
        stdin: str = "") -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_connection_add_exchange_tests_the_account_and_keeps_what_it_detected(
        running: RunningEws, mailbox: Mailbox, standin: EwsStandIn, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("BRIDGE_CONFIG", "BRIDGE_DATABASE_URL", "BRIDGE_SECRET_KEYS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BRIDGE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("BRIDGE_PROVIDER_CA_FILE", tls.ca_file())
    cli(monkeypatch, capsys, "tenant", "create", "Praxis")
    cli(monkeypatch, capsys, "user", "create", "--tenant", "Praxis", "--login", "weber", "--email",
        "weber@example.org", "--password-stdin", stdin="a long enough password\n")
    cli(monkeypatch, capsys, "calendar", "create", "--owner", "weber", "--slug", "praxis")
    ExchangeAdapter(credentials(mailbox), mailbox.calendar_id, server_url=running.ews_url,
                    ca_bundle=ca_bundle(tls.ca_file())).create(event("e@x", datetime(2026, 12, 7, 9)), "k")
    base = ("connection", "add", "weber/praxis", "exchange", "--url", running.ews_url, "--auth", "basic",
            "--username", mailbox.username, "--email", mailbox.email, "--password-stdin")

    code, _, err = cli(monkeypatch, capsys, *base, stdin="wrong\n")
    assert code != 0 and "authentication" in err  # nothing stored

    code, out, err = cli(monkeypatch, capsys, *base, stdin=mailbox.password + "\n")
    assert code == 0 and out.startswith("connection 1: weber/praxis <-> Calendar"), err
    store = Store(f"sqlite:///{tmp_path / 'calbridge.sqlite3'}")
    with store.read() as session:
        stored = session.scalar(select(Connection))
        assert stored is not None and mailbox.password not in stored.credentials
    store.dispose()
    before = len(operations(standin, mailbox))
    code, out, _ = cli(monkeypatch, capsys, "sync", "1")
    assert code == 0 and "\tok\tbaseline\t" in out and '"created":1' in out
    assert "ConvertId" not in operations(standin, mailbox)[before:]  # the detected version was kept


def test_oauth_connections_keep_the_apps_client_credentials_with_the_mailboxs_domain_as_tenant() -> None:
    account = connection_admin.exchange_account("https://mail.praxis.example/EWS/Exchange.asmx", "", "client-id",
                                                "client-secret", email="weber@praxis.example", auth="oauth")
    assert dict(account.credentials) == {"auth": "oauth", "client_id": "client-id", "client_secret": "client-secret",
                                         "email": "weber@praxis.example", "tenant_id": "praxis.example"}


def app_credentials(running: RunningEws, mailbox: Mailbox, client_id: str, secret: str) -> dict[str, str]:
    """An app registration's client credentials with its tenant's authority (the stand-in's token endpoint)."""
    return {"auth": "oauth", "client_id": client_id, "client_secret": secret, "tenant_id": "praxis.example",
            "authority": f"{running.origin}/praxis.example", "scope": f"{running.origin}/.default",
            "email": mailbox.email, "version": VERSION}


def test_oauth_app_access_reads_the_mailbox_it_impersonates(running: RunningEws, standin: EwsStandIn,
                                                            mailbox: Mailbox) -> None:
    client_id, secret = standin.register_app()
    other = standin.new_mailbox()
    for owner, uid, summary in ((other, "other@phone", "Fremd"), (mailbox, "mine@phone", "Kontrolle")):
        writer = adapter(running, owner)  # the other mailbox's event must not reach the app's connection
        try:
            writer.create(event(uid, datetime(2026, 12, 7, 9, tzinfo=UTC), summary=summary), f"cb1v{uid}")
        finally:
            writer.close()
    app = ExchangeAdapter(app_credentials(running, mailbox, client_id, secret), mailbox.calendar_id,
                          server_url=running.ews_url, ca_bundle=ca_bundle(tls.ca_file()))
    try:
        delta = app.fetch(None, WINDOW)
        assert summaries(delta.changed) == {"mine@phone": "Kontrolle"}
        assert app.fetch(delta.state, WINDOW).changed == [] and operations(standin, mailbox)[-1] == "SyncFolderItems"
    finally:
        app.close()


def test_oauth_with_a_wrong_client_secret_is_auth_expired(running: RunningEws, standin: EwsStandIn,
                                                          mailbox: Mailbox) -> None:
    client_id, _ = standin.register_app()
    app = ExchangeAdapter(app_credentials(running, mailbox, client_id, "not-the-secret"), mailbox.calendar_id,
                          server_url=running.ews_url, ca_bundle=ca_bundle(tls.ca_file()))
    try:
        with pytest.raises(AuthExpired):
            app.fetch(None, WINDOW)
        assert operations(standin, mailbox) == []  # refused at the token endpoint: EWS never saw it
    finally:
        app.close()
        gc.collect()  # the refused token session sits in a reference cycle with its socket (requests-oauthlib)
