"""Notices and booking confirmations end to end: queued in a store transaction, delivered over a real
SMTP server on loopback, parsed as the customer's mail program would (recipient, no Bcc header,
language, local time, the attachment's METHOD, UID and SEQUENCE)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import icalendar
import pytest

from bridge import bookings
from bridge.notify.alerts import alert_recipients, queue_alert
from bridge.notify.message import Person
from bridge.notify.mirrored import MirrorNotifier
from bridge.notify.notices import Sender, queue_booking_mail
from bridge.notify.sender import MailSender, SmtpTransport
from bridge.passwords import hash_password
from bridge.secrets import Secrets, new_key
from bridge.settings import Settings
from bridge.store import calendars, connections, mappings, outbox, users
from bridge.store.db import Store
from bridge.store.mappings import MappingValues
from bridge.store.models import Calendar, Connection
from tests.integration.notify_smtp import T0, Clock, Received, SmtpServer

BERLIN = ZoneInfo("Europe/Berlin")
PROVIDER = Person("dr.berg@praxis.example", "Dr. Berg")
HREF = "c1-remote-1.ics"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@pytest.fixture
def world(store: Store, settings: Settings, smtp: SmtpServer) -> tuple[Sender, Calendar, Connection]:
    config = smtp.settings(settings)
    with store.write() as session:
        tenant = users.create_tenant(session, "praxis")
        owner = users.create_user(session, tenant, login="berg", email=PROVIDER.email,
                                  password_hash=hash_password("x" * 12))
        calendar = calendars.create_calendar(session, owner, "praxis", timezone="Europe/Berlin")
        connection = connections.create_connection(session, calendar, "caldav")
        mappings.save(session, connection, MappingValues(HREF, "remote-1", "etag-1", "", "", "remote"))
    sender = Sender(config, Secrets([new_key()]), tenant.id, "Europe/Berlin", PROVIDER, "de")
    return sender, calendar, connection


def _event(start: datetime, location: str = "Praxis, Raum 2") -> icalendar.Calendar:
    calendar = icalendar.Calendar()
    event = icalendar.Event()
    event.add("uid", "hand-written-1")
    event.add("dtstart", start)
    event.add("dtend", start + timedelta(minutes=30))
    event.add("summary", "Kontrolle kunde@example.com")
    event.add("description", "Rückfragen an dr.berg@praxis.example")
    event.add("location", location)
    calendar.add_component(event)
    return calendar


def _send(store: Store, sender: Sender, clock: Clock) -> int:
    transport = SmtpTransport(sender.settings, timeout=5)
    return MailSender(store, sender.secrets, transport, clock=clock).run_pending()


def _calendar_of(mail: Received) -> tuple[icalendar.Calendar, icalendar.Event]:
    [attachment] = list(mail.message.iter_attachments())
    calendar = icalendar.Calendar.from_ical(attachment.get_content())
    [event] = calendar.walk("VEVENT")
    return calendar, event


def _notifier(sender: Sender, connection: Connection, *, notify: bool) -> MirrorNotifier:
    return MirrorNotifier(sender, connection.id, BERLIN, notify=notify)


def _seen(store: Store, notifier: MirrorNotifier, href: str, event: icalendar.Calendar, version: str,
          now: datetime) -> bool:
    """What the sync does for a created or changed remote event: the mapping row, then the notifier."""
    with store.write() as session:
        connection = session.get(Connection, notifier.connection_id)
        assert connection is not None
        mappings.save(session, connection, MappingValues(href, "remote-" + href, version, "", "", "remote"))
        return notifier.seen(session, href, href.removesuffix(".ics") + "@calbridge", event, version, now)


def _gone(store: Store, notifier: MirrorNotifier, href: str, version: str, now: datetime) -> bool:
    """What the sync does for a deleted remote event: the notifier, then the mapping row goes."""
    with store.write() as session:
        queued = notifier.gone(session, href, href.removesuffix(".ics") + "@calbridge", version, now)
        mappings.forget(session, notifier.connection_id, item_href=href)
        return queued


def test_an_event_created_moved_and_deleted_by_the_provider_tells_its_customer(
        store: Store, world: tuple[Sender, Calendar, Connection], smtp: SmtpServer) -> None:
    sender, _, connection = world
    notifier = _notifier(sender, connection, notify=True)
    created = _event(datetime(2026, 12, 1, 9, 0, tzinfo=BERLIN))
    moved = _event(datetime(2026, 12, 3, 14, 30, tzinfo=BERLIN))
    described = _event(datetime(2026, 12, 3, 14, 30, tzinfo=BERLIN))
    described.walk("VEVENT")[0]["DESCRIPTION"] = "Bitte Befunde mitbringen"
    clock = Clock()

    assert _seen(store, notifier, HREF, created, "etag-1", clock.now)
    assert not _seen(store, notifier, HREF, created, "etag-1", clock.now)  # the same change again (a rerun)
    clock.now += timedelta(minutes=5)
    assert _seen(store, notifier, HREF, moved, "etag-2", clock.now)
    assert not _seen(store, notifier, HREF, described, "etag-3", clock.now)  # no new time or place: nothing
    clock.now += timedelta(minutes=5)
    assert _gone(store, notifier, HREF, "etag-3", clock.now)
    assert not _gone(store, notifier, HREF, "etag-3", clock.now)  # the address went with the mapping row
    assert _send(store, sender, clock) == 3

    mails = smtp.inbox.mails
    assert [mail.recipients for mail in mails] == [["kunde@example.com"]] * 3
    # (Python folds a long Subject right after the colon; unfolded, it starts with a blank mail programs drop.)
    assert [mail.message["Subject"].strip() for mail in mails] == [
        "Ihr Termin am Dienstag, 1. Dezember 2026 um 09:00 Uhr",
        "Ihr Termin wurde verlegt: Donnerstag, 3. Dezember 2026 um 14:30 Uhr",
        "Ihr Termin am Donnerstag, 3. Dezember 2026 um 14:30 Uhr wurde abgesagt",
    ]
    assert all(mail.message["Content-Language"] == "de" and mail.message["Bcc"] is None for mail in mails)
    body = mails[1].message.get_body(("plain",))
    assert body is not None and "vom Dienstag, 1. Dezember 2026 um 09:00 Uhr" in body.get_content()
    assert "Ort: Praxis, Raum 2" in body.get_content()
    parsed = [_calendar_of(mail) for mail in mails]
    assert [str(calendar["METHOD"]) for calendar, _ in parsed] == ["REQUEST", "REQUEST", "CANCEL"]
    assert {str(event["UID"]) for _, event in parsed} == {"c1-remote-1@calbridge"}
    sequences = [int(event["SEQUENCE"]) for _, event in parsed]
    assert sequences == sorted(sequences) and len(set(sequences)) == 3
    assert [str(event["ORGANIZER"]) for _, event in parsed] == ["mailto:dr.berg@praxis.example"] * 3
    assert parsed[2][1].decoded("DTSTART") == datetime(2026, 12, 3, 14, 30, tzinfo=BERLIN)


def test_baselines_of_500_events_mail_no_one_and_one_change_afterwards_mails_once(
        store: Store, world: tuple[Sender, Calendar, Connection], smtp: SmtpServer) -> None:
    sender, _, connection = world
    clock = Clock()
    start = datetime(2026, 12, 1, 8, 0, tzinfo=BERLIN)
    events = {f"e{number}.ics": _event(start + timedelta(hours=number)) for number in range(500)}
    for _ in ("first sync", "token reset", "410: full resync"):
        baseline = _notifier(sender, connection, notify=False)
        with store.write() as session:
            for href, event in events.items():
                mappings.save(session, connection, MappingValues(href, "remote-" + href, "v1", "", "", "remote"))
                baseline.seen(session, href, href, event, "v1", clock.now)
    with store.read() as session:
        assert outbox.counts(session) == {"pending": 0, "sent": 0, "failed": 0}
    assert _send(store, sender, clock) == 0

    notifier = _notifier(sender, connection, notify=True)
    assert not _seen(store, notifier, "e7.ics", events["e7.ics"], "v1", clock.now)  # unchanged: nothing
    assert _seen(store, notifier, "e7.ics", _event(start + timedelta(days=2)), "v2", clock.now)
    assert _send(store, sender, clock) == 1
    [mail] = smtp.inbox.mails
    assert mail.message["Subject"].strip().startswith("Ihr Termin wurde verlegt")
    body = mail.message.get_body(("plain",))
    assert body is not None and "vom Dienstag, 1. Dezember 2026 um 15:00 Uhr" in body.get_content()


def test_no_address_no_notice_and_turning_the_option_off_forgets_customers(
        store: Store, world: tuple[Sender, Calendar, Connection], smtp: SmtpServer) -> None:
    sender, _, connection = world
    notifier = _notifier(sender, connection, notify=True)
    anonymous = _event(T0)
    anonymous.walk("VEVENT")[0]["SUMMARY"] = "Kontrolle (Anruf dr.berg@praxis.example)"
    assert not _seen(store, notifier, "anonymous.ics", anonymous, "v1", T0)
    baseline = _notifier(sender, connection, notify=False)
    assert not _seen(store, baseline, HREF, _event(T0), "v1", T0)
    with store.write() as session:
        assert outbox.customer_of(session, connection.id, HREF) is not None
        assert outbox.customer_of(session, connection.id, "anonymous.ics") is None
        assert outbox.forget_customers(session, connection.id) == 1  # notify_customers turned off
    assert not _gone(store, notifier, HREF, "v1", T0)  # nobody is known any more
    assert _send(store, sender, Clock()) == 0 and smtp.inbox.mails == []


def test_booking_confirmations_reach_the_customer_and_a_blind_copy_the_provider(
        store: Store, world: tuple[Sender, Calendar, Connection], smtp: SmtpServer) -> None:
    sender, calendar, _ = world
    start = datetime(2026, 12, 4, 10, 0, tzinfo=UTC)  # 11:00 in Berlin
    request = bookings.BookingRequest(start, start + timedelta(minutes=45), "Anna Kunde", "anna@example.com", "en")
    with store.write() as session:
        row = session.get(Calendar, calendar.id)
        assert row is not None
        booking, _ = bookings.create(session, row, request, "key-1", T0)
        uid = f"{booking.public_id}@{bookings.UID_DOMAIN}"
        assert queue_booking_mail(session, sender, booking, "booking_confirmed", uid=uid, bcc_provider=True, now=T0)
        assert not queue_booking_mail(session, sender, booking, "booking_confirmed", uid=uid, bcc_provider=True)
        bookings.reschedule(session, row, booking, start + timedelta(days=1), start + timedelta(days=1, hours=1), T0)
        assert queue_booking_mail(session, sender, booking, "booking_rescheduled", uid=uid, previous_start=start,
                                  now=T0)
        bookings.cancel(session, row, booking, T0)
        assert queue_booking_mail(session, sender, booking, "booking_cancelled", uid=uid, bcc_provider=True, now=T0)
    assert _send(store, sender, Clock()) == 3

    confirmed, moved, cancelled = smtp.inbox.mails
    assert sorted(confirmed.recipients) == ["anna@example.com", "dr.berg@praxis.example"]
    assert moved.recipients == ["anna@example.com"]
    for mail in (confirmed, moved, cancelled):
        assert mail.message["To"] == "Anna Kunde <anna@example.com>"
        assert mail.message["Bcc"] is None and "dr.berg@praxis.example>" not in str(mail.message["To"])
        assert mail.message["Content-Language"] == "en"
    assert confirmed.message["Subject"].strip() == "Appointment confirmed: Friday, 4 December 2026 at 11:00"
    parsed = [_calendar_of(mail) for mail in (confirmed, moved, cancelled)]
    assert [(str(c["METHOD"]), str(e["UID"]), int(e["SEQUENCE"])) for c, e in parsed] == [
        ("REQUEST", uid, 0), ("REQUEST", uid, 1), ("CANCEL", uid, 2)]


def test_an_alert_reaches_owner_and_admins_once_per_episode(
        store: Store, world: tuple[Sender, Calendar, Connection], smtp: SmtpServer) -> None:
    sender, calendar, connection = world
    with store.write() as session:
        tenant = users.tenant_by_name(session, "praxis")
        users.create_user(session, tenant, login="chefin", email="chefin@praxis.example",
                          password_hash=hash_password("y" * 12), role="admin")
        owner = users.user_by_login(session, "berg")
        row = session.get(Calendar, calendar.id)
        assert owner is not None and row is not None
        recipients = alert_recipients(session, row, owner)

        def alert(episode: int) -> bool:
            return queue_alert(session, sender.settings, sender.secrets, tenant_id=calendar.tenant_id,
                               connection_id=connection.id, kind="alert_auth", episode=episode,
                               recipients=recipients, language="de", connection="Google (praxis)",
                               calendar="praxis", provider_name="Google", since=T0, timezone="Europe/Berlin")

        assert alert(17) and not alert(17)  # the same transition, replayed
        assert alert(42)  # the next episode, after a recovery
    assert _send(store, sender, Clock()) == 2
    first = smtp.inbox.mails[0]
    assert sorted(first.recipients) == ["chefin@praxis.example", "dr.berg@praxis.example"]
    assert first.message["Subject"].strip() == "Kalenderverbindung gestoppt: Anmeldung abgelehnt (Google (praxis))"
    body = first.message.get_body(("plain",))
    assert body is not None and "Seit Dienstag, 24. November 2026, 10:00 wird" in body.get_content()
    assert list(first.message.iter_attachments()) == []
