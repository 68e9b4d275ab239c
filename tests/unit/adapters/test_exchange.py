"""EWS items <-> iCalendar, and exchangelib's errors -> the adapter error tree (bridge/adapters/exchange.py),
table-driven. The wire is tested in tests/integration/test_exchange_adapter.py."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, date, datetime, timedelta
from typing import Any

import icalendar
import pytest
from exchangelib import Body, EWSDate, EWSDateTime, EWSTimeZone, HTMLBody
from exchangelib import errors as ews
from exchangelib import recurrence as r
from exchangelib.items import CalendarItem
from exchangelib.properties import ItemId

from bridge.adapters.base import (
    AuthExpired,
    Permanent,
    PreconditionFailed,
    RateLimited,
    RemoteNotFound,
    TokenInvalid,
    Transient,
)
from bridge.adapters.exchange import (
    _map_errors,
    _State,
    ews_fields,
    free_busy_of,
    recurrence_of,
    rrule_of,
    series_calendar,
    to_vevent,
    zone_named,
)

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
EWS_UTC = EWSTimeZone("UTC")


def item(**fields: Any) -> CalendarItem:
    base: dict[str, Any] = {"subject": "Termin", "start": EWSDateTime(2026, 12, 7, 9, tzinfo=EWS_UTC),
                            "end": EWSDateTime(2026, 12, 7, 10, tzinfo=EWS_UTC), "is_all_day": False,
                            "legacy_free_busy_status": "Busy", "sensitivity": "Normal"}
    base.update(fields)
    return CalendarItem(**base)


def vevent(lines: str) -> icalendar.Event:
    text = f"BEGIN:VEVENT\r\nUID:u\r\nDTSTAMP:20261124T080000Z\r\n{lines.strip()}\r\nEND:VEVENT\r\n"
    return icalendar.Event.from_ical(text.replace("\n", "\r\n").replace("\r\r\n", "\r\n"))


@pytest.mark.parametrize(("status", "transp", "marker"), [
    ("Free", "TRANSPARENT", "FREE"),
    ("Tentative", "OPAQUE", "TENTATIVE"),
    ("Busy", "OPAQUE", "BUSY"),
    ("OOF", "OPAQUE", "OOF"),
    ("WorkingElsewhere", "TRANSPARENT", "WORKINGELSEWHERE"),
    ("NoData", "OPAQUE", None),  # nothing known: counted as busy
])
def test_legacy_free_busy_status_becomes_transparency_and_the_outlook_marker(
        status: str, transp: str, marker: str | None) -> None:
    event = to_vevent(item(legacy_free_busy_status=status), "u")
    assert str(event["TRANSP"]) == transp
    assert event.get("X-MICROSOFT-CDO-BUSYSTATUS") == marker
    if marker is not None:  # and back: a VEVENT written with that marker is that status again
        assert free_busy_of(event) == status


@pytest.mark.parametrize(("sensitivity", "klass"), [
    ("Normal", None), ("Private", "PRIVATE"), ("Confidential", "CONFIDENTIAL"), ("Personal", "PRIVATE")])
def test_sensitivity_becomes_class(sensitivity: str, klass: str | None) -> None:
    assert to_vevent(item(sensitivity=sensitivity), "u").get("CLASS") == klass


@pytest.mark.parametrize(("lines", "status"), [
    ("TRANSP:TRANSPARENT", "Free"),
    ("STATUS:TENTATIVE", "Tentative"),
    ("X-MICROSOFT-CDO-BUSYSTATUS:OOF", "OOF"),
    ("", "Busy"),
])
def test_a_vevent_chooses_its_legacy_free_busy_status(lines: str, status: str) -> None:
    assert free_busy_of(vevent(f"DTSTART:20261207T090000Z\n{lines}")) == status


def test_a_timed_item_is_read_in_utc_with_its_texts() -> None:
    event = to_vevent(item(location="Raum 2", is_cancelled=True), "uid-1")
    assert (event.decoded("DTSTART"), event.decoded("DTEND")) == (datetime(2026, 12, 7, 9, tzinfo=UTC),
                                                                 datetime(2026, 12, 7, 10, tzinfo=UTC))
    assert (str(event["UID"]), str(event["SUMMARY"]), str(event["LOCATION"]), str(event["STATUS"])) == (
        "uid-1", "Termin", "Raum 2", "CANCELLED")


def test_an_all_day_item_gets_dates_and_an_exclusive_end() -> None:
    # exchangelib gives an all-day item's end as its last day; iCalendar's DTEND is the day after.
    event = to_vevent(item(is_all_day=True, start=EWSDate(2026, 12, 7), end=EWSDate(2026, 12, 8)), "u")
    assert (event.decoded("DTSTART"), event.decoded("DTEND")) == (date(2026, 12, 7), date(2026, 12, 9))
    fields = ews_fields(event)
    assert (fields["is_all_day"], fields["start"], fields["end"]) == (True, date(2026, 12, 7), date(2026, 12, 8))


@pytest.mark.parametrize(("windows", "iana"), [
    ("W. Europe Standard Time", "Europe/Berlin"),
    ("Pacific Standard Time", "America/Los_Angeles"),
    ("GMT Standard Time", "Europe/London"),
    ("Europe/Vienna", "Europe/Vienna"),  # Exchange sometimes names IANA zones
])
def test_windows_zone_names_are_mapped_to_iana(windows: str, iana: str) -> None:
    assert getattr(zone_named(windows), "key", None) == iana


@pytest.mark.parametrize("name", [None, "", "UTC", "No Such Standard Time"])
def test_no_or_an_unknown_zone_is_utc(name: str | None) -> None:
    assert zone_named(name) is UTC


START = datetime(2026, 12, 7, 9, tzinfo=BERLIN)


@pytest.mark.parametrize(("recurrence", "rule"), [
    (r.Recurrence(pattern=r.DailyPattern(interval=2), boundary=r.NumberedPattern(start=START.date(), number=5)),
     "FREQ=DAILY;COUNT=5;INTERVAL=2"),
    (r.Recurrence(pattern=r.WeeklyPattern(interval=1, weekdays=[1, 3], first_day_of_week=1),
                  boundary=r.NoEndPattern(start=START.date())), "FREQ=WEEKLY;BYDAY=MO,WE"),
    (r.Recurrence(pattern=r.AbsoluteMonthlyPattern(interval=1, day_of_month=7),
                  boundary=r.EndDatePattern(start=START.date(), end=date(2027, 3, 7))),
     "FREQ=MONTHLY;UNTIL=20270307T080000Z;BYMONTHDAY=7"),
    (r.Recurrence(pattern=r.RelativeMonthlyPattern(interval=1, weekday=1, week_number=5),
                  boundary=r.NoEndPattern(start=START.date())), "FREQ=MONTHLY;BYDAY=-1MO"),
    (r.Recurrence(pattern=r.AbsoluteYearlyPattern(day_of_month=7, month=12),
                  boundary=r.NoEndPattern(start=START.date())), "FREQ=YEARLY;BYMONTHDAY=7;BYMONTH=12"),
    (r.Recurrence(pattern=r.RelativeYearlyPattern(weekday=1, week_number=1, month=12),
                  boundary=r.NoEndPattern(start=START.date())), "FREQ=YEARLY;BYDAY=1MO;BYMONTH=12"),
])
def test_ews_patterns_become_rrules_and_back(recurrence: r.Recurrence, rule: str) -> None:
    written = rrule_of(recurrence, START, BERLIN)
    assert written.to_ical().decode() == rule
    again = recurrence_of(written, START, BERLIN)
    assert type(again.pattern) is type(recurrence.pattern)
    assert type(again.boundary) is type(recurrence.boundary)
    assert rrule_of(again, START, BERLIN).to_ical().decode() == rule


@pytest.mark.parametrize("rule", ["FREQ=WEEKLY;BYSETPOS=1;BYDAY=MO", "FREQ=HOURLY", "FREQ=MONTHLY;BYMONTHDAY=-1",
                                  "FREQ=MONTHLY;BYDAY=2MO,3TU", "FREQ=YEARLY;INTERVAL=2"])
def test_what_ews_cannot_express_is_refused_before_writing(rule: str) -> None:
    with pytest.raises(Permanent):
        recurrence_of(icalendar.vRecur.from_ical(rule), START, BERLIN)


def test_a_master_with_a_modified_and_a_deleted_occurrence_is_one_series_with_an_override_and_an_exdate() -> None:
    berlin = EWSTimeZone("Europe/Berlin")
    master = item(subject="Stand-up", start=EWSDateTime(2026, 12, 7, 8, tzinfo=EWS_UTC),
                  end=EWSDateTime(2026, 12, 7, 8, 30, tzinfo=EWS_UTC), _start_timezone=berlin, type="RecurringMaster",
                  recurrence=r.Recurrence(pattern=r.WeeklyPattern(interval=1, weekdays=[1], first_day_of_week=1),
                                          boundary=r.NumberedPattern(start=date(2026, 12, 7), number=6)),
                  modified_occurrences=[r.Occurrence(
                      _id=ItemId("occ-1", "ck"), start=EWSDateTime(2026, 12, 16, 13, tzinfo=EWS_UTC),
                      end=EWSDateTime(2026, 12, 16, 13, 30, tzinfo=EWS_UTC),
                      original_start=EWSDateTime(2026, 12, 14, 8, tzinfo=EWS_UTC))],
                  deleted_occurrences=[r.DeletedOccurrence(start=EWSDateTime(2026, 12, 21, 8, tzinfo=EWS_UTC))])
    moved = item(subject="Stand-up (verlegt)", start=EWSDateTime(2026, 12, 16, 13, tzinfo=EWS_UTC),
                 end=EWSDateTime(2026, 12, 16, 13, 30, tzinfo=EWS_UTC))
    head, override = series_calendar(master, "standup", {"occ-1": moved}).walk("VEVENT")
    assert head.decoded("DTSTART") == datetime(2026, 12, 7, 9, tzinfo=BERLIN)  # in the series' own zone
    assert head["RRULE"].to_ical().decode() == "FREQ=WEEKLY;COUNT=6;BYDAY=MO"
    assert [d.dt for d in head["EXDATE"].dts] == [datetime(2026, 12, 21, 9, tzinfo=BERLIN)]
    assert override.decoded("RECURRENCE-ID") == datetime(2026, 12, 14, 9, tzinfo=BERLIN)
    assert (override.decoded("DTSTART"), str(override["SUMMARY"])) == (datetime(2026, 12, 16, 13, tzinfo=UTC),
                                                                       "Stand-up (verlegt)")


def test_a_zoned_vevent_is_written_in_its_zone() -> None:
    fields = ews_fields(vevent("DTSTART;TZID=Europe/Berlin:20261207T090000\nDTEND;TZID=Europe/Berlin:20261207T093000\n"
                               "SUMMARY:x\nCLASS:PRIVATE\nRRULE:FREQ=WEEKLY;COUNT=3"))
    assert fields["start"].tzinfo.key == "Europe/Berlin" and fields["start"].hour == 9
    assert fields["end"] - fields["start"] == timedelta(minutes=30)
    assert fields["sensitivity"] == "Private"
    assert isinstance(fields["recurrence"].pattern, r.WeeklyPattern)
    assert fields["recurrence"].boundary.number == 3


@pytest.mark.parametrize(("raised", "sync", "expected"), [
    (ews.ErrorServerBusy("busy", back_off=3.0), False, RateLimited),
    (ews.ErrorInvalidSyncStateData("bad"), True, TokenInvalid),
    (ews.ErrorInvalidSyncStateData("bad"), False, Permanent),
    (ews.UnauthorizedError("Invalid credentials for https://mail.example.test/EWS"), False, AuthExpired),
    (ews.ErrorAccessDenied("no"), False, Permanent),
    (ews.ErrorItemNotFound("gone"), False, RemoteNotFound),
    (ews.ErrorIrresolvableConflict("stale"), False, PreconditionFailed),
    (ews.ErrorTimeoutExpired("Reraised from ConnectionError(NameResolutionError(...))"), False, Transient),
    (ews.ErrorInternalServerTransientError("later"), False, Transient),
    (ews.TransportError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"), False, Permanent),
])
def test_exchangelib_errors_map_to_the_error_tree(raised: Exception, sync: bool, expected: type[Exception]) -> None:
    with pytest.raises(expected) as caught, _map_errors("do it", sync=sync):
        raise raised
    assert "example.test" not in str(caught.value)  # no URL, no user name
    if isinstance(caught.value, RateLimited):
        assert caught.value.retry_after == 3


@pytest.mark.parametrize(("raised", "words"), [
    (ews.ErrorTimeoutExpired("Reraised from ConnectionError(NameResolutionError(...))"), "(DNS)"),
    (ews.TransportError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed"), "TLS"),
    (ews.UnauthorizedError("Invalid credentials"), "authentication"),
    (ews.ErrorAccessDenied("Access is denied"), "permissions"),
])
def test_failures_are_named_in_plain_words(raised: Exception, words: str) -> None:
    with pytest.raises(Exception) as caught, _map_errors("connect"):
        raise raised
    assert words in str(caught.value)


@pytest.mark.parametrize(("body", "text"), [
    (None, None),
    (Body("Bitte Befund mitbringen"), "Bitte Befund mitbringen"),
    (HTMLBody("<html><body><p>Bitte <b>Befund</b></p><p>mitbringen</p></body></html>"), "Bitte Befund\nmitbringen"),
])
def test_the_body_becomes_a_plain_text_description(body: Any, text: str | None) -> None:
    event = to_vevent(item(body=body), "u")
    assert (str(event["DESCRIPTION"]) if "DESCRIPTION" in event else None) == text


@pytest.mark.parametrize("state", ["not a state {", "[]", '{"v": 2, "s": "x", "w": []}', '{"v": 1, "s": "x"}'])
def test_an_unreadable_state_is_token_invalid(state: str) -> None:
    with pytest.raises(TokenInvalid):
        _State.decode(state)
