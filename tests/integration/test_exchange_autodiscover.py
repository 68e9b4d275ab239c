"""Issue 7: an Exchange connection given only by the mailbox's e-mail address finds its EWS URL by autodiscover.
The real adapter (exchangelib, unmodified) walks autodiscover against the stand-ins of
``tests/standins/ews_autodiscover.py`` (DNS on a loopback UDP port, the SOAP service on 127.0.0.1:443) and then
talks to the EWS stand-in at the URL it found; the URL lands in the connection's credentials, so later runs ask
autodiscover nothing."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from datetime import UTC, datetime

import exchangelib
import icalendar
import pytest

from bridge.adapters import Account, ca_bundle, open_adapter
from bridge.adapters.base import Window
from bridge.adapters.exchange import ExchangeAdapter
from bridge.sync import connection_admin
from tests.standins import tls
from tests.standins.ews import Mailbox, RunningEws, ews_standin
from tests.standins.ews_autodiscover import (
    PortUnavailable,
    RunningAutodiscover,
    autodiscover_standin,
    exchangelib_pointed_at,
)

DOMAIN = "example.test"  # the EWS stand-in's mailboxes live there
WINDOW = Window(datetime(2026, 10, 25, tzinfo=UTC), datetime(2027, 10, 25, tzinfo=UTC))
HINT = "--remote-calendar"


@pytest.fixture(scope="module")
def running() -> Iterator[RunningEws]:
    with ews_standin() as served:
        yield served
        exchangelib.close_connections()
        gc.collect()  # a refused request's response (and socket) sits in a reference cycle


@pytest.fixture(scope="module")
def discovery(running: RunningEws) -> Iterator[RunningAutodiscover]:
    try:
        with autodiscover_standin(DOMAIN, running.ews_url) as served, exchangelib_pointed_at(served.dns.port):
            yield served
    except PortUnavailable as exc:
        pytest.skip(f"autodiscover needs https on port 443 of 127.0.0.1: {exc}")


@pytest.fixture
def mailbox(running: RunningEws, discovery: RunningAutodiscover) -> Iterator[Mailbox]:
    made = running.standin.new_mailbox()
    discovery.service.add(made)
    discovery.dns.queries.clear()
    discovery.service.requests.clear()
    yield made
    exchangelib.autodiscover.clear_cache()  # it maps (domain, credentials) to the service for the process


def by_address(mailbox: Mailbox, *, password: str | None = None) -> Account:
    """The account ``calbridge connection add exchange --email …`` builds: no EWS URL, so autodiscover."""
    return connection_admin.exchange_account("", "", mailbox.username, password or mailbox.password,
                                             email=mailbox.email, auth="basic", ca_file=tls.ca_file())


def write_event(running: RunningEws, mailbox: Mailbox, uid: str, summary: str) -> None:
    """An event in the stand-in mailbox, written over EWS at the known URL (as Outlook would)."""
    text = "\r\n".join(["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//test//EN", "BEGIN:VEVENT", f"UID:{uid}",
                        "DTSTAMP:20261124T080000Z", "DTSTART:20261207T090000Z", "DTEND:20261207T100000Z",
                        f"SUMMARY:{summary}", "END:VEVENT", "END:VCALENDAR", ""])
    writer = ExchangeAdapter({"auth": "basic", "username": mailbox.username, "password": mailbox.password,
                              "email": mailbox.email}, mailbox.calendar_id, server_url=running.ews_url,
                             ca_bundle=ca_bundle(tls.ca_file()))
    try:
        writer.create(icalendar.Calendar.from_ical(text), f"key-{uid}")
    finally:
        writer.close()


def test_a_connection_by_e_mail_address_finds_ews_by_autodiscover_and_keeps_the_url(
        running: RunningEws, discovery: RunningAutodiscover, mailbox: Mailbox) -> None:
    account = by_address(mailbox)

    checked = connection_admin.check_new(account, hint=HINT)

    assert checked.remote_calendar == mailbox.calendar_id
    assert account.credentials["ews_url"] == running.ews_url
    # kept with the URL, so runs ask neither; from autodiscover's EwsSupportedSchemas (newest: Exchange2016),
    # which exchangelib maps to a representative build, not the server's own (15.1.2507.6)
    assert account.credentials["version"] == "15.20.0.0"
    # exchangelib's steps: the domain and autodiscover.<domain> have no A record here, so the SRV record of
    # step 4 names the service (localhost); nothing else was asked.
    queries = discovery.dns.queries
    assert queries[:2] == [(f"{DOMAIN}.", "A"), (f"autodiscover.{DOMAIN}.", "A")]
    assert (f"_autodiscover._tcp.{DOMAIN}.", "SRV") in queries
    assert ("localhost.", "A") in queries
    assert {name for name, _ in queries} <= {f"{DOMAIN}.", f"autodiscover.{DOMAIN}.",
                                             f"_autodiscover._tcp.{DOMAIN}.", "localhost."}
    # SOAP GetUserSettings: unauthenticated probes (HEAD, then the POST whose 401 names Basic), then signed in.
    assert ("POST", mailbox.username) in discovery.service.requests


def test_the_discovered_connection_reads_the_mailbox_and_asks_autodiscover_only_once(
        running: RunningEws, discovery: RunningAutodiscover, mailbox: Mailbox) -> None:
    write_event(running, mailbox, "dentist@x", "Zahnarzt")
    account = by_address(mailbox)
    checked = connection_admin.check_new(account, hint=HINT)
    asked = len(discovery.service.requests)
    exchangelib.autodiscover.clear_cache()  # a later run is another process: nothing of this one is remembered

    stored = Account("exchange", "", checked.remote_calendar, dict(account.credentials), ca_file=tls.ca_file())
    with open_adapter(stored) as adapter:
        delta = adapter.fetch(None, WINDOW)

    assert [str(e.calendar.walk("VEVENT")[0]["SUMMARY"]) for e in delta.changed] == ["Zahnarzt"]
    assert delta.changed[0].calendar.walk("VEVENT")[0]["UID"] == "dentist@x"
    assert len(discovery.service.requests) == asked  # the saved EWS URL: no autodiscover again
    assert (mailbox.email, "SyncFolderItems") in running.standin.requests


def test_a_domain_autodiscover_cannot_resolve_is_reported_in_plain_words(discovery: RunningAutodiscover,
                                                                         mailbox: Mailbox) -> None:
    lost = Mailbox(email="someone@nowhere.test", username=mailbox.username, password=mailbox.password,
                   calendar_id="")

    with pytest.raises(connection_admin.ConnectionProblem) as problem:
        connection_admin.check_new(by_address(lost), hint=HINT)

    assert "autodiscover found no EWS address for this e-mail address; give the EWS URL" in str(problem.value)
    assert "nowhere.test" not in str(problem.value)  # the message names no address
    # every step ended at the DNS check: no A record, no SRV record
    assert ("_autodiscover._tcp.nowhere.test.", "SRV") in discovery.dns.queries
    assert discovery.service.requests == []


def test_a_wrong_password_is_refused_credentials_not_a_failed_autodiscover(discovery: RunningAutodiscover,
                                                                          mailbox: Mailbox) -> None:
    account = by_address(mailbox, password="not-" + mailbox.password)

    with pytest.raises(connection_admin.ConnectionProblem) as problem:
        connection_admin.check_new(account, hint=HINT)

    assert "the server refused the user name or password" in str(problem.value)
    assert "ews_url" not in account.credentials
    assert discovery.service.requests[-1] == ("POST", "")  # the signed-in GetUserSettings was refused (401)


def test_nothing_of_a_discovered_connection_outlives_its_run(discovery: RunningAutodiscover,
                                                              mailbox: Mailbox) -> None:
    connection_admin.check_new(by_address(mailbox), hint=HINT)

    assert len(exchangelib.autodiscover.autodiscover_cache) == 0
