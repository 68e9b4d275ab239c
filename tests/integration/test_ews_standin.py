"""exchangelib, unmodified, against the EWS stand-in over TLS: version detection, creates and reads of single
and recurring items (occurrences modified, deleted, cancelled), incremental SyncFolderItems with paging, ChangeKey
conflicts, throttling with its back-off, invalid sync states, Basic and NTLM logins and wrong passwords, the
extended-property lookup that makes creates idempotent, calendar folders, and a DTD refused unparsed."""

from __future__ import annotations

import gc
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from exchangelib import (
    BASIC,
    DELEGATE,
    NTLM,
    Account,
    Build,
    CalendarItem,
    Configuration,
    Credentials,
    EWSDate,
    EWSDateTime,
    EWSTimeZone,
    ExtendedProperty,
    FaultTolerance,
    Version,
    close_connections,
)
from exchangelib.errors import (
    ErrorInvalidSyncStateData,
    ErrorIrresolvableConflict,
    ErrorItemNotFound,
    ErrorServerBusy,
    UnauthorizedError,
)
from exchangelib.items import NEVER_OVERWRITE
from exchangelib.properties import ItemId
from exchangelib.protocol import BaseProtocol
from exchangelib.recurrence import DailyPattern, NumberedPattern, Recurrence, RelativeMonthlyPattern, WeeklyPattern

from tests.standins import tls
from tests.standins.ews import Mailbox, RunningEws, ca_file, ews_standin, trusting_adapter

BERLIN = EWSTimeZone("Europe/Berlin")
EXCHANGE_2016 = Version(build=Build(15, 1, 2507, 6))


class BookingKey(ExtendedProperty):
    """The deterministic key an adapter stamps on what it creates (PublicStrings, a named string property)."""

    distinguished_property_set_id = "PublicStrings"
    property_name = "calbridge-standin-test-key"
    property_type = "String"


@pytest.fixture(scope="module")
def ews() -> Iterator[RunningEws]:
    previous = BaseProtocol.HTTP_ADAPTER_CLS
    BaseProtocol.HTTP_ADAPTER_CLS = trusting_adapter(ca_file())
    CalendarItem.register("standin_test_key", BookingKey)
    try:
        with ews_standin() as running:
            yield running
            # Else the server's shutdown waits for exchangelib's keep-alive connections: the pooled ones, and
            # those that a refused request's response left in a reference cycle until the next collection.
            close_connections()
            gc.collect()
    finally:
        CalendarItem.deregister("standin_test_key")
        BaseProtocol.HTTP_ADAPTER_CLS = previous


def account(ews: RunningEws, mailbox: Mailbox, *, password: str | None = None, version: Version | None = EXCHANGE_2016,
            retry: Any = None, auth: str = BASIC) -> Account:
    config = Configuration(service_endpoint=ews.ews_url, auth_type=auth, version=version,
                           credentials=Credentials(mailbox.username, password or mailbox.password),
                           **({"retry_policy": retry} if retry is not None else {}))
    return Account(primary_smtp_address=mailbox.email, config=config, autodiscover=False, access_type=DELEGATE)


def at(day: int, hour: int) -> EWSDateTime:
    return EWSDateTime(2026, 3, day, hour, tzinfo=BERLIN)


def single(acc: Account, subject: str, day: int = 2, **fields: Any) -> CalendarItem:
    item = CalendarItem(account=acc, folder=acc.calendar, subject=subject, start=at(day, 10), end=at(day, 11),
                        **fields)
    item.save()
    return item


def changes_of(acc: Account, state: str | None, **kwargs: Any) -> tuple[list[tuple[str, Any]], str]:
    """(change kind, item or item id) per reported change, and the new sync state."""
    folder = acc.calendar
    folder.item_sync_state = state  # exchangelib falls back to the folder's last state when given None
    seen = list(folder.sync_items(sync_state=state, **kwargs))
    return seen, folder.item_sync_state


