"""The outbox over a real SMTP server (aiosmtpd) on loopback: queued in a transaction, sent once,
retried while the server is down, deduplicated by key, resent with the same Message-ID after a
crash, never a third time; plain, STARTTLS and implicit TLS, with and without login."""

from __future__ import annotations

import smtplib
import threading
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import icalendar
import pytest
from sqlalchemy import select

from bridge.notify import sender as mail_sender
from bridge.notify.message import Appointment, Person, build_message
from bridge.notify.queue import queue_mail
from bridge.secrets import Secrets, new_key
from bridge.settings import Settings
from bridge.store import outbox, users
from bridge.store.db import Store
from bridge.store.models import Outbox
from tests.integration.notify_smtp import T0, Clock, SmtpServer
from tests.standins import tls

# aiosmtpd warns about login without TLS, which the plain case tests on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")

@pytest.fixture
def secrets() -> Secrets:
    return Secrets([new_key()])


@pytest.fixture
def tenant_id(store: Store) -> int:
    with store.write() as session:
        return users.create_tenant(session, "praxis").id


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


def _message(to: str = "kunde@example.com", subject: str = "Ihr Termin") -> EmailMessage:
    message = EmailMessage()
    message["To"] = to
    message["Subject"] = subject
    message.set_content("Ihr Termin am 25.11.2026 um 10:00 Uhr.")
    return message


def _queue(store: Store, secrets: Secrets, settings: Settings, tenant_id: int, *parts: str | int,
           bcc: Sequence[str] = (), to: str = "kunde@example.com", now: datetime = T0) -> bool:
    with store.write() as session:
        return queue_mail(session, secrets, settings, tenant_id=tenant_id, key=outbox.dedupe_key(*parts),
                          kind="notice_created", message=_message(to), bcc=bcc, now=now)


def _sender(store: Store, secrets: Secrets, settings: Settings, clock: Clock,
            transport: mail_sender.SmtpTransport | None = None) -> mail_sender.MailSender:
    transport = transport or mail_sender.SmtpTransport(settings, ssl_context=tls.client_context(), timeout=5)
    return mail_sender.MailSender(store, secrets, transport, clock=clock)


def _rows(store: Store) -> list[Outbox]:
    with store.read() as session:
        return list(session.scalars(select(Outbox).order_by(Outbox.id)))


def test_a_queued_mail_is_sent_once_with_its_message_id(store: Store, secrets: Secrets, settings: Settings,
                                                         tenant_id: int, smtp: SmtpServer) -> None:
    config = smtp.settings(settings)
    assert _queue(store, secrets, config, tenant_id, 7, "item.ics", "change-1", bcc=["owner@praxis.example"])
    clock = Clock()
    sender = _sender(store, secrets, config, clock)
    assert sender.run_pending() == 1
    assert sender.run_pending() == 0
    clock.now += timedelta(days=1)
    assert sender.run_pending() == 0

    [mail] = smtp.inbox.mails
    assert mail.sender == "calendar@praxis.example"
    assert sorted(mail.recipients) == ["kunde@example.com", "owner@praxis.example"]
    assert mail.message["To"] == "kunde@example.com"
    assert mail.message["Bcc"] is None and "owner@praxis.example" not in mail.message.as_string()
    [row] = _rows(store)
    assert mail.message["Message-ID"] == row.message_id
    assert row.message_id.endswith("@praxis.example>")
    assert (row.status, row.attempts, row.envelope, row.content) == ("sent", 1, "", "")


def test_the_same_change_is_queued_once(store: Store, secrets: Secrets, settings: Settings, tenant_id: int,
                                        smtp: SmtpServer) -> None:
    config = smtp.settings(settings)
    assert _queue(store, secrets, config, tenant_id, 7, "item.ics", "change-1")
    assert not _queue(store, secrets, config, tenant_id, 7, "item.ics", "change-1")
    assert _queue(store, secrets, config, tenant_id, 7, "item.ics", "change-2")
    _sender(store, secrets, config, Clock()).run_pending()
    assert len(smtp.inbox.mails) == 2
    assert not _queue(store, secrets, config, tenant_id, 7, "item.ics", "change-1")  # also once it is sent
    assert _sender(store, secrets, config, Clock()).run_pending() == 0


def test_a_queued_mail_rolls_back_with_its_change(store: Store, secrets: Secrets, settings: Settings,
                                                  tenant_id: int, smtp: SmtpServer) -> None:
    config = smtp.settings(settings)
    with pytest.raises(RuntimeError), store.write() as session:
        queue_mail(session, secrets, config, tenant_id=tenant_id, key=outbox.dedupe_key(1), kind="alert",
                   message=_message())
        raise RuntimeError("the change failed")
    assert _rows(store) == []


def test_no_mail_is_queued_without_smtp_settings(store: Store, secrets: Secrets, settings: Settings,
                                                 tenant_id: int) -> None:
    assert not _queue(store, secrets, settings, tenant_id, 1)
    assert _rows(store) == []


@pytest.mark.parametrize(("security", "login"), [("plain", True), ("starttls", False), ("starttls", True),
                                                  ("tls", False), ("tls", True)])
