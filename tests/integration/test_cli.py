"""The calbridge command: set-up commands, calendar URLs, and clear errors without tracebacks."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from bridge.cli import main


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in ("BRIDGE_CONFIG", "BRIDGE_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BRIDGE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("BRIDGE_BASE_URL", "https://cal.example.org")
    return tmp_path


def _run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *argv: str,
         stdin: str = "") -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_setup_commands_end_with_a_subscribable_url(env: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(monkeypatch, capsys, "migrate")[0] == 0
    assert _run(monkeypatch, capsys, "tenant", "create", "Praxis Dr. Weber")[0] == 0
    code, out, _ = _run(monkeypatch, capsys, "user", "create", "--tenant", "Praxis Dr. Weber", "--login", "weber",
                        "--email", "weber@example.org", "--role", "admin", "--password-stdin",
                        stdin="a long enough password\n")
    assert code == 0 and "weber" in out
    code, out, _ = _run(monkeypatch, capsys, "calendar", "create", "--owner", "weber", "--slug", "praxis",
                        "--name", "Praxis", "--timezone", "Europe/Vienna")
    assert (code, out.strip()) == (0, "https://cal.example.org/dav/weber/praxis/")
    code, out, _ = _run(monkeypatch, capsys, "calendar", "list")
    assert out.split("\t")[:2] == ["https://cal.example.org/dav/weber/praxis/", "Europe/Vienna"]
    assert (env / "calbridge.sqlite3").exists()


@pytest.mark.parametrize(
    ("argv", "stdin", "message"),
    [
        (("tenant", "create", " "), "", "tenant name"),
        (("user", "create", "--tenant", "Nope", "--login", "x", "--email", "x@example.org", "--password-stdin"),
         "long enough password\n", "tenant 'Nope' does not exist"),
        (("user", "create", "--tenant", "T", "--login", "Bad Login!", "--email", "x@example.org",
          "--password-stdin"), "long enough password\n", "a login has"),
        (("user", "create", "--tenant", "T", "--login", "x", "--email", "x@example.org", "--password-stdin"),
         "short\n", "at least 8 characters"),
        (("calendar", "create", "--owner", "ghost", "--slug", "c"), "", "no user 'ghost'"),
    ],
)
def test_bad_input_gets_one_clear_line_and_exit_status_2(env: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str], argv: tuple[str, ...],
                                                         stdin: str, message: str) -> None:
    _run(monkeypatch, capsys, "tenant", "create", "T")
    code, _, err = _run(monkeypatch, capsys, *argv, stdin=stdin)
    assert code == 2
    assert message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_duplicate_login_and_calendar_are_refused(env: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    _run(monkeypatch, capsys, "tenant", "create", "T")
    create = ("user", "create", "--tenant", "T", "--login", "kim", "--email", "k@example.org", "--password-stdin")
    assert _run(monkeypatch, capsys, *create, stdin="long enough password\n")[0] == 0
    code, _, err = _run(monkeypatch, capsys, *create, stdin="long enough password\n")
    assert code == 2 and "user 'kim' already exists" in err
    assert _run(monkeypatch, capsys, "calendar", "create", "--owner", "kim", "--slug", "c")[0] == 0
    code, _, err = _run(monkeypatch, capsys, "calendar", "create", "--owner", "kim", "--slug", "c")
    assert code == 2 and "already exists" in err


def test_bad_setting_is_reported_before_anything_runs(env: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("BRIDGE_PORT", "not-a-port")
    code, _, err = _run(monkeypatch, capsys, "migrate")
    assert code == 2 and "port" in err


def test_import_splits_by_uid_and_reimport_replaces(env: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from bridge.settings import load_settings
    from bridge.store import items
    from bridge.store.db import Store

    _run(monkeypatch, capsys, "tenant", "create", "T")
    _run(monkeypatch, capsys, "user", "create", "--tenant", "T", "--login", "ina", "--email", "i@example.org",
         "--password-stdin", stdin="long enough password\n")
    _run(monkeypatch, capsys, "calendar", "create", "--owner", "ina", "--slug", "c")
    export = env / "export.ics"
    export.write_text(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\n"
        + "".join(f"BEGIN:VEVENT\r\nUID:u{n}\r\nDTSTAMP:20261124T100000Z\r\nDTSTART:2026120{n}T090000Z\r\n"
                  f"DTEND:2026120{n}T100000Z\r\nSUMMARY:s{n}\r\nEND:VEVENT\r\n" for n in (1, 2, 3))
        + "END:VCALENDAR\r\n")
    assert _run(monkeypatch, capsys, "calendar", "import", "--owner", "ina", "--slug", "c", str(export))[1] \
        == "3 items created, 0 replaced\n"
    assert _run(monkeypatch, capsys, "calendar", "import", "--owner", "ina", "--slug", "c", str(export))[1] \
        == "0 items created, 3 replaced\n"
    store = Store(load_settings().effective_database_url)
    with store.read() as session:
        assert sorted(row.uid for row in items.all_of(session, 1)) == ["u1", "u2", "u3"]
    store.dispose()
    code, _, err = _run(monkeypatch, capsys, "calendar", "import", "--owner", "ina", "--slug", "c", "-",
                        stdin="not a calendar")
    assert code == 2 and "not importable iCalendar" in err


def test_import_keeps_each_items_time_zone_and_refuses_objects_without_uid(
        env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from datetime import UTC, datetime

    from bridge.settings import load_settings
    from bridge.store import items
    from bridge.store.db import Store

    _run(monkeypatch, capsys, "tenant", "create", "T")
    _run(monkeypatch, capsys, "user", "create", "--tenant", "T", "--login", "ina", "--email", "i@example.org",
         "--password-stdin", stdin="long enough password\n")
    _run(monkeypatch, capsys, "calendar", "create", "--owner", "ina", "--slug", "c", "--timezone", "UTC")
    fixtures = Path(__file__).parent.parent / "fixtures"
    series = (fixtures / "weekly_override_exdate_issue3.ics").read_text()
    export = env / "series.ics"
    export.write_text(series)
    assert _run(monkeypatch, capsys, "calendar", "import", "--owner", "ina", "--slug", "c", str(export))[1] \
        == "1 items created, 0 replaced\n"
    store = Store(load_settings().effective_database_url)
    with store.read() as session:
        (row,) = items.all_of(session, 1)
        assert "BEGIN:VTIMEZONE" in row.text and "TZID:Europe/Berlin" in row.text
        assert row.dtstart == datetime(2026, 12, 7, 8, 0, tzinfo=UTC)  # 09:00 in Berlin, not in UTC
    store.dispose()
    export.write_text(series.replace("UID:weekly-standup@calbridge.test\r\n", "", 1)
                      .replace("UID:weekly-standup@calbridge.test\n", "", 1))
    code, _, err = _run(monkeypatch, capsys, "calendar", "import", "--owner", "ina", "--slug", "c", str(export))
    assert code == 2 and "has no UID" in err


def test_secrets_rotate_re_encrypts_stored_credentials(env: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from sqlalchemy import select

    from bridge.secrets import Secrets, new_key
    from bridge.settings import Settings
    from bridge.store import calendars, connections, migrate, users
    from bridge.store.db import Store
    from bridge.store.models import Connection

    old = new_key()
    monkeypatch.setenv("BRIDGE_SECRET_KEYS", old)
    store = Store(f"sqlite:///{env / 'calbridge.sqlite3'}")
    migrate.upgrade(store)
    with store.write() as session:
        owner = users.create_user(session, users.create_tenant(session, "T"), login="t", email="t@example.org",
                                  password_hash="x")
        connection = connections.create_connection(
            session, calendars.create_calendar(session, owner, "c", timezone="UTC"), "caldav")
        connection.credentials = Secrets([old]).encrypt("remote password")
    new = new_key()
    monkeypatch.setenv("BRIDGE_SECRET_KEYS", f"{new},{old}")
    code, out, _ = _run(monkeypatch, capsys, "secrets", "rotate")
    assert code == 0 and out.startswith("1 stored credentials")
    with store.read() as session:
        stored = session.scalars(select(Connection)).one().credentials
    assert Secrets([new]).decrypt(stored) == "remote password"
    assert Settings(secret_keys=new).secret_keys == new
    store.dispose()


def test_calendar_remove_says_what_it_ends_and_needs_yes(env: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from datetime import UTC, datetime, timedelta

    from bridge import bookings, changefeed
    from bridge.store import calendars, migrate, users
    from bridge.store.db import Store

    store = Store(f"sqlite:///{env / 'calbridge.sqlite3'}")
    migrate.upgrade(store)
    start = datetime(2030, 1, 7, 9, tzinfo=UTC)
    with store.write() as session:
        tenant = users.create_tenant(session, "T")
        owner = users.create_user(session, tenant, login="t", email="t@example.org", password_hash="x")
        calendar = calendars.create_calendar(session, owner, "c", timezone="UTC")
        booking, _ = bookings.create(session, calendar, bookings.BookingRequest(
            start, start + timedelta(minutes=30), "Erika Mustermann", "erika@example.com"), "k1", start)
        booking_id, tenant_id = booking.public_id, tenant.id

    code, _, err = _run(monkeypatch, capsys, "calendar", "remove", "--owner", "t", "--slug", "c")
    assert code == 2 and "cancels 1 booking(s)" in err and "--yes" in err
    code, out, _ = _run(monkeypatch, capsys, "calendar", "remove", "--owner", "t", "--slug", "c", "--yes")
    assert code == 0 and "1 booking(s) cancelled" in out
    code, out, _ = _run(monkeypatch, capsys, "calendar", "list")
    assert out == ""
    with store.read() as session:
        ended = [c for c in changefeed.page(session, tenant_id, None).changes if c["deleted"]]
    assert [(c["booking"]["id"], c["booking"]["status"]) for c in ended] == [(booking_id, "cancelled")]
    store.dispose()