def changes(acc: Account, state: str | None, **kwargs: Any) -> tuple[list[tuple[str, str]], str]:
    """(change kind, subject, or id of a deleted item) per reported change, and the new sync state."""
    seen, state = changes_of(acc, state, **kwargs)
    return [(kind, item.id if kind == "delete" else item.subject) for kind, item in seen], state


def test_version_detection_finds_exchange_2016_and_the_default_calendar(ews: RunningEws) -> None:
    mailbox = ews.standin.new_mailbox()
    acc = account(ews, mailbox, version=None)
    assert acc.version.build == Build(15, 1, 2507, 6)
    assert acc.version.api_version == "Exchange2016"
    assert acc.calendar.id == mailbox.calendar_id
    assert ews.standin.requests[0] == (mailbox.email, "ConvertId")


def test_a_single_item_reads_back_with_its_fields_and_windows_time_zone(ews: RunningEws) -> None:
    acc = account(ews, ews.standin.new_mailbox())
    item = single(acc, "Zahnarzt", location="Praxis", legacy_free_busy_status="Tentative", sensitivity="Private")
    allday = CalendarItem(account=acc, folder=acc.calendar, subject="Urlaub", start=EWSDate(2026, 3, 10),
                          end=EWSDate(2026, 3, 11), is_all_day=True, legacy_free_busy_status="OOF")
    allday.save()
    got, whole_days = acc.fetch([item, allday])
    assert (got.subject, got.location, got.legacy_free_busy_status, got.sensitivity) == (
        "Zahnarzt", "Praxis", "Tentative", "Private")
    assert got.start == at(2, 10) and got.end == at(2, 11)
    assert got.type == "Single" and got.uid and got.changekey == item.changekey
    assert got._start_timezone == BERLIN
    assert whole_days.is_all_day and (whole_days.start, whole_days.end) == (EWSDate(2026, 3, 10), EWSDate(2026, 3, 11))
    assert whole_days.legacy_free_busy_status == "OOF"


def test_every_free_busy_status_and_sensitivity_round_trips(ews: RunningEws) -> None:
    acc = account(ews, ews.standin.new_mailbox())
    statuses = ["Free", "Tentative", "Busy", "OOF", "WorkingElsewhere", "NoData"]
    levels = ["Normal", "Personal", "Private", "Confidential", "Normal", "Private"]
    for day, (status, level) in enumerate(zip(statuses, levels, strict=True), start=2):
        single(acc, status, day=day, legacy_free_busy_status=status, sensitivity=level)
    seen, _ = changes_of(acc, None, only_fields=["subject", "legacy_free_busy_status", "sensitivity"])
    assert [(item.legacy_free_busy_status, item.sensitivity) for _, item in seen] == list(zip(statuses, levels,
                                                                                                strict=True))


def test_a_recurring_master_lists_its_modified_and_deleted_occurrences(ews: RunningEws) -> None:
    acc = account(ews, ews.standin.new_mailbox())
    master = single(acc, "Jour fixe", recurrence=Recurrence(
        pattern=WeeklyPattern(interval=1, weekdays=[1, 3]), start=EWSDate(2026, 3, 2), number=6))
    moved = master.occurrence(2)
    moved.refresh()
    assert (moved.type, moved.start) == ("Occurrence", at(4, 10))
    moved.subject, moved.start, moved.end = "Jour fixe (verlegt)", at(4, 14), at(4, 15)
    moved.save(update_fields=["subject", "start", "end"])
    master.occurrence(3).delete()

    master.refresh()
    assert master.type == "RecurringMaster"
    assert [(o.start, o.original_start) for o in master.modified_occurrences] == [(at(4, 14), at(4, 10))]
    assert [o.start for o in master.deleted_occurrences] == [at(9, 10)]
    assert master.last_occurrence.start == at(18, 10)
    exception = list(acc.fetch([master.modified_occurrences[0]]))[0]
    assert (exception.type, exception.subject, exception.uid) == ("Exception", "Jour fixe (verlegt)", master.uid)

    view = acc.calendar.view(start=at(1, 0), end=at(31, 0))
    assert [(v.type, v.start) for v in view] == [
        ("Occurrence", at(2, 10)), ("Exception", at(4, 14)), ("Occurrence", at(11, 10)),
        ("Occurrence", at(16, 10)), ("Occurrence", at(18, 10))]

    exception.delete()
    master.refresh()
    assert master.modified_occurrences is None
    assert [o.start for o in master.deleted_occurrences] == [at(4, 10), at(9, 10)]