def test_delivery_over_each_security_and_login(store: Store, secrets: Secrets, settings: Settings, tenant_id: int,
                                               security: str, login: bool) -> None:
    with SmtpServer(security, login=login) as server:
        config = server.settings(settings)
        _queue(store, secrets, config, tenant_id, security, login)
        assert _sender(store, secrets, config, Clock()).run_pending() == 1
        assert [mail.recipients for mail in server.inbox.mails] == [["kunde@example.com"]]


def test_a_wrong_password_delays_the_mail(store: Store, secrets: Secrets, settings: Settings, tenant_id: int) -> None:
    with SmtpServer("starttls", login=True) as server:
        config = server.settings(settings, smtp_password="wrong")
        _queue(store, secrets, config, tenant_id, 1)
        assert _sender(store, secrets, config, Clock()).run_pending() == 0
        [row] = _rows(store)
        assert (row.status, row.last_error) == ("pending", "SMTP 535: login refused")


def test_a_server_that_is_down_delays_mail_without_losing_it(store: Store, secrets: Secrets, settings: Settings,
                                                             tenant_id: int) -> None:
    server = SmtpServer()
    config = server.settings(settings)
    for number in range(3):
        _queue(store, secrets, config, tenant_id, "change", number)
    clock = Clock()
    sender = _sender(store, secrets, config, clock)
    assert sender.run_pending() == 0  # nothing listens
    assert sender.run_pending() == 0  # backing off: not even tried
    rows = _rows(store)
    assert {(row.status, row.attempts, row.last_error) for row in rows} == {("pending", 1, "ConnectionRefusedError")}
    assert {row.next_attempt_at for row in rows} == {T0 + timedelta(seconds=30)}
    clock.now += timedelta(seconds=30)
    assert sender.run_pending() == 0
    assert {row.next_attempt_at for row in _rows(store)} == {clock.now + timedelta(seconds=60)}
    with server:
        clock.now += timedelta(seconds=60)
        assert sender.run_pending() == 3
        assert len(server.inbox.mails) == 3
    assert {row.status for row in _rows(store)} == {"sent"}


def test_mail_still_refused_after_days_is_given_up(store: Store, secrets: Secrets, settings: Settings,
                                                   tenant_id: int) -> None:
    config = SmtpServer().settings(settings)
    _queue(store, secrets, config, tenant_id, 1)
    clock = Clock()
    clock.now += mail_sender.MAX_AGE
    _sender(store, secrets, config, clock).run_pending()
    [row] = _rows(store)
    assert row.status == "failed" and row.last_error == "given up after 1 attempts: ConnectionRefusedError"
    assert (row.envelope, row.content) == ("", "")


def test_a_refused_recipient_is_a_permanent_failure_without_personal_data(
        store: Store, secrets: Secrets, settings: Settings, tenant_id: int, smtp: SmtpServer) -> None:
    config = smtp.settings(settings)
    smtp.inbox.refuse.add("nobody@example.com")
    _queue(store, secrets, config, tenant_id, 1, to="nobody@example.com")
    _queue(store, secrets, config, tenant_id, 2)
    assert _sender(store, secrets, config, Clock()).run_pending() == 1  # the next mail still goes
    failed, sent = _rows(store)
    assert (failed.status, failed.last_error) == ("failed", "SMTP 550 for every recipient")
    assert (failed.envelope, failed.content) == ("", "")
    assert sent.status == "sent" and [m.recipients for m in smtp.inbox.mails] == [["kunde@example.com"]]


def test_a_refused_blind_copy_does_not_hold_the_customers_mail(
        store: Store, secrets: Secrets, settings: Settings, tenant_id: int, smtp: SmtpServer) -> None:
    config = smtp.settings(settings)
    smtp.inbox.refuse.add("gone@praxis.example")
    _queue(store, secrets, config, tenant_id, 1, bcc=["gone@praxis.example"])
    assert _sender(store, secrets, config, Clock()).run_pending() == 1
    [row] = _rows(store)
    assert (row.status, row.last_error) == ("sent", "1 recipients refused")


class _Crash(BaseException):
    """The process dies here (not an Exception: nothing in the sender may catch it)."""


class _CrashingTransport(mail_sender.SmtpTransport):
    def __init__(self, settings: Settings, *, before_send: bool) -> None:
        super().__init__(settings, timeout=5)
        self.before_send = before_send

    def send(self, smtp: smtplib.SMTP, message: EmailMessage, sender: str, recipients: Sequence[str]) -> int:
        if self.before_send:
            raise _Crash
        super().send(smtp, message, sender, recipients)
        raise _Crash


def test_a_crash_between_commit_and_send_sends_once(store: Store, secrets: Secrets, settings: Settings,
                                                    tenant_id: int, smtp: SmtpServer) -> None:
    config = smtp.settings(settings)
    _queue(store, secrets, config, tenant_id, 1)
    clock = Clock()
    with pytest.raises(_Crash):
        _sender(store, secrets, config, clock, _CrashingTransport(config, before_send=True)).run_pending()
    assert smtp.inbox.mails == []
    sender = _sender(store, secrets, config, clock)
    assert sender.run_pending() == 0  # the dead sender's claim holds
    clock.now += timedelta(seconds=mail_sender.CLAIM_SECONDS)
    assert sender.run_pending() == 1
    clock.now += timedelta(days=1)
    assert sender.run_pending() == 0
    assert len(smtp.inbox.mails) == 1


