"""The Graph adapter's pure parts (mapping both ways, recurrence, errors) and its wire use over httpx.MockTransport."""

from __future__ import annotations

import json
import zoneinfo
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import icalendar
import pytest

from bridge.adapters.base import (
    AuthExpired,
    Permanent,
    PreconditionFailed,
    RateLimited,
    RemoteNotFound,
    TokenInvalid,
    Transient,
    Window,
)
from bridge.adapters.microsoft import MicrosoftAdapter, recurrence_of, rrule_of, to_graph, to_vevent

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
WINDOW = Window(datetime(2026, 11, 1, tzinfo=UTC), datetime(2027, 6, 1, tzinfo=UTC))


def item(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"id": "e1", "subject": "Termin", "start": {"dateTime": "2026-12-07T08:00:00.0000000",
                                                                      "timeZone": "UTC"},
                            "end": {"dateTime": "2026-12-07T09:00:00.0000000", "timeZone": "UTC"},
                            "isAllDay": False, "showAs": "busy", "sensitivity": "normal", "isCancelled": False}
    base.update(fields)
    return base


# -- Graph -> iCalendar ---------------------------------------------------------------------------

@pytest.mark.parametrize(("show_as", "transp", "status"), [
    ("free", "TRANSPARENT", "FREE"), ("busy", "OPAQUE", "BUSY"), ("tentative", "OPAQUE", "TENTATIVE"),
    ("oof", "OPAQUE", "OOF"), ("workingElsewhere", "TRANSPARENT", "WORKINGELSEWHERE")])
def test_show_as_becomes_transparency_and_the_outlook_busy_status(show_as: str, transp: str, status: str) -> None:
    event = to_vevent(item(showAs=show_as), "u")
    assert (str(event["TRANSP"]), str(event["X-MICROSOFT-CDO-BUSYSTATUS"])) == (transp, status)


@pytest.mark.parametrize(("sensitivity", "klass"), [("private", "PRIVATE"), ("confidential", "CONFIDENTIAL"),
                                                    ("normal", None), ("personal", None)])
def test_sensitivity_becomes_class(sensitivity: str, klass: str | None) -> None:
    event = to_vevent(item(sensitivity=sensitivity), "u")
    assert (str(event["CLASS"]) if "CLASS" in event else None) == klass


def test_cancelled_and_declined_events_are_never_busy() -> None:
    assert str(to_vevent(item(isCancelled=True), "u")["STATUS"]) == "CANCELLED"
    declined = to_vevent(item(responseStatus={"response": "declined"}), "u")
    assert str(declined["TRANSP"]) == "TRANSPARENT"


def test_times_are_utc_and_all_day_events_are_dates_even_when_converted() -> None:
    event = to_vevent(item(), "u")
    assert event.decoded("DTSTART") == datetime(2026, 12, 7, 8, tzinfo=UTC)
    all_day = to_vevent(item(isAllDay=True, start={"dateTime": "2026-12-07T00:00:00.0000000", "timeZone": "UTC"},
                             end={"dateTime": "2026-12-08T00:00:00.0000000", "timeZone": "UTC"}), "u")
    assert (all_day.decoded("DTSTART"), all_day.decoded("DTEND")) == (date(2026, 12, 7), date(2026, 12, 8))
    shifted = to_vevent(item(isAllDay=True, originalStartTimeZone="W. Europe Standard Time",
                             originalEndTimeZone="W. Europe Standard Time",
                             start={"dateTime": "2026-12-06T23:00:00.0000000", "timeZone": "UTC"},
                             end={"dateTime": "2026-12-07T23:00:00.0000000", "timeZone": "UTC"}), "u")
    assert shifted.decoded("DTSTART") == date(2026, 12, 7)


def test_windows_zone_names_are_read_through_icalendars_table() -> None:
    event = to_vevent(item(start={"dateTime": "2026-12-07T09:00:00", "timeZone": "W. Europe Standard Time"},
                           end={"dateTime": "2026-12-07T10:00:00", "timeZone": "W. Europe Standard Time"}), "u", BERLIN)
    assert event.decoded("DTSTART") == datetime(2026, 12, 7, 9, tzinfo=BERLIN)
    assert event.decoded("DTSTART").astimezone(UTC).hour == 8


# -- recurrence both ways --------------------------------------------------------------------------

START = datetime(2026, 12, 7, 9, tzinfo=BERLIN)


@pytest.mark.parametrize("rule", [
    "FREQ=WEEKLY;BYDAY=MO,WE;COUNT=6", "FREQ=DAILY;INTERVAL=2", "FREQ=MONTHLY;BYMONTHDAY=7;COUNT=3",
    "FREQ=MONTHLY;BYDAY=1MO", "FREQ=MONTHLY;BYDAY=-1FR", "FREQ=YEARLY;BYMONTH=12;BYMONTHDAY=7",
    "FREQ=YEARLY;BYMONTH=12;BYDAY=1MO", "FREQ=WEEKLY;BYDAY=MO;UNTIL=20270104T080000Z"])
def test_rrules_graph_can_express_survive_the_round_trip(rule: str) -> None:
    parsed = icalendar.vRecur.from_ical(rule)
    pattern = recurrence_of(parsed, START, BERLIN)
    back = rrule_of(pattern, START, BERLIN)
    assert dict(icalendar.vRecur.from_ical(back.to_ical().decode())) == dict(parsed)