def test_a_series_starts_at_its_first_occurrence(ews: RunningEws) -> None:
    acc = account(ews, ews.standin.new_mailbox())
    master = single(acc, "Monatsabschluss", recurrence=Recurrence(
        pattern=RelativeMonthlyPattern(interval=1, weekday=1, week_number=5), start=EWSDate(2026, 3, 2), number=3))
    master.refresh()
    assert (master.start, master.end) == (at(30, 10), at(30, 11))  # the last Monday of March, at 10:00 local
    assert [v.start for v in acc.calendar.view(start=at(1, 0), end=EWSDateTime(2026, 7, 1, tzinfo=BERLIN))] == [
        at(30, 10), EWSDateTime(2026, 4, 27, 10, tzinfo=BERLIN), EWSDateTime(2026, 5, 25, 10, tzinfo=BERLIN)]


def test_changing_an_occurrence_reports_its_master_as_updated(ews: RunningEws) -> None:
    acc = account(ews, ews.standin.new_mailbox())
    master = single(acc, "Stand-up", recurrence=Recurrence(pattern=DailyPattern(interval=1),
                                                           start=EWSDate(2026, 3, 2), number=3))
    _, state = changes(acc, None)
    occurrence = master.occurrence(1)
    occurrence.refresh()
    occurrence.location = "Teeküche"
    occurrence.save(update_fields=["location"])
    [(kind, changed)], _ = changes_of(acc, state)
    assert (kind, changed.id, changed.type) == ("update", master.id, "RecurringMaster")
    assert [o.original_start for o in changed.modified_occurrences] == [at(2, 10)]


def test_daily_series_in_dst_keeps_its_local_time(ews: RunningEws) -> None:
    acc = account(ews, ews.standin.new_mailbox())
    single(acc, "Stand-up", day=27, recurrence=Recurrence(pattern=DailyPattern(interval=1),
                                                          boundary=NumberedPattern(start=EWSDate(2026, 3, 27),
                                                                                   number=4)))
    view = acc.calendar.view(start=at(26, 0), end=at(31, 23))
    assert [v.start.astimezone(BERLIN).hour for v in view] == [10, 10, 10, 10]  # across the switch on 29 March


def test_sync_reports_creates_then_each_update_and_delete_once(ews: RunningEws) -> None:
    acc = account(ews, ews.standin.new_mailbox())
    first = single(acc, "eins")
    second = single(acc, "zwei")
    seen, state = changes(acc, None)
    assert seen == [("create", "eins"), ("create", "zwei")]
    assert changes(acc, state) == ([], state)

    first.subject = "eins (neu)"
    first.save(update_fields=["subject"])
    second_id = second.id
    second.delete()
    gone = single(acc, "drei")
    gone.delete()
    seen, state = changes(acc, state)
    assert seen == [("update", "eins (neu)"), ("delete", second_id)]
    assert changes(acc, state)[0] == []


