"""/admin's synchronisation pages over HTTP, against a second Radicale as the external calendar: connect with the
account tested first (a wrong password is said in plain words and never shown back), choose the remote calendar,
change the options, sync now and read the log, reset the sync token after a confirmation page, see a held run's
deletions and confirm them, disable, disconnect with the mirrored events removed or kept. An ICS feed's page
offers no direction, copy or notice options."""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from bridge.settings import Settings
from bridge.store.db import Store
from bridge.store.models import Calendar, Connection, Item, SyncRun
from bridge.sync import runlog
from tests.conftest import Bridge, serve
from tests.integration.admin_client import add_connection, csrf_of, post_form, sign_in
from tests.servers import RADICALE_PASSWORD, RADICALE_USER, DavServer, ics_feed_server, radicale_server

EVENT = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//p//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\n"
         "DTSTAMP:20261124T080000Z\r\nDTSTART:{start:%Y%m%dT%H%M%SZ}\r\nDTEND:{end:%Y%m%dT%H%M%SZ}\r\n"
         "SUMMARY:{summary}\r\nLOCATION:Praxis Dr. Roth\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
_PENDING = re.compile(r'name="pending" value="([^"]+)"')
_REMOTES = re.compile(r'name="remote" value="([^"]+)"')


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DavServer]:
    with radicale_server(tmp_path_factory.mktemp("radicale")) as running:
        yield running


@pytest.fixture
def anna(bridge: Bridge) -> Iterator[httpx.Client]:
    bridge.add_user("Praxis", "anna", role="admin")
    bridge.add_calendar("anna", "praxis")
    with sign_in(bridge, "anna") as client:
        yield client


def put(server: DavServer, calendar: str, name: str, summary: str, days: int = 3) -> None:
    start = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0) + timedelta(days=days)
    body = EVENT.format(uid=name, start=start, end=start + timedelta(hours=1), summary=summary)
    with server.client() as http:
        assert http.put(calendar + name + ".ics", content=body).status_code in (201, 204)


def connect(client: httpx.Client, calendar_id: int, provider: str, fields: dict[str, str]) -> httpx.Response:
    page = f"/calendars/{calendar_id}/connect?provider={provider}"
    return post_form(client, page, f"/calendars/{calendar_id}/connect", {"provider": provider, **fields})


def finish(client: httpx.Client, calendar_id: int, picker: httpx.Response, remote: str) -> httpx.Response:
    sealed = _PENDING.search(picker.text)
    assert sealed is not None, picker.text
    return client.post(f"/calendars/{calendar_id}/connect/finish",
                       data={"csrf": csrf_of(picker), "pending": sealed.group(1), "remote": remote})


def connected(bridge: Bridge, client: httpx.Client, server: DavServer, remote: str) -> int:
    """Connect the praxis calendar to ``remote`` through the pages; the new connection's id."""
    calendar_id = bridge.calendar_id("anna", "praxis")
    picker = connect(client, calendar_id, "caldav",
                     {"url": server.url, "username": RADICALE_USER, "password": RADICALE_PASSWORD})
    assert picker.status_code == 200, picker.text
    done = finish(client, calendar_id, picker, remote)
    assert done.status_code == 303, done.text
    found = re.search(r"/admin/connections/(\d+)$", done.headers["location"])
    assert found is not None
    return int(found.group(1))