def test_patterned_recurrence_fields() -> None:
    pattern = recurrence_of(icalendar.vRecur.from_ical("FREQ=WEEKLY;BYDAY=MO;COUNT=6"), START, BERLIN)
    assert pattern == {"pattern": {"interval": 1, "type": "weekly", "daysOfWeek": ["monday"],
                                   "firstDayOfWeek": "monday"},
                       "range": {"startDate": "2026-12-07", "recurrenceTimeZone": "Europe/Berlin",
                                 "type": "numbered", "numberOfOccurrences": 6}}


@pytest.mark.parametrize("rule", ["FREQ=HOURLY", "FREQ=WEEKLY;BYHOUR=9", "FREQ=MONTHLY;BYMONTHDAY=1,15",
                                  "FREQ=MONTHLY;BYDAY=2MO,3TU", "FREQ=MONTHLY;BYMONTHDAY=-1"])
def test_rrules_graph_cannot_express_are_permanent(rule: str) -> None:
    with pytest.raises(Permanent, match="Graph"):
        recurrence_of(icalendar.vRecur.from_ical(rule), START, BERLIN)


def test_a_vevent_becomes_graph_json_with_its_markers() -> None:
    event = icalendar.Event()
    event.add("UID", "u")
    event.add("DTSTART", START)
    event.add("DTEND", START + timedelta(minutes=30))
    event.add("SUMMARY", "Stand-up")
    event.add("CLASS", "PRIVATE")
    event.add("X-MICROSOFT-CDO-BUSYSTATUS", "OOF")
    body = to_graph(event)
    assert body["start"] == {"dateTime": "2026-12-07T09:00:00", "timeZone": "Europe/Berlin"}
    assert (body["showAs"], body["sensitivity"], body["isAllDay"]) == ("oof", "private", False)


# -- the wire --------------------------------------------------------------------------------------

CREDENTIALS = {"client_id": "c", "client_secret": "s", "authority": "https://login.invalid/common",
               "refresh_token": "r", "access_token": "a", "expires_at": "2999-01-01T00:00:00Z", "scope": "x"}


def adapter(handler: Any) -> MicrosoftAdapter:
    client = httpx.Client(transport=httpx.MockTransport(handler))
    return MicrosoftAdapter(client, CREDENTIALS, "cal", graph_url="https://graph.invalid/v1.0")


def test_a_quiet_cycle_with_a_valid_token_is_exactly_one_request() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"value": [], "@odata.deltaLink":
                                         "https://graph.invalid/v1.0/me/calendars/cal/calendarView/delta?$deltatoken=2"})

    state = json.dumps({"v": 1, "d": "/me/calendars/cal/calendarView/delta?$deltatoken=1",
                        "w": [WINDOW.start.isoformat(), WINDOW.end.isoformat()], "s": {}})
    remote = adapter(handler)
    delta = remote.fetch(state, WINDOW)
    assert (delta.changed, delta.deleted, delta.complete, remote.requests_made) == ([], [], False, 1)
    assert seen[0].headers["Authorization"] == "Bearer a"
    assert 'outlook.timezone="UTC"' in seen[0].headers["Prefer"] and "odata.maxpagesize" in seen[0].headers["Prefer"]
    assert json.loads(delta.state or "")["d"].endswith("$deltatoken=2")


def test_a_rolled_window_starts_a_new_complete_round() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert "startDateTime" in request.url.params
        return httpx.Response(200, json={"value": [], "@odata.deltaLink": "https://graph.invalid/v1.0/x?$deltatoken=9"})

    state = json.dumps({"v": 1, "d": "/x?$deltatoken=1", "s": {},
                        "w": [(WINDOW.start - timedelta(days=3)).isoformat(), WINDOW.end.isoformat()]})
    assert adapter(handler).fetch(state, WINDOW).complete


@pytest.mark.parametrize(("status", "headers", "body", "error"), [
    (410, {}, {}, TokenInvalid), (400, {}, {"error": {"code": "syncStateNotFound"}}, TokenInvalid),
    (429, {"Retry-After": "7"}, {}, RateLimited), (503, {}, {}, RateLimited), (404, {}, {}, RemoteNotFound),
    (412, {}, {}, PreconditionFailed), (500, {}, {}, Transient), (400, {}, {}, Permanent)])
def test_statuses_map_to_the_error_tree(status: int, headers: dict[str, str], body: dict[str, Any],
                                        error: type[Exception]) -> None:
    remote = adapter(lambda request: httpx.Response(status, headers=headers, json=body))
    state = json.dumps({"v": 1, "d": "/x", "s": {}, "w": [WINDOW.start.isoformat(), WINDOW.end.isoformat()]})
    with pytest.raises(error) as raised:
        remote.fetch(state, WINDOW)
    if isinstance(raised.value, RateLimited):
        assert raised.value.retry_after == (7.0 if status == 429 else 30.0)
    assert "graph.invalid" not in str(raised.value)


def test_timeouts_are_transient_and_an_unreadable_state_is_token_invalid() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(Transient):
        adapter(handler).list_calendars()
    with pytest.raises(TokenInvalid):
        adapter(handler).fetch("not a state {", WINDOW)


def test_a_401_without_a_refresh_token_is_auth_expired() -> None:
    client = httpx.Client(transport=httpx.MockTransport(lambda request: httpx.Response(401)))
    remote = MicrosoftAdapter(client, {**CREDENTIALS, "refresh_token": ""}, "cal", graph_url="https://graph.invalid/v1.0")
    with pytest.raises(AuthExpired):
        remote.list_calendars()