def test_sync_pages_by_max_changes_returned(ews: RunningEws) -> None:
    mailbox = ews.standin.new_mailbox()
    acc = account(ews, mailbox)
    for number in range(5):
        single(acc, f"Termin {number}", day=2 + number)
    before = len(ews.standin.requests)
    seen, _ = changes(acc, None, max_changes_returned=2)
    assert seen == [("create", f"Termin {number}") for number in range(5)]
    assert ews.standin.requests[before:] == [(mailbox.email, "SyncFolderItems")] * 3

    before = len(ews.standin.requests)
    query = acc.calendar.all().order_by("start").only("subject")
    query.page_size = 2
    assert [item.subject for item in query] == [f"Termin {number}" for number in range(5)]
    assert ews.standin.requests[before:] == [(mailbox.email, "FindItem")] * 3


def test_an_invalidated_sync_state_is_refused_and_a_full_resync_recovers(ews: RunningEws) -> None:
    acc = account(ews, ews.standin.new_mailbox())
    single(acc, "eins")
    _, state = changes(acc, None)
    ews.standin.invalidate_sync_states()
    with pytest.raises(ErrorInvalidSyncStateData):
        changes(acc, state)
    assert changes(acc, None)[0] == [("create", "eins")]


def test_a_stale_change_key_is_an_irresolvable_conflict(ews: RunningEws) -> None:
    acc = account(ews, ews.standin.new_mailbox())
    item = single(acc, "Termin")
    stale = list(acc.fetch([item]))[0]
    item.location = "Raum 1"
    item.save(update_fields=["location"])

    stale.subject = "anders"
    with pytest.raises(ErrorIrresolvableConflict):
        stale.save(update_fields=["subject"], conflict_resolution=NEVER_OVERWRITE)
    stale.location = "Raum 2"
    with pytest.raises(ErrorIrresolvableConflict):  # AutoResolve: the same field changed since
        stale.save(update_fields=["location"])
    stale.location = "Raum 1"
    stale.subject = "anders"
    stale.save(update_fields=["subject"])  # AutoResolve: only the location changed since, so the subject merges
    fresh = list(acc.fetch([item]))[0]
    assert (fresh.subject, fresh.location) == ("anders", "Raum 1")
    fresh.subject = "wieder anders"
    fresh.save(update_fields=["subject"], conflict_resolution=NEVER_OVERWRITE)
    assert fresh.changekey not in (item.changekey, stale.changekey)


def test_a_deleted_item_is_not_found(ews: RunningEws) -> None:
    acc = account(ews, ews.standin.new_mailbox())
    item = single(acc, "weg")
    item_id = item.id
    item.delete()
    [missing] = acc.fetch([ItemId(item_id)])
    assert isinstance(missing, ErrorItemNotFound)


def test_server_busy_carries_its_back_off_and_fault_tolerance_waits_it_out(ews: RunningEws) -> None:
    mailbox = ews.standin.new_mailbox()
    acc = account(ews, mailbox)
    acc.calendar  # noqa: B018 - resolve the folder before the failures are armed
    ews.standin.fail_next(1, back_off_ms=2500)
    with pytest.raises(ErrorServerBusy) as busy:
        list(acc.calendar.sync_items())
    assert busy.value.back_off == 2.5

    other = ews.standin.new_mailbox()  # exchangelib caches a protocol, retry policy included, per login
    patient = account(ews, other, retry=FaultTolerance(max_wait=30))
    patient.calendar  # noqa: B018
    ews.standin.fail_next(1, back_off_ms=300)
    began = time.monotonic()
    assert list(patient.calendar.sync_items()) == []
    assert time.monotonic() - began >= 0.3
    assert ews.standin.requests[-2:] == [(other.email, "SyncFolderItems")] * 2


def test_a_wrong_password_is_refused(ews: RunningEws) -> None:
    mailbox = ews.standin.new_mailbox()
    with pytest.raises(UnauthorizedError):
        account(ews, mailbox, password="wrong", version=None).calendar  # noqa: B018
    with pytest.raises(UnauthorizedError):
        account(ews, mailbox, password="wrong").calendar  # noqa: B018


