"""The connection commands end to end against a second Radicale: add (tested first, with plain-word
errors), list, sync, log, options, reset, disconnect; the password never on the command line or in
the database in clear."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from bridge import bookings
from bridge.cli import main
from bridge.store import items
from bridge.store.db import Store
from bridge.store.models import Calendar, Connection, Item
from tests.servers import RADICALE_PASSWORD, RADICALE_USER, DavServer, radicale_server

EVENT = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//p//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\n"
         "DTSTAMP:20261124T080000Z\r\nDTSTART:{start}\r\nDTEND:{end}\r\nSUMMARY:{summary}\r\n{extra}"
         "END:VEVENT\r\nEND:VCALENDAR\r\n")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DavServer]:
    with radicale_server(tmp_path_factory.mktemp("radicale")) as running:
        yield running


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in ("BRIDGE_CONFIG", "BRIDGE_DATABASE_URL", "BRIDGE_SECRET_KEYS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BRIDGE_DATA_DIR", str(tmp_path))
    return tmp_path


def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *argv: str,
        stdin: str = "") -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def put(server: DavServer, calendar: str, name: str, summary: str, extra: str = "") -> None:
    with server.client() as http:
        body = EVENT.format(uid=name, start="20261207T090000Z", end="20261207T100000Z", summary=summary,
                            extra=extra)
        assert http.put(calendar + name + ".ics", content=body).status_code in (201, 204)


@pytest.fixture
def calendar(env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> str:
    run(monkeypatch, capsys, "tenant", "create", "Salon")
    run(monkeypatch, capsys, "user", "create", "--tenant", "Salon", "--login", "nora", "--email", "nora@example.org",
        "--password-stdin", stdin="a long enough password\n")
    run(monkeypatch, capsys, "calendar", "create", "--owner", "nora", "--slug", "work")
    return "nora/work"


def test_a_connection_from_add_to_disconnect(server: DavServer, calendar: str, env: Path,
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    remote = server.new_calendar()
    put(server, remote, "a", "Färben")
    put(server, remote, "b", "Geheim", "CLASS:PRIVATE\r\n")
    code, out, err = run(monkeypatch, capsys, "connection", "add", calendar, "caldav", "--url", server.url,
                         "--remote", remote, "--username", RADICALE_USER, "--password-stdin",
                         "--option", "anonymize_location=true", stdin=RADICALE_PASSWORD + "\n")
    assert code == 0, err
    assert out.startswith("connection 1:")
    store = Store(f"sqlite:///{env / 'calbridge.sqlite3'}")
    with store.read() as session:
        stored = session.scalar(select(Connection))
        assert stored is not None and RADICALE_PASSWORD not in stored.credentials
    code, out, _ = run(monkeypatch, capsys, "sync", "1")
    assert code == 0 and "\tok\tbaseline\t" in out and '"created":2' in out
    with store.read() as session:
        texts = [item.text for item in session.scalars(select(Item))]
    assert len(texts) == 2 and not any("Geheim" in text for text in texts)
    code, out, _ = run(monkeypatch, capsys, "connection", "list")
    assert "\tcaldav\t" in out and "ok at" in out
    code, out, _ = run(monkeypatch, capsys, "reset-token", "1")
    assert code == 0 and "\treset\tok\tbaseline\t" in out
    code, out, _ = run(monkeypatch, capsys, "log", "1")
    assert len(out.strip().splitlines()) == 2 and out.index("reset") < out.index("manual")
    put(server, remote, "c", "Neu")
    code, out, err = run(monkeypatch, capsys, "worker", "--once")
    assert code == 0 and "0 connections synced" in err  # a manual run just made it due only in some minutes
    with store.write() as session:
        due = session.get(Connection, 1)
        assert due is not None
        due.next_due_at = None
    code, out, err = run(monkeypatch, capsys, "worker", "--once")
    assert code == 0 and "1 connections synced" in err
    with store.read() as session:
        assert len(list(session.scalars(select(Item)))) == 3
    code, out, _ = run(monkeypatch, capsys, "connection", "set", "1", "no_personal_data=true")
    assert code == 0 and "2 events rewritten" in out
    code, out, _ = run(monkeypatch, capsys, "connection", "disconnect", "1")
    assert code == 0 and "3 mirrored events kept as ordinary events" in out
    with store.read() as session:
        assert {item.origin for item in session.scalars(select(Item))} == {"client"}
    store.dispose()


@pytest.mark.parametrize(("password", "remote", "message"), [
    ("wrong", True, "refused the credentials"),
    (RADICALE_PASSWORD, False, "choose the remote calendar with --remote"),
])
def test_a_connection_that_cannot_work_is_not_stored(server: DavServer, calendar: str, env: Path,
                                                     monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str], password: str,
                                                     remote: bool, message: str) -> None:
    server.new_calendar()  # the account has several calendars
    argv = ["connection", "add", calendar, "caldav", "--url", server.url, "--username", RADICALE_USER,
            "--password-stdin"]
    if remote:
        argv += ["--remote", server.default_calendar]
    code, _, err = run(monkeypatch, capsys, *argv, stdin=password + "\n")
    assert code == 2 and message in err and "Traceback" not in err
    code, out, _ = run(monkeypatch, capsys, "connection", "list")
    assert out.strip() == ""


def test_unknown_options_and_connections_get_one_line(calendar: str, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(monkeypatch, capsys, "connection", "add", calendar, "ics", "--url", "http://127.0.0.1:9/x.ics",
                       "--option", "colour=red")
    assert code == 2 and "unknown connection options: colour" in err
    code, _, err = run(monkeypatch, capsys, "sync", "42")
    assert code == 2 and "42" in err




def test_deletions_held_from_the_external_calendar_are_applied_by_confirm_deletions(
        server: DavServer, calendar: str, env: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    remote = server.new_calendar()
    code, _, err = run(monkeypatch, capsys, "connection", "add", calendar, "caldav", "--url", server.url,
                       "--remote", remote, "--username", RADICALE_USER, "--password-stdin",
                       stdin=RADICALE_PASSWORD + "\n")
    assert code == 0, err
    store = Store(f"sqlite:///{env / 'calbridge.sqlite3'}")
    start = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0) + timedelta(days=2)
    with store.write() as session:
        work = session.scalar(select(Calendar).where(Calendar.slug == "work"))
        assert work is not None
        for n in range(11):
            at = start + timedelta(days=n)
            bookings.create(session, work, bookings.BookingRequest(at, at + timedelta(minutes=30), f"Kunde {n}",
                                                                   "kunde@example.org"), f"k{n}", at)
    code, out, _ = run(monkeypatch, capsys, "sync", "1")
    assert code == 0 and '"out":{"created":11}' in out
    with store.write() as session:  # what a careless CalDAV client does, item by item
        work = session.scalar(select(Calendar).where(Calendar.slug == "work"))
        assert work is not None
        for item in list(session.scalars(select(Item).where(Item.origin == "booking"))):
            items.remove(session, work, item.href)

    code, out, _ = run(monkeypatch, capsys, "sync", "1")
    assert code == 0 and "\theld\t" in out and '"held":11' in out and '"PushDelete"' in out
    with server.client() as http:
        listed = http.request("PROPFIND", remote, headers={"Depth": "1"})
    assert listed.text.count(".ics</") == 11  # nothing left the external calendar
    code, out, _ = run(monkeypatch, capsys, "sync", "1", "--confirm-deletions")
    assert code == 0 and "\tok\t" in out and '"out":{"deleted":11}' in out
    with server.client() as http:
        listed = http.request("PROPFIND", remote, headers={"Depth": "1"})
    assert ".ics</" not in listed.text
    store.dispose()
