"""Issue 8, notices from the external calendar, through the real sync engine against a real Radicale on
loopback (and the Google stand-in, for a literal 410) and a real SMTP server (aiosmtpd): baselines (first
sync of 500 events naming customers, a token reset, a full resync after an expired token) mail no one;
one change afterwards mails exactly one customer with the local time and an iTIP REQUEST, a deletion a
CANCEL; the option off mails no one; a worker killed between the commit and the send still mails once;
a booking moved or deleted over there mails its customer from the booking's own data; a connection that
stops or is held mails its owner once."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import icalendar
import pytest
from sqlalchemy import func, select

from bridge.notify.sender import MailSender, SmtpTransport
from bridge.store import outbox
from bridge.store.db import Store
from bridge.store.models import Calendar, Connection, Mapping, User
from bridge.sync import checkpoint, connection_admin
from tests.integration.notify_smtp import Received, SmtpServer
from tests.scenarios.caldav_driver import CalDavProvider, caldav_provider
from tests.scenarios.driver import Provider
from tests.scenarios.faults import Crash, CrashingStore, FaultProxy, fault_proxy
from tests.scenarios.google_driver import google_provider
from tests.scenarios.world import NOW, World, make_world, single


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """A UTC instant in December 2026 (in the sync window of NOW)."""
    return datetime(2026, 12, day, hour, minute, tzinfo=UTC)


@pytest.fixture(scope="module")
def radicale(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CalDavProvider]:
    with caldav_provider("radicale", tmp_path_factory.mktemp("radicale")) as running:
        yield running


@pytest.fixture(scope="module")
def google(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    with google_provider(tmp_path_factory.mktemp("google")) as running:
        yield running


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with SmtpServer() as server:
        yield server


@contextmanager
def mailing_world(store: Store, radicale: Provider, smtp: SmtpServer, tmp_path: Path, *,
                  notify: bool = True, via: str | None = None) -> Iterator[World]:
    """A calendar connected to a fresh Radicale calendar, synced by an engine with mail settings;
    ``notify_customers`` set as asked, through the admin path a user takes."""
    with radicale.new_driver() as driver:
        world = make_world(store, driver, tmp_path, via=via)
        world.engine = replace(world.engine, settings=smtp.settings(world.engine.settings))
        if notify:
            set_notify(world, True)
        yield world


def set_notify(world: World, on: bool) -> None:
    with world.store.write() as session:
        connection = session.get(Connection, world.connection_id)
        assert connection is not None
        connection_admin.change_options(session, connection, {"notify_customers": on}, NOW, token_max_age_days=30)


def send(world: World) -> int:
    """One round of the mail sender, as the worker runs it."""
    settings = world.engine.settings
    return MailSender(world.store, world.engine.secrets, SmtpTransport(settings, timeout=5)).run_pending()


def mails_after_sending(world: World, smtp: SmtpServer) -> list[Received]:
    send(world)
    return list(smtp.inbox.mails)


def owner_of(world: World) -> User:
    with world.store.read() as session:
        calendar = session.get(Calendar, world.calendar_id)
        assert calendar is not None
        owner = session.get(User, calendar.owner_id)
        assert owner is not None
        return owner


def attachment(mail: Received) -> tuple[str, icalendar.Event]:
    """The iTIP method of the mail's calendar attachment, and its event."""
    [part] = list(mail.message.iter_attachments())
    calendar = icalendar.Calendar.from_ical(part.get_content())
    [event] = calendar.walk("VEVENT")
    assert part.get_param("method") == str(calendar["METHOD"])
    return str(calendar["METHOD"]), event


def text_of(mail: Received) -> str:
    body = mail.message.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def sync_ok(world: World, **kwargs: object) -> None:
    outcome = world.sync(**kwargs)  # type: ignore[arg-type]
    assert outcome.status == "ok", (outcome, world.last_run().error_message, world.counts())


# -- the must-show: baselines mail no one, one change mails one ------------------------------------------------