def test_a_changed_password_is_refused_from_then_on(ews: RunningEws) -> None:
    mailbox = ews.standin.new_mailbox()
    old = mailbox.password
    account(ews, mailbox).calendar  # noqa: B018
    ews.standin.change_password(mailbox)
    with pytest.raises(UnauthorizedError):
        list(account(ews, mailbox, password=old).calendar.sync_items())
    assert list(account(ews, mailbox).calendar.sync_items()) == []


def test_ntlm_authenticates_the_connection_and_refuses_a_wrong_password(ews: RunningEws) -> None:
    mailbox = ews.standin.new_mailbox()
    acc = account(ews, mailbox, auth=NTLM, version=None)
    assert acc.calendar.id == mailbox.calendar_id
    single(acc, "über NTLM")
    assert changes(acc, None)[0] == [("create", "über NTLM")]
    with pytest.raises(UnauthorizedError):
        account(ews, mailbox, auth=NTLM, password="wrong").calendar  # noqa: B018


def test_the_extended_property_restriction_finds_the_created_item(ews: RunningEws) -> None:
    acc = account(ews, ews.standin.new_mailbox())
    single(acc, "ohne Schlüssel")
    keyed = single(acc, "Buchung", standin_test_key="booking-42")
    found = list(acc.calendar.filter(standin_test_key="booking-42").only("subject", "standin_test_key"))
    assert [(item.id, item.subject, item.standin_test_key) for item in found] == [
        (keyed.id, "Buchung", "booking-42")]
    assert list(acc.calendar.filter(standin_test_key="booking-43")) == []
    assert list(acc.fetch([keyed]))[0].standin_test_key == "booking-42"


def test_calendar_folders_are_listed(ews: RunningEws) -> None:
    mailbox = ews.standin.new_mailbox()
    ews.standin.new_calendar(mailbox, "Räume")
    acc = account(ews, mailbox)
    assert sorted(folder.name for folder in acc.calendar.children) == ["Räume"]
    names = {folder.name for folder in acc.root.walk() if folder.folder_class == "IPF.Appointment"}
    assert names == {"Calendar", "Räume"}


def test_cancel_knob_is_an_update_with_is_cancelled(ews: RunningEws) -> None:
    acc = account(ews, ews.standin.new_mailbox())
    item = single(acc, "Meeting")
    _, state = changes(acc, None)
    ews.standin.cancel(item.id)
    [(kind, changed)], state = changes_of(acc, state)
    assert (kind, changed.is_cancelled, changed.changekey != item.changekey) == ("update", True, True)
    [again] = acc.fetch([item])
    assert again.is_cancelled and again.end - again.start == timedelta(hours=1)

    master = single(acc, "Serie", recurrence=Recurrence(pattern=DailyPattern(interval=1), start=EWSDate(2026, 3, 2),
                                                         number=2))
    _, state = changes(acc, state)
    second = [v for v in acc.calendar.view(start=at(1, 0), end=at(31, 0)) if v.subject == "Serie"][1]
    ews.standin.cancel(second.id)
    [(kind, changed)], state = changes_of(acc, state)
    assert (kind, changed.id) == ("update", master.id)
    assert [v.is_cancelled for v in acc.calendar.view(start=at(1, 0), end=at(31, 0)) if v.subject == "Serie"] == [
        False, True]


def test_a_request_with_a_dtd_is_refused_unparsed(ews: RunningEws) -> None:
    mailbox = ews.standin.new_mailbox()
    body = (b'<?xml version="1.0"?><!DOCTYPE s:Envelope [<!ENTITY boom "boom">]>'
            b'<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>&boom;</s:Body></s:Envelope>')
    with httpx.Client(verify=tls.client_context(), auth=(mailbox.username, mailbox.password)) as client:
        answer = client.post(ews.ews_url, content=body, headers={"content-type": "text/xml; charset=utf-8"})
    assert answer.status_code == 500
    assert b"ErrorInvalidRequest" in answer.content and b"boom" not in answer.content
