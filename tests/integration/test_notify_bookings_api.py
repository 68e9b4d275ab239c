"""Issue 8, booking confirmations: a booking created, moved or cancelled through /api/v1 on a running
calbridge mails its customer over a real SMTP server (aiosmtpd) with the iCalendar attachment; with the
calendar's ``bcc_provider`` on (set over the API or the CLI) the owner gets a blind copy that the
customer's message never shows; a replayed request or a second cancel mails no one again."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import icalendar
import pytest

from bridge.cli import main as cli_main
from bridge.notify.sender import MailSender
from bridge.secrets import new_key
from bridge.settings import Settings
from bridge.store import outbox
from bridge.store.db import Store
from tests.api_schema import check
from tests.conftest import Bridge, serve
from tests.integration.notify_smtp import Received, SmtpServer

MONDAY = datetime(2026, 12, 7, tzinfo=UTC)
CUSTOMER = "erika@example.com"
OWNER = "nora@example.org"  # Bridge.add_user gives <login>@example.org


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@pytest.fixture
def salon(store: Store, settings: Settings, smtp: SmtpServer) -> Iterator[Bridge]:
    """calbridge with mail settings, a tenant with the owner nora and her calendar."""
    mailing = smtp.settings(settings)
    with serve(store, mailing) as url:
        bridge = Bridge(url=url, store=store, settings=mailing)
        bridge.add_user("Salon", "nora")
        bridge.add_calendar("nora", "cal")
        yield bridge


@pytest.fixture
def engine(salon: Bridge) -> Iterator[httpx.Client]:
    with salon.api(salon.add_token("Salon", scope="admin")) as client:
        yield client


def _book(engine: httpx.Client, calendar: int, start: datetime, key: str = "k1") -> httpx.Response:
    body = {"calendar": calendar, "start": _iso(start), "end": _iso(start + timedelta(minutes=30)),
            "customer": {"name": "Erika Mustermann", "email": CUSTOMER, "language": "en"}, "notes": "Haarschnitt"}
    return engine.post("/bookings", json=body, headers={"Idempotency-Key": key})


def _delivered(salon: Bridge, smtp: SmtpServer) -> list[Received]:
    """What the worker's mail sender delivers of what is queued."""
    sender = MailSender.from_settings(salon.store, salon.settings)
    assert sender is not None
    sender.run_pending()
    return list(smtp.inbox.mails)


def _attachment(mail: Received) -> icalendar.Calendar:
    [part] = list(mail.message.iter_attachments())
    return icalendar.Calendar.from_ical(part.get_content())


def test_a_booking_created_moved_and_cancelled_over_the_api_mails_its_customer_each_time(
        salon: Bridge, engine: httpx.Client, smtp: SmtpServer) -> None:
    calendar = salon.calendar_id("nora", "cal")
    created = _book(engine, calendar, MONDAY + timedelta(hours=9))
    assert created.status_code == 201
    assert _book(engine, calendar, MONDAY + timedelta(hours=9)).status_code == 200  # replayed: no second mail
    booking = created.json()["id"]
    [confirmed] = _delivered(salon, smtp)
    assert confirmed.recipients == [CUSTOMER] and "Bcc" not in confirmed.message
    invite = _attachment(confirmed)
    assert str(invite["METHOD"]) == "REQUEST"
    [event] = invite.walk("VEVENT")
    assert str(event["UID"]) == f"{booking}@booking.calbridge"
    body = confirmed.message.get_body(("plain",))
    assert body is not None and "10:00" in body.get_content()  # 09:00 UTC is 10:00 in Berlin

    moved = engine.patch(f"/bookings/{booking}", json={"start": _iso(MONDAY + timedelta(hours=13)),
                                                        "end": _iso(MONDAY + timedelta(hours=13, minutes=30))})
    assert moved.status_code == 200
    assert engine.delete(f"/bookings/{booking}").status_code == 200
    assert engine.delete(f"/bookings/{booking}").status_code == 200  # cancelling twice mails once
    mails = _delivered(salon, smtp)
    assert [mail.recipients for mail in mails] == [[CUSTOMER]] * 3
    rescheduled, cancelled = _attachment(mails[1]), _attachment(mails[2])
    assert str(rescheduled["METHOD"]) == "REQUEST" and str(cancelled["METHOD"]) == "CANCEL"
    assert rescheduled.walk("VEVENT")[0].decoded("DTSTART") == MONDAY + timedelta(hours=13)
    sequences = [int(_attachment(mail).walk("VEVENT")[0]["SEQUENCE"]) for mail in mails]
    assert sequences == sorted(set(sequences))  # each later mail supersedes the one before
    assert len({mail.message["Message-ID"] for mail in mails}) == 3