def test_baselines_over_500_events_naming_customers_mail_no_one_and_one_change_afterwards_mails_one(
        store: Store, radicale: CalDavProvider, smtp: SmtpServer, tmp_path: Path) -> None:
    with mailing_world(store, radicale, smtp, tmp_path) as world:
        handles = world.driver.create_many(
            (f"e{n:03}@phone", single(f"e{n:03}@phone", NOW + timedelta(days=1 + n // 8, hours=n % 8),
                                      summary=f"Kontrolle kunde{n}@example.com"))
            for n in range(500))
        sync_ok(world)  # the first sync of the connection
        assert world.last_run().baseline and len(world.mirrored()) == 500
        sync_ok(world, trigger="reset")  # a reset of the sync token
        assert world.last_run().baseline

        # The provider forgets the token; meanwhile one event moves: the full resync that follows tells no one.
        saved = checkpoint.decode(world.connection().sync_state)
        assert saved.adapter_state is not None
        expired = world.driver.expire_token(saved.adapter_state)
        world.set_state(checkpoint.encode(dataclasses.replace(saved, adapter_state=expired)))
        world.driver.update(handles[1], single("e001@phone", at(2, 8), summary="Kontrolle kunde1@example.com"))
        sync_ok(world)
        assert world.last_run().baseline and world.counts().get("token_invalid") is True
        assert mails_after_sending(world, smtp) == []
        with store.read() as session:
            assert outbox.counts(session) == {"pending": 0, "sent": 0, "failed": 0}

        # Now one real change: Termin e007 (09:00 Berlin) moves to 15:30 Berlin.
        world.driver.update(handles[7], single("e007@phone", at(3, 14, 30), summary="Kontrolle kunde7@example.com"))
        sync_ok(world)
        assert not world.last_run().baseline
        [mail] = mails_after_sending(world, smtp)
        assert mail.recipients == ["kunde7@example.com"]
        assert mail.message["To"].addresses[0].addr_spec == "kunde7@example.com"
        method, event = attachment(mail)
        assert method == "REQUEST"
        assert event.decoded("DTSTART") == at(3, 14, 30)
        assert "15:30" in text_of(mail) and "14:30" not in text_of(mail)  # the calendar's local time

        # The provider deletes it: the customer gets a CANCEL, though the deletion names no one.
        world.driver.delete(handles[7])
        sync_ok(world)
        mails = mails_after_sending(world, smtp)
        assert len(mails) == 2 and mails[1].recipients == ["kunde7@example.com"]
        cancel, cancelled = attachment(mails[1])
        assert cancel == "CANCEL" and cancelled["UID"] == event["UID"]
        sync_ok(world)  # a quiet run mails no one
        assert len(mails_after_sending(world, smtp)) == 2


def test_a_410_full_resync_from_google_mails_no_one_and_the_next_change_mails_one(
        store: Store, google: Provider, smtp: SmtpServer, tmp_path: Path) -> None:
    with mailing_world(store, google, smtp, tmp_path) as world:
        handles = [world.driver.create(f"g{n}@phone", single(f"g{n}@phone", at(11, 8 + n),
                                                             summary=f"Termin kunde{n}@example.com"))
                   for n in range(3)]
        sync_ok(world)
        world.driver.expire_token(checkpoint.decode(world.connection().sync_state).adapter_state or "")
        world.driver.update(handles[0], single("g0@phone", at(11, 16), summary="Termin kunde0@example.com"))
        world.driver.delete(handles[1])
        sync_ok(world)  # Google answers 410 Gone: a full resync, a baseline
        assert world.last_run().baseline and world.counts().get("token_invalid") is True
        assert mails_after_sending(world, smtp) == []
        world.driver.update(handles[2], single("g2@phone", at(12, 9), summary="Termin kunde2@example.com"))
        sync_ok(world)
        [mail] = mails_after_sending(world, smtp)
        assert mail.recipients == ["kunde2@example.com"] and "10:00" in text_of(mail)


def test_events_written_after_the_first_sync_mail_the_customer_they_name_not_the_provider(
        store: Store, radicale: CalDavProvider, smtp: SmtpServer, tmp_path: Path) -> None:
    with mailing_world(store, radicale, smtp, tmp_path) as world:
        sync_ok(world)  # the baseline of an empty calendar
        owner = owner_of(world)
        world.driver.create("new@phone", single("new@phone", at(4, 9), summary="Erstgespräch",
                                                extra="DESCRIPTION:Neukundin <neu@example.net>\\, Rückruf an "
                                                      f"{owner.email}\nLOCATION:Praxis\\, Raum 2"))
        world.driver.create("self@phone", single("self@phone", at(4, 11), summary=f"Notiz {owner.email}"))
        sync_ok(world)
        [mail] = mails_after_sending(world, smtp)
        assert mail.recipients == ["neu@example.net"]
        assert attachment(mail)[0] == "REQUEST" and "10:00" in text_of(mail)


def test_with_notify_customers_off_changes_mail_no_one_and_turning_it_off_forgets_the_customers(
        store: Store, radicale: CalDavProvider, smtp: SmtpServer, tmp_path: Path) -> None:
    with mailing_world(store, radicale, smtp, tmp_path) as world:
        handle = world.driver.create("a@phone", single("a@phone", at(5, 9), summary="Termin anna@example.com"))
        sync_ok(world)
        with store.read() as session:
            kept = session.scalar(select(func.count()).select_from(Mapping)
                                  .where(Mapping.connection_id == world.connection_id, Mapping.customer.is_not(None)))
        assert kept == 1  # remembered by the baseline, told nothing
        set_notify(world, False)
        with store.read() as session:
            kept = session.scalar(select(func.count()).select_from(Mapping).where(Mapping.customer.is_not(None),
                                                                                  Mapping.connection_id ==
                                                                                  world.connection_id))
        assert kept == 0
        world.driver.update(handle, single("a@phone", at(5, 12), summary="Termin anna@example.com"))
        world.driver.create("b@phone", single("b@phone", at(6, 9), summary="Termin bert@example.com"))
        sync_ok(world)
        assert world.connection().baseline_due is False  # the option is no rule: nothing to re-ingest
        assert len(world.mirrored()) == 2
        assert mails_after_sending(world, smtp) == []


# -- crash safety: the mail is queued with the change, sent once ----------------------------------------------

@pytest.mark.parametrize("inside", [False, True], ids=["after-commit", "rolled-back"])
def test_a_worker_killed_at_any_write_of_the_run_still_mails_the_customer_once(
        store: Store, radicale: CalDavProvider, smtp: SmtpServer, tmp_path: Path, inside: bool) -> None:
    for at_write in itertools.count(1):
        smtp.inbox.mails.clear()
        with mailing_world(store, radicale, smtp, tmp_path) as world:
            handle = world.driver.create("c@phone", single("c@phone", at(7, 9), summary="Termin cleo@example.com"))
            sync_ok(world)
            world.driver.update(handle, single("c@phone", at(7, 13), summary="Termin cleo@example.com"))
            crashing = CrashingStore(store, at_write, inside=inside)
            with suppress(Crash):
                world.engine_with(store=crashing).run(world.connection_id)
            if not crashing.fired:
                assert at_write > 3, "a run with one change writes its log row, the change, the token, the log's end"
                return
            send(world)  # the sender may run between the crash and the next run
            sync_ok(world)
            mails = mails_after_sending(world, smtp)
            assert [mail.recipients for mail in mails] == [["cleo@example.com"]], f"crash at write {at_write}"
            assert attachment(mails[0])[1].decoded("DTSTART") == at(7, 13)


# -- bookings changed in the external calendar ----------------------------------------------------------------

def test_a_booking_moved_and_then_deleted_over_there_mails_its_customer_from_the_booking(
        store: Store, radicale: CalDavProvider, smtp: SmtpServer, tmp_path: Path) -> None:
    with mailing_world(store, radicale, smtp, tmp_path) as world:
        public_id = world.book(at(9, 9), name="Max Muster", email="max@example.com")
        sync_ok(world)  # pushed out
        [(handle, _)] = list(world.driver.events().items())
        world.driver.update(handle, single(f"{public_id}@booking.calbridge", at(9, 15), minutes=30,
                                           summary="verschoben"))
        sync_ok(world)
        assert world.booking(public_id).start == at(9, 15)
        [moved] = mails_after_sending(world, smtp)
        assert moved.recipients == ["max@example.com"]  # no blind copy: the provider moved it
        method, event = attachment(moved)
        assert method == "REQUEST" and str(event["UID"]) == f"{public_id}@booking.calbridge"
        assert "16:00" in text_of(moved) and "Max Muster" in text_of(moved)
        world.driver.delete(handle)
        sync_ok(world)
        assert world.booking(public_id).status == "cancelled"
        mails = mails_after_sending(world, smtp)
        assert len(mails) == 2 and attachment(mails[1])[0] == "CANCEL"


# -- alerts to the provider -----------------------------------------------------------------------------------

@pytest.fixture
def proxied(store: Store, radicale: CalDavProvider, smtp: SmtpServer,
            tmp_path: Path) -> Iterator[tuple[World, FaultProxy]]:
    with radicale.new_driver() as driver, fault_proxy(driver.origin) as proxy:
        world = make_world(store, driver, tmp_path, via=proxy.url)
        world.engine = replace(world.engine, settings=smtp.settings(world.engine.settings))
        yield world, proxy


def test_a_connection_failing_three_times_and_then_refused_mails_its_owner_once_per_episode(
        proxied: tuple[World, FaultProxy], smtp: SmtpServer) -> None:
    world, proxy = proxied
    owner = owner_of(world)
    sync_ok(world)
    proxy.fail(500)
    for _ in range(5):
        assert world.sync().status == "failed"
    [failing] = mails_after_sending(world, smtp)
    assert failing.recipients == [owner.email]
    assert "3" in text_of(failing)
    proxy.fail(None)
    sync_ok(world)  # recovered: the next stop is a new episode
    proxy.fail(401)
    for _ in range(3):
        assert world.sync().status == "failed"
    assert world.connection().needs_attention
    mails = mails_after_sending(world, smtp)
    assert len(mails) == 2 and mails[1].recipients == [owner.email]
    assert mails[1].message["Subject"] != failing.message["Subject"]


def test_a_run_held_by_the_fail_closed_rule_mails_its_owner_once(
        store: Store, radicale: CalDavProvider, smtp: SmtpServer, tmp_path: Path) -> None:
    with mailing_world(store, radicale, smtp, tmp_path, notify=False) as world:
        handles = [world.driver.create(f"h{n}@phone", single(f"h{n}@phone", at(10, 8 + n))) for n in range(3)]
        sync_ok(world)
        for handle in handles:
            world.driver.delete(handle)
        for _ in range(2):  # a full listing comes back empty, and again on the next run
            assert world.sync(trigger="reset").status == "held"
        [held] = mails_after_sending(world, smtp)
        assert held.recipients == [owner_of(world).email]
        assert len(world.mirrored()) == 3  # nothing deleted