def test_a_crash_after_send_resends_once_with_the_same_message_id(
        store: Store, secrets: Secrets, settings: Settings, tenant_id: int, smtp: SmtpServer) -> None:
    config = smtp.settings(settings)
    _queue(store, secrets, config, tenant_id, 1)
    clock = Clock()
    with pytest.raises(_Crash):
        _sender(store, secrets, config, clock, _CrashingTransport(config, before_send=False)).run_pending()
    assert len(smtp.inbox.mails) == 1
    sender = _sender(store, secrets, config, clock)
    clock.now += timedelta(seconds=mail_sender.CLAIM_SECONDS)
    assert sender.run_pending() == 1
    for _ in range(3):
        clock.now += timedelta(hours=2)
        assert sender.run_pending() == 0
    first, second = smtp.inbox.mails
    assert first.message["Message-ID"] == second.message["Message-ID"]
    assert first.message["Date"] == second.message["Date"]
    assert _rows(store)[0].status == "sent"


def test_a_confirmation_with_a_blind_copy_arrives_as_the_customer_should_see_it(
        store: Store, secrets: Secrets, settings: Settings, tenant_id: int, smtp: SmtpServer) -> None:
    config = smtp.settings(settings)
    appointment = Appointment(uid="booking-42@calbridge", sequence=1, start=datetime(2026, 7, 1, 13, 30, tzinfo=UTC),
                              end=datetime(2026, 7, 1, 14, 0, tzinfo=UTC), timezone="Europe/Berlin",
                              organizer=Person("dr.berg@praxis.example", "Dr. Berg"),
                              attendee=Person("kunde@example.com", "Anna Kunde"))
    with store.write() as session:
        queue_mail(session, secrets, config, tenant_id=tenant_id, key=outbox.dedupe_key("booking", 42, 1),
                   kind="booking_rescheduled", message=build_message("booking_rescheduled", appointment, "en"),
                   bcc=["dr.berg@praxis.example"])
    assert _sender(store, secrets, config, Clock()).run_pending() == 1

    [mail] = smtp.inbox.mails
    assert sorted(mail.recipients) == ["dr.berg@praxis.example", "kunde@example.com"]
    raw = mail.message.as_string()
    assert mail.message["Bcc"] is None and "dr.berg@praxis.example" not in str(mail.message["To"])
    assert "Bcc" not in raw
    assert mail.message["To"] == "Anna Kunde <kunde@example.com>"
    assert mail.message["Content-Language"] == "en"
    assert mail.message["Subject"] == "Appointment rescheduled: Wednesday, 1 July 2026 at 15:30"  # summer time
    body = mail.message.get_body(("plain",))
    assert body is not None and "15:30–16:00 (Europe/Berlin)" in body.get_content()
    [attachment] = list(mail.message.iter_attachments())
    assert attachment.get_content_type() == "text/calendar" and attachment.get_param("method") == "REQUEST"
    calendar = icalendar.Calendar.from_ical(attachment.get_content())
    [event] = calendar.walk("VEVENT")
    assert (str(calendar["METHOD"]), str(event["UID"]), int(event["SEQUENCE"])) == (
        "REQUEST", "booking-42@calbridge", 1)
    assert str(event["ORGANIZER"]) == "mailto:dr.berg@praxis.example"
    assert str(event["ATTENDEE"]) == "mailto:kunde@example.com"


def test_old_sent_rows_are_pruned_and_pending_ones_kept(store: Store, secrets: Secrets, settings: Settings,
                                                        tenant_id: int) -> None:
    clock = Clock()
    server = SmtpServer()
    config = server.settings(settings)
    sender = _sender(store, secrets, config, clock)
    with server:
        _queue(store, secrets, config, tenant_id, "old")
        assert sender.run_pending() == 1
    clock.now += timedelta(days=mail_sender.KEEP_DAYS + 1)
    _queue(store, secrets, config, tenant_id, "waiting", now=clock.now)  # the server is gone: it waits
    sender.run_pending()
    assert [(row.status, row.created_at) for row in _rows(store)] == [("pending", clock.now)]


def test_the_sender_thread_delivers_and_stops(store: Store, secrets: Secrets, settings: Settings, tenant_id: int,
                                              smtp: SmtpServer) -> None:
    config = smtp.settings(settings)
    sender = mail_sender.MailSender.from_settings(store, config)
    assert sender is not None and mail_sender.MailSender.from_settings(store, settings) is None  # no SMTP: no sender
    sender.secrets = secrets
    sender.poll_seconds = 0.05
    stop = threading.Event()
    thread = threading.Thread(target=sender.serve, args=(stop,))
    thread.start()
    try:
        _queue(store, secrets, config, tenant_id, 1)
        deadline = time.monotonic() + 10
        while not smtp.inbox.mails and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive() and len(smtp.inbox.mails) == 1