def test_with_bcc_provider_on_the_owner_gets_a_blind_copy_the_customer_cannot_see(
        salon: Bridge, engine: httpx.Client, smtp: SmtpServer) -> None:
    calendar = salon.calendar_id("nora", "cal")
    assert engine.get(f"/calendars/{calendar}").json()["bcc_provider"] is False
    changed = engine.patch(f"/calendars/{calendar}", json={"bcc_provider": True})
    assert changed.status_code == 200 and changed.json()["bcc_provider"] is True
    check(changed, "/calendars/{calendar_id}", "patch")
    refused = engine.patch(f"/calendars/{calendar}", json={"timezone": "UTC"})
    assert refused.status_code == 422
    assert _book(engine, calendar, MONDAY + timedelta(hours=9)).status_code == 201
    [mail] = _delivered(salon, smtp)
    assert sorted(mail.recipients) == sorted([CUSTOMER, OWNER])  # the envelope has both
    assert "Bcc" not in mail.message  # the message both receive names only the customer
    assert [address.addr_spec for address in mail.message["To"].addresses] == [CUSTOMER]
    assert not [name for name, value in mail.message.items() if OWNER in str(value)]  # in no header at all


def _config(path: Path, salon: Bridge, **extra: str | int) -> Path:
    """The TOML file an admin writes for the CLI: the same database, data directory and SMTP server."""
    settings = salon.settings
    values = {"database_url": salon.store.url.render_as_string(hide_password=False), "data_dir": str(settings.data_dir),
              "smtp_host": settings.smtp_host, "smtp_port": settings.smtp_port, "smtp_security": settings.smtp_security,
              "mail_from": settings.mail_from, **extra}
    path.write_text("".join(f"{name} = {json.dumps(value)}\n" for name, value in values.items()), encoding="utf-8")
    return path


def test_the_cli_sets_bcc_provider_and_the_worker_sends_what_bookings_queued(
        salon: Bridge, engine: httpx.Client, smtp: SmtpServer, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    config = str(_config(tmp_path / "calbridge.toml", salon))
    assert cli_main(["--config", config, "calendar", "create", "--owner", "nora", "--slug", "team",
                     "--bcc-provider"]) == 0
    assert cli_main(["--config", config, "calendar", "set", "--owner", "nora", "--slug", "cal",
                     "--bcc-provider", "on"]) == 0
    assert cli_main(["--config", config, "calendar", "set", "--owner", "nora", "--slug", "nope",
                     "--bcc-provider", "on"]) == 2
    calendars = {c["slug"]: c for c in engine.get("/calendars").json()["calendars"]}
    assert calendars["team"]["bcc_provider"] is True and calendars["cal"]["bcc_provider"] is True
    assert cli_main(["--config", config, "calendar", "set", "--owner", "nora", "--slug", "cal",
                     "--bcc-provider", "off"]) == 0
    assert _book(engine, calendars["team"]["id"], MONDAY + timedelta(hours=9), key="team").status_code == 201
    assert _book(engine, calendars["cal"]["id"], MONDAY + timedelta(hours=9), key="cal").status_code == 201
    capsys.readouterr()
    assert cli_main(["--config", config, "worker", "--once"]) == 0
    assert "2 mails sent" in capsys.readouterr().err
    mails = list(smtp.inbox.mails)
    assert sorted(sorted(mail.recipients) for mail in mails) == [[CUSTOMER], sorted([CUSTOMER, OWNER])]


def test_secrets_rotate_re_encrypts_queued_mails_so_the_old_key_can_go(
        salon: Bridge, engine: httpx.Client, smtp: SmtpServer, tmp_path: Path) -> None:
    assert _book(engine, salon.calendar_id("nora", "cal"), MONDAY + timedelta(hours=9)).status_code == 201
    old = (salon.settings.data_dir / "secret.key").read_text().strip()  # the key the server queued with
    fresh = new_key()
    both = str(_config(tmp_path / "both.toml", salon, secret_keys=f"{fresh},{old}"))
    assert cli_main(["--config", both, "secrets", "rotate"]) == 0
    only_new = str(_config(tmp_path / "new.toml", salon, secret_keys=fresh))
    assert cli_main(["--config", only_new, "worker", "--once"]) == 0
    [mail] = smtp.inbox.mails
    assert mail.recipients == [CUSTOMER]


def test_without_mail_settings_bookings_queue_nothing(store: Store, settings: Settings) -> None:
    with serve(store, dataclasses.replace(settings, smtp_host="")) as url:
        bridge = Bridge(url=url, store=store, settings=settings)
        bridge.add_user("Salon", "nora")
        bridge.add_calendar("nora", "cal")
        with bridge.api(bridge.add_token("Salon")) as engine:
            assert _book(engine, bridge.calendar_id("nora", "cal"), MONDAY).status_code == 201
    with store.read() as session:
        assert outbox.counts(session) == {"pending": 0, "sent": 0, "failed": 0}