def settled(bridge: Bridge, connection_id: int, runs: int) -> list[SyncRun]:
    """The connection's runs once ``runs`` of them have finished and its lease is free (newest first)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with bridge.store.read() as session:
            found = list(session.scalars(select(SyncRun).where(SyncRun.connection_id == connection_id)
                                         .order_by(SyncRun.id.desc())))
            connection = session.get(Connection, connection_id)
            free = connection is not None and connection.lease_owner is None
            if free and len(found) >= runs and all(run.status != "running" for run in found):
                for run in found:
                    session.expunge(run)
                return found
        time.sleep(0.1)
    raise AssertionError("the run did not finish")


def mirrored(bridge: Bridge) -> list[Item]:
    with bridge.store.read() as session:
        found = list(session.scalars(select(Item).where(Item.origin != "client")))
        for item in found:
            session.expunge(item)
        return found


def test_a_wrong_password_is_said_plainly_and_never_shown_back(bridge: Bridge, anna: httpx.Client,
                                                              server: DavServer) -> None:
    calendar_id = bridge.calendar_id("anna", "praxis")
    answer = connect(anna, calendar_id, "caldav", {"url": server.url, "username": RADICALE_USER,
                                                   "password": "falsch-und-geheim-42"})
    assert answer.status_code == 422
    assert "Der Server hat Benutzername oder Passwort abgelehnt" in answer.text
    assert "refused the credentials" in answer.text  # the detail, for whoever helps
    assert "falsch-und-geheim-42" not in answer.text
    assert f'value="{server.url}"' in answer.text  # the address is kept, the password field is empty
    with bridge.store.read() as session:
        assert session.scalar(select(Connection)) is None


def test_an_incomplete_form_is_answered_in_the_users_language(bridge: Bridge, anna: httpx.Client,
                                                               server: DavServer) -> None:
    calendar_id = bridge.calendar_id("anna", "praxis")
    cases = [("caldav", {"url": "dav.example.org", "username": "u", "password": "p"},
              "beginnend mit https://"),
             ("caldav", {"url": server.url, "username": RADICALE_USER}, "Bitte geben Sie Benutzername und Passwort an"),
             ("exchange", {"username": "u", "password": "p", "auth": "ntlm"}, "E-Mail-Adresse des Postfachs"),
             ("caldav", {"url": "http://127.0.0.1:9/", "username": "u", "password": "p"},
              "Der Server ist nicht erreichbar"),
             ("caldav", {"url": "http://[::1", "username": "u", "password": "p"}, "beginnend mit https://"),
             ("ics", {"url": "https://xn--/feed.ics"}, "beginnend mit https://")]
    for provider, fields, message in cases:
        answer = connect(anna, calendar_id, provider, fields)
        assert answer.status_code == 422 and message in answer.text, (fields, answer.text)
    with sign_in(bridge, "anna") as english:
        english.headers["Accept-Language"] = "en"  # the language is the user's, not the browser's
        answer = connect(english, calendar_id, "caldav", {"url": "dav.example.org", "username": "u", "password": "p"})
        assert "beginnend mit https://" in answer.text


def test_connect_choose_the_calendar_sync_and_read_the_log(bridge: Bridge, anna: httpx.Client,
                                                          server: DavServer) -> None:
    remote = server.new_calendar()
    other = server.new_calendar()
    put(server, remote, "a", "Färben")
    calendar_id = bridge.calendar_id("anna", "praxis")
    picker = connect(anna, calendar_id, "caldav",
                     {"url": server.url, "username": RADICALE_USER, "password": RADICALE_PASSWORD})
    assert picker.status_code == 200
    assert {remote, other} <= set(_REMOTES.findall(picker.text))  # the account's calendars to choose from
    assert RADICALE_PASSWORD not in picker.text  # the tested account travels sealed
    done = finish(anna, calendar_id, picker, remote)
    assert done.status_code == 303
    again = finish(anna, calendar_id, picker, remote)  # a double click, or the back button and once more
    assert again.status_code == 303 and again.headers["location"] == done.headers["location"]
    with bridge.store.read() as session:
        assert len(session.scalars(select(Connection)).all()) == 1
        connection = session.scalar(select(Connection))
        assert connection is not None and connection.remote_calendar == remote
        assert RADICALE_PASSWORD not in connection.credentials
    page = anna.get(done.headers["location"].removeprefix("/admin"))
    assert "Jetzt synchronisieren" in page.text and "Synctoken resetten" in page.text
    assert "Ort des Termins anonymisieren" in page.text and "Der Terminort wird nicht übertragen." in page.text
    assert 'name="direction"' in page.text and 'name="bcc_provider"' in page.text
    assert RADICALE_PASSWORD not in page.text
    listing = anna.get(f"/calendars/{calendar_id}").text
    assert f"/admin/connections/{connection.id}" in listing and "CalDAV" in listing

    started = post_form(anna, f"/connections/{connection.id}", f"/connections/{connection.id}/sync")
    assert started.status_code == 303 and started.headers["location"].endswith(f"/connections/{connection.id}/log")
    run = settled(bridge, connection.id, 1)[0]
    assert run.status == "ok" and run.trigger == "manual"
    log = anna.get(f"/connections/{connection.id}/log").text
    assert "von Hand" in log and "erfolgreich" in log and "hierher: neu 1" in log
    assert 'http-equiv="refresh"' not in log  # nothing runs: the page stays still
    assert anna.get(f"/connections/{connection.id}/log?before=²").status_code == 400
    assert [item.origin for item in mirrored(bridge)] == [f"connection:{connection.id}"]


def test_options_are_saved_and_rewrite_what_was_stored(bridge: Bridge, anna: httpx.Client, server: DavServer) -> None:
    remote = server.new_calendar()
    put(server, remote, "a", "Färben")
    connection_id = connected(bridge, anna, server, remote)
    post_form(anna, f"/connections/{connection_id}", f"/connections/{connection_id}/sync")
    settled(bridge, connection_id, 1)
    assert "Praxis Dr. Roth" in mirrored(bridge)[0].text

    saved = post_form(anna, f"/connections/{connection_id}", f"/connections/{connection_id}/options", {
        "anonymize_location": "1", "bcc_provider": "1", "sync_timezone": "Europe/Vienna", "direction": "inbound"})
    assert saved.status_code == 303 and saved.headers["location"].endswith("?notice=saved")
    page = anna.get(saved.headers["location"].removeprefix("/admin")).text
    assert "Gespeichert." in page
    assert re.search(r'name="anonymize_location" value="1" checked', page)
    assert not re.search(r'name="notify_customers" value="1" checked', page)
    assert "<option selected>Europe/Vienna</option>" in page
    assert "Praxis Dr. Roth" not in mirrored(bridge)[0].text  # tightened at once: the stored copy is rewritten
    with bridge.store.read() as session:
        connection = session.get(Connection, connection_id)
        calendar = session.get(Calendar, bridge.calendar_id("anna", "praxis"))
        assert connection is not None and calendar is not None
        assert connection.direction == "inbound" and calendar.bcc_provider

    refused = post_form(anna, f"/connections/{connection_id}", f"/connections/{connection_id}/options",
                        {"sync_timezone": "Mars/Olympus"})
    assert refused.status_code == 400


def test_reset_after_confirmation_then_held_deletions_are_shown_and_confirmed(
        bridge: Bridge, anna: httpx.Client, server: DavServer) -> None:
    remote = server.new_calendar()
    put(server, remote, "a", "Färben")
    put(server, remote, "b", "Schneiden", days=4)
    connection_id = connected(bridge, anna, server, remote)
    post_form(anna, f"/connections/{connection_id}", f"/connections/{connection_id}/sync")
    settled(bridge, connection_id, 1)
    with server.client() as http:  # the remote calendar is emptied behind the bridge's back
        for name in ("a", "b"):
            assert http.delete(remote + name + ".ics").status_code in (200, 204)

    question = anna.get(f"/connections/{connection_id}/reset")
    assert question.status_code == 200 and "Kunden erhalten dabei keine E-Mails" in question.text
    assert post_form(anna, f"/connections/{connection_id}/reset",
                     f"/connections/{connection_id}/reset").status_code == 303
    held = settled(bridge, connection_id, 2)[0]
    assert held.trigger == "reset" and held.status == "held"
    assert len(mirrored(bridge)) == 2  # fail closed: an empty listing deletes nothing by itself
    log = anna.get(f"/connections/{connection_id}/log").text
    assert "Angehaltene Löschungen" in log and "Färben" in log and "Schneiden" in log
    assert "Synctoken-Reset" in log and "angehalten" in log

    confirmed = post_form(anna, f"/connections/{connection_id}/log", f"/connections/{connection_id}/sync",
                          {"confirm_deletions": "1"})
    assert confirmed.status_code == 303
    assert settled(bridge, connection_id, 3)[0].status == "ok"
    assert mirrored(bridge) == []


def test_disable_stops_sync_now_and_disconnect_removes_the_mirrored_events(
        bridge: Bridge, anna: httpx.Client, server: DavServer) -> None:
    remote = server.new_calendar()
    put(server, remote, "a", "Färben")
    connection_id = connected(bridge, anna, server, remote)
    post_form(anna, f"/connections/{connection_id}", f"/connections/{connection_id}/sync")
    settled(bridge, connection_id, 1)

    post_form(anna, f"/connections/{connection_id}", f"/connections/{connection_id}/enabled", {"enabled": "0"})
    page = anna.get(f"/connections/{connection_id}").text
    assert "deaktiviert" in page and "Synchronisation aktivieren" in page
    refused = post_form(anna, f"/connections/{connection_id}", f"/connections/{connection_id}/sync")
    assert refused.headers["location"].endswith("?notice=sync_disabled")
    assert "aktivieren Sie sie zuerst" in anna.get(refused.headers["location"].removeprefix("/admin")).text
    assert len(settled(bridge, connection_id, 1)) == 1  # no run was started

    question = anna.get(f"/connections/{connection_id}/disconnect").text
    assert "Übertragene Termine behalten" in question
    assert "Übertragene Termine aus diesem Kalender entfernen" in question
    gone = post_form(anna, f"/connections/{connection_id}/disconnect", f"/connections/{connection_id}/disconnect",
                     {"mirrored": "remove"})
    assert gone.status_code == 303 and gone.headers["location"].endswith(
        f"/calendars/{bridge.calendar_id('anna', 'praxis')}")
    assert mirrored(bridge) == []
    with bridge.store.read() as session:
        assert session.scalar(select(Connection)) is None
    assert anna.get(f"/connections/{connection_id}").status_code == 404


def test_disconnect_can_keep_the_events_as_ordinary_ones(bridge: Bridge, anna: httpx.Client,
                                                         server: DavServer) -> None:
    remote = server.new_calendar()
    put(server, remote, "a", "Färben")
    connection_id = connected(bridge, anna, server, remote)
    post_form(anna, f"/connections/{connection_id}", f"/connections/{connection_id}/sync")
    settled(bridge, connection_id, 1)
    post_form(anna, f"/connections/{connection_id}/disconnect", f"/connections/{connection_id}/disconnect",
              {"mirrored": "keep"})
    with bridge.store.read() as session:
        assert [item.origin for item in session.scalars(select(Item))] == ["client"]


def test_an_ics_feed_offers_no_direction_copies_or_notices(bridge: Bridge, anna: httpx.Client) -> None:
    start = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0) + timedelta(days=2)
    body = EVENT.format(uid="feed-1", start=start, end=start + timedelta(hours=1), summary="Ferien")
    calendar_id = bridge.calendar_id("anna", "praxis")
    form = anna.get(f"/calendars/{calendar_id}/connect?provider=ics").text
    assert 'name="url"' in form and "optional" in form
    with ics_feed_server(body) as feed:
        picker = connect(anna, calendar_id, "ics", {"url": feed.url})
        assert picker.status_code == 200, picker.text
        done = finish(anna, calendar_id, picker, _REMOTES.findall(picker.text)[0])
        assert done.status_code == 303
        page = anna.get(done.headers["location"].removeprefix("/admin")).text
    assert "Ein ICS-Abonnement wird nur gelesen" in page
    for absent in ('name="direction"', 'name="notify_customers"', 'name="bcc_provider"'):
        assert absent not in page
    assert 'name="allday_as_busy"' in page
    with bridge.store.read() as session:
        connection = session.scalar(select(Connection))
        assert connection is not None and connection.direction == "inbound"


def test_a_sealed_pick_is_only_good_for_its_user_and_calendar(bridge: Bridge, anna: httpx.Client,
                                                              server: DavServer) -> None:
    remote = server.new_calendar()
    bridge.add_calendar("anna", "zweiter")
    calendar_id, second = bridge.calendar_id("anna", "praxis"), bridge.calendar_id("anna", "zweiter")
    picker = connect(anna, calendar_id, "caldav",
                     {"url": server.url, "username": RADICALE_USER, "password": RADICALE_PASSWORD})
    assert finish(anna, second, picker, remote).status_code == 400  # made for another calendar
    sealed = _PENDING.search(picker.text)
    assert sealed is not None
    bridge.add_user("Praxis", "bea", role="admin")
    bridge.add_calendar("bea", "praxis")  # ids differ; the seal names anna and her calendar
    with sign_in(bridge, "bea") as bea:
        token = csrf_of(bea.get("/calendars"))
        answer = bea.post(f"/calendars/{calendar_id}/connect/finish",
                          data={"csrf": token, "pending": sealed.group(1), "remote": remote})
        assert answer.status_code == 400  # a colleague who is also admin cannot replay anna's seal
    with bridge.store.read() as session:
        assert session.scalar(select(Connection)) is None


def test_a_long_run_shows_its_progress_and_the_log_refreshes_itself(
        bridge: Bridge, anna: httpx.Client, monkeypatch: pytest.MonkeyPatch) -> None:
    connection_id = add_connection(bridge, "anna", "praxis")
    with bridge.store.write() as session:
        connection = session.get(Connection, connection_id)
        assert connection is not None
        session.add(SyncRun(tenant_id=connection.tenant_id, connection_id=connection_id, trigger="schedule",
                            started_at=datetime.now(UTC) - timedelta(seconds=12), status="running"))
    clock = [100.0]
    monkeypatch.setattr(runlog.time, "monotonic", lambda: clock[0])
    record = runlog.progress_recorder(bridge.store, connection_id)
    record(1, 40)  # within the run's first second: a short run writes nothing
    assert "von 40" not in anna.get(f"/connections/{connection_id}/log").text
    clock[0] += 1.5
    record(17, 40)
    log = anna.get(f"/connections/{connection_id}/log").text
    assert re.search(r"läuft seit 1[2-9] s", log) and "17 von 40 Änderungen" in log
    assert '<progress value="17" max="40">' in log
    assert '<meta http-equiv="refresh" content="2">' in log
    assert "Diese Seite aktualisiert sich" in log


@pytest.fixture
def closed_settings(settings: Settings) -> Settings:
    """The default an installation starts with: tenants may not reach loopback or private networks."""
    return dataclasses.replace(settings, provider_private_networks=False)


def test_a_server_in_a_private_network_is_refused_unless_the_operator_allows_it(
        store: Store, closed_settings: Settings, server: DavServer) -> None:
    with serve(store, closed_settings) as url:
        bridge = Bridge(url=url, store=store, settings=closed_settings)
        bridge.add_user("Praxis", "anna", role="admin")
        bridge.add_calendar("anna", "praxis")
        calendar_id = bridge.calendar_id("anna", "praxis")
        with sign_in(bridge, "anna") as anna:
            answer = connect(anna, calendar_id, "caldav", {"url": server.url, "username": RADICALE_USER,
                                                          "password": RADICALE_PASSWORD})
            assert answer.status_code == 422 and "lokalen oder privaten Netz" in answer.text
            answer = connect(anna, calendar_id, "ics", {"url": "http://169.254.169.254/latest/meta-data/"})
            assert answer.status_code == 422 and "lokalen oder privaten Netz" in answer.text
        with bridge.api(bridge.add_token("Praxis", scope="admin")) as api:
            refused = api.post("/connections", json={"calendar": calendar_id, "provider": "caldav", "url": server.url,
                                                     "username": RADICALE_USER, "password": RADICALE_PASSWORD})
            assert refused.status_code == 422 and "provider_private_networks" in refused.json()["detail"]
    with store.read() as session:
        assert session.scalar(select(Connection)) is None
