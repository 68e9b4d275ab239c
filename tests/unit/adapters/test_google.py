"""The Google adapter without a network: its conversions both ways, its error mapping and its request
count, at the wire (httpx.MockTransport answering as Google's API does)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

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
from bridge.adapters.google import (
    GoogleAdapter,
    event_id_for,
    instance_id,
    to_google,
    to_icalendar,
)

BERLIN = ZoneInfo("Europe/Berlin")
WINDOW = Window(datetime(2026, 11, 1, tzinfo=UTC), datetime(2027, 6, 1, tzinfo=UTC))
VALID = {"client_id": "c", "client_secret": "s", "access_token": "ya29.valid",
         "expiry": (datetime.now(UTC) + timedelta(hours=1)).isoformat(), "token_uri": "https://oauth2.invalid/token"}


def resource(**fields: Any) -> dict[str, Any]:
    base = {"id": "evt00001", "etag": '"1"', "iCalUID": "evt@google.com", "status": "confirmed",
            "updated": "2026-11-20T10:00:00.000Z", "summary": "Termin",
            "start": {"dateTime": "2026-12-07T09:00:00+01:00", "timeZone": "Europe/Berlin"},
            "end": {"dateTime": "2026-12-07T10:00:00+01:00", "timeZone": "Europe/Berlin"}}
    return {**base, **fields}


def vevent(calendar: icalendar.Calendar) -> icalendar.Event:
    return next(e for e in calendar.walk("VEVENT") if "RECURRENCE-ID" not in e)


# -- Google -> iCalendar ---------------------------------------------------------------------------------

def test_a_timed_event_keeps_its_zone_and_gets_its_vtimezone() -> None:
    calendar = to_icalendar(resource())
    event = vevent(calendar)
    assert event.decoded("DTSTART") == datetime(2026, 12, 7, 9, tzinfo=BERLIN)
    assert event["DTSTART"].params["TZID"] == "Europe/Berlin"
    assert [str(tz["TZID"]) for tz in calendar.walk("VTIMEZONE")] == ["Europe/Berlin"]
    assert str(event["UID"]) == "evt@google.com" and str(event["SUMMARY"]) == "Termin"


def test_a_time_without_a_zone_name_is_utc_and_needs_no_vtimezone() -> None:
    calendar = to_icalendar(resource(start={"dateTime": "2026-12-07T09:00:00+01:00"},
                                     end={"dateTime": "2026-12-07T10:00:00+01:00"}))
    assert vevent(calendar).decoded("DTSTART") == datetime(2026, 12, 7, 8, tzinfo=UTC)
    assert calendar.walk("VTIMEZONE") == []


def test_an_all_day_event_has_dates() -> None:
    event = vevent(to_icalendar(resource(start={"date": "2026-12-24"}, end={"date": "2026-12-27"})))
    assert (event.decoded("DTSTART"), event.decoded("DTEND")) == (date(2026, 12, 24), date(2026, 12, 27))


@pytest.mark.parametrize(("fields", "transp", "klass", "status"), [
    ({}, None, None, None),
    ({"transparency": "transparent"}, "TRANSPARENT", None, None),
    ({"transparency": "opaque"}, None, None, None),
    ({"visibility": "private"}, None, "PRIVATE", None),
    ({"visibility": "confidential"}, None, "CONFIDENTIAL", None),
    ({"visibility": "default"}, None, None, None),
    ({"status": "tentative"}, None, None, "TENTATIVE"),
    ({"eventType": "workingLocation"}, "TRANSPARENT", None, None),
    ({"eventType": "workingLocation", "transparency": "opaque"}, "TRANSPARENT", None, None),
    ({"eventType": "outOfOffice", "transparency": "transparent"}, "OPAQUE", None, None),
    ({"eventType": "focusTime"}, "OPAQUE", None, None),
])
def test_transparency_visibility_status_and_event_types(fields: dict[str, Any], transp: str | None,
                                                        klass: str | None, status: str | None) -> None:
    event = vevent(to_icalendar(resource(**fields)))
    assert (event.get("TRANSP"), event.get("CLASS"), event.get("STATUS")) == (transp, klass, status)
    if "eventType" in fields:
        assert event["X-GOOGLE-EVENT-TYPE"] == fields["eventType"]


def test_attendees_carry_their_answers_and_the_owners_decline() -> None:
    event = vevent(to_icalendar(resource(
        organizer={"email": "boss@example.com", "displayName": "Boss"},
        attendees=[{"email": "erika@example.com", "self": True, "responseStatus": "declined"},
                   {"email": "max@example.com", "responseStatus": "accepted", "optional": True},
                   {"email": "room@example.com", "resource": True}])))
    attendees = {str(a): a.params for a in event["ATTENDEE"]}
    assert attendees["mailto:erika@example.com"]["PARTSTAT"] == "DECLINED"
    assert attendees["mailto:max@example.com"]["PARTSTAT"] == "ACCEPTED"
    assert attendees["mailto:max@example.com"]["ROLE"] == "OPT-PARTICIPANT"
    assert attendees["mailto:room@example.com"]["PARTSTAT"] == "NEEDS-ACTION"
    assert attendees["mailto:room@example.com"]["CUTYPE"] == "RESOURCE"
    assert str(event["ORGANIZER"]) == "mailto:boss@example.com"


def test_a_series_with_a_moved_and_a_cancelled_instance_is_one_object() -> None:
    master = resource(recurrence=["RRULE:FREQ=WEEKLY;COUNT=6", "EXDATE;TZID=Europe/Berlin:20261221T090000"])
    moved = resource(id="evt00001_20261214T080000Z", recurringEventId="evt00001", summary="verlegt",
                     originalStartTime={"dateTime": "2026-12-14T09:00:00+01:00", "timeZone": "Europe/Berlin"},
                     start={"dateTime": "2026-12-16T14:00:00+01:00", "timeZone": "Europe/Berlin"},
                     end={"dateTime": "2026-12-16T14:30:00+01:00", "timeZone": "Europe/Berlin"})
    cancelled = {"id": "evt00001_20261228T080000Z", "recurringEventId": "evt00001", "status": "cancelled",
                 "originalStartTime": {"dateTime": "2026-12-28T09:00:00+01:00", "timeZone": "Europe/Berlin"}}
    calendar = to_icalendar(master, [moved, cancelled])
    events = calendar.walk("VEVENT")
    assert len(events) == 2
    head = vevent(calendar)
    assert str(head["RRULE"].to_ical().decode()) == "FREQ=WEEKLY;COUNT=6"
    excluded = sorted(d.dt for value in head["EXDATE"] for d in value.dts)
    assert excluded == [datetime(2026, 12, 21, 9, tzinfo=BERLIN), datetime(2026, 12, 28, 9, tzinfo=BERLIN)]
    override = next(e for e in events if "RECURRENCE-ID" in e)
    assert override.decoded("RECURRENCE-ID") == datetime(2026, 12, 14, 9, tzinfo=BERLIN)
    assert override.decoded("DTSTART") == datetime(2026, 12, 16, 14, tzinfo=BERLIN)
    assert {str(e["UID"]) for e in events} == {"evt@google.com"}


# -- iCalendar -> Google ---------------------------------------------------------------------------------

def parse_one(text: str) -> icalendar.Event:
    body = text.strip().replace("\n", "\r\n")
    calendar = icalendar.Calendar.from_ical(
        f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\n{body}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    return next(iter(calendar.walk("VEVENT")))


def test_to_google_writes_zones_recurrence_transparency_and_class() -> None:
    body = to_google(parse_one("""UID:a@b
DTSTART;TZID=Europe/Berlin:20261207T090000
DTEND;TZID=Europe/Berlin:20261207T093000
RRULE:FREQ=WEEKLY;COUNT=6
EXDATE;TZID=Europe/Berlin:20261221T090000
SUMMARY:Stand-up
TRANSP:TRANSPARENT
CLASS:PRIVATE
STATUS:TENTATIVE"""))
    assert body == {"start": {"dateTime": "2026-12-07T09:00:00+01:00", "timeZone": "Europe/Berlin"},
                    "end": {"dateTime": "2026-12-07T09:30:00+01:00", "timeZone": "Europe/Berlin"},
                    "summary": "Stand-up", "recurrence": ["RRULE:FREQ=WEEKLY;COUNT=6",
                                                          "EXDATE;TZID=Europe/Berlin:20261221T090000"],
                    "transparency": "transparent", "visibility": "private", "status": "tentative"}


def test_to_google_all_day_utc_and_duration() -> None:
    assert to_google(parse_one("UID:a\nDTSTART;VALUE=DATE:20261224"))["end"] == {"date": "2026-12-25"}
    body = to_google(parse_one("UID:a\nDTSTART:20261207T080000Z\nDURATION:PT45M"))
    assert body["start"] == {"dateTime": "2026-12-07T08:00:00+00:00", "timeZone": "UTC"}
    assert body["end"] == {"dateTime": "2026-12-07T08:45:00+00:00", "timeZone": "UTC"}


def test_ids_follow_googles_alphabet() -> None:
    assert event_id_for("cb1v" + "ab" * 32) == "cb1v" + "ab" * 32  # the engine's keys are ids already
    made = event_id_for("Some/Key with spaces")
    assert set(made) <= set("0123456789abcdefghijklmnopqrstuv") and 5 <= len(made) <= 1024
    assert made == event_id_for("Some/Key with spaces")
    assert instance_id("m1234", datetime(2026, 12, 14, 9, tzinfo=BERLIN)) == "m1234_20261214T080000Z"
    assert instance_id("m1234", date(2026, 12, 14)) == "m1234_20261214"


# -- at the wire --------------------------------------------------------------------------------------------

def adapter(handler: Callable[[httpx.Request], httpx.Response],
            credentials: dict[str, str] | None = None) -> GoogleAdapter:
    client = httpx.Client(transport=httpx.MockTransport(handler))
    return GoogleAdapter(client, "cal@example.com", credentials or VALID, api_url="https://api.invalid/calendar/v3")


def google_error(status: int, reason: str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, headers=headers, json={"error": {"code": status, "message": "x",
                                                                   "errors": [{"reason": reason}]}})


def test_a_quiet_incremental_cycle_is_one_request_with_the_cached_token() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"items": [], "nextSyncToken": "t2"})

    google = adapter(handler)
    delta = google.fetch(json.dumps({"v": 1, "t": "t1"}), WINDOW)
    assert (delta.changed, delta.deleted, delta.complete) == ([], [], False)
    assert json.loads(delta.state or "")["t"] == "t2"
    assert google.requests_made == 1
    assert seen[0].headers["Authorization"] == "Bearer ya29.valid"
    assert dict(seen[0].url.params) == {"syncToken": "t1", "maxResults": "250"}


def test_a_full_fetch_pages_and_bounds_the_window() -> None:
    pages = {None: {"items": [resource(id="a0000")], "nextPageToken": "p2"},
             "p2": {"items": [resource(id="b0000", iCalUID="b@google.com")], "nextSyncToken": "s1"}}

    def handler(request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        assert params["timeMin"] == "2026-11-01T00:00:00Z" and params["timeMax"] == "2027-06-01T00:00:00Z"
        assert "syncToken" not in params and "singleEvents" not in params
        return httpx.Response(200, json=pages[params.get("pageToken")])

    google = adapter(handler)
    delta = google.fetch(None, WINDOW)
    assert delta.complete and [e.remote_id for e in delta.changed] == ["a0000", "b0000"]
    assert [e.key for e in delta.changed] == ["a0000", "b0000"]
    assert google.requests_made == 2


def test_an_incremental_fetch_reports_deletions_and_reads_a_touched_series_whole() -> None:
    master = resource(id="m0000", iCalUID="m@google.com", recurrence=["RRULE:FREQ=DAILY;COUNT=3"])
    moved = resource(id="m0000_20261208T080000Z", iCalUID="m@google.com", recurringEventId="m0000", etag='"7"',
                     originalStartTime={"dateTime": "2026-12-08T09:00:00+01:00", "timeZone": "Europe/Berlin"})

    def handler(request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        if params.get("iCalUID") == "m@google.com":
            return httpx.Response(200, json={"items": [master, moved], "nextSyncToken": "x"})
        return httpx.Response(200, json={"items": [moved, {"id": "gone0", "status": "cancelled"}],
                                         "nextSyncToken": "t2"})

    google = adapter(handler)
    delta = google.fetch(json.dumps({"v": 1, "t": "t1"}), WINDOW)
    assert delta.deleted == ["gone0"]
    (event,) = delta.changed
    assert event.remote_id == "m0000" and len(event.calendar.walk("VEVENT")) == 2
    assert event.etag.startswith('"1"~')  # the master's etag, then a digest of the exceptions'
    assert google.requests_made == 2


@pytest.mark.parametrize(("response", "error"), [
    (google_error(401, "authError"), AuthExpired),
    (google_error(403, "rateLimitExceeded"), RateLimited),
    (google_error(403, "userRateLimitExceeded"), RateLimited),
    (google_error(403, "forbidden"), Permanent),
    (google_error(429, "rateLimitExceeded"), RateLimited),
    (google_error(404, "notFound"), RemoteNotFound),
    (google_error(410, "fullSyncRequired"), TokenInvalid),
    (google_error(412, "conditionNotMet"), PreconditionFailed),
    (google_error(400, "invalid"), Permanent),
    (google_error(500, "backendError"), Transient),
    (google_error(503, "backendError"), Transient),
])
def test_statuses_map_to_the_error_tree(response: httpx.Response, error: type[Exception]) -> None:
    google = adapter(lambda request: response, {k: v for k, v in VALID.items() if k != "refresh_token"})
    with pytest.raises(error) as raised:
        google.fetch(json.dumps({"v": 1, "t": "t1"}), WINDOW)
    assert "ya29" not in str(raised.value) and "cal@example.com" not in str(raised.value)


def test_rate_limits_carry_retry_after_or_a_default() -> None:
    with pytest.raises(RateLimited) as raised:
        adapter(lambda r: google_error(429, "rateLimitExceeded", {"Retry-After": "7"})).fetch(None, WINDOW)
    assert raised.value.retry_after == 7
    with pytest.raises(RateLimited) as raised:
        adapter(lambda r: google_error(403, "rateLimitExceeded")).fetch(None, WINDOW)
    assert raised.value.retry_after == 30


def test_410_on_a_write_is_not_found_and_timeouts_are_transient() -> None:
    with pytest.raises(RemoteNotFound):
        adapter(lambda r: google_error(410, "deleted")).update("abcde", '"1"', to_icalendar(resource()))

    def timeout(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    with pytest.raises(Transient):
        adapter(timeout).fetch(None, WINDOW)


def test_an_unreadable_state_is_token_invalid_without_a_request() -> None:
    google = adapter(lambda r: httpx.Response(500))
    for state in ("not json", json.dumps({"v": 2, "t": "x"}), json.dumps({"v": 1})):
        with pytest.raises(TokenInvalid):
            google.fetch(state, WINDOW)
    assert google.requests_made == 0


def test_delete_sends_the_masters_etag_and_gone_is_fine() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return google_error(410, "deleted")

    adapter(handler).delete("m0000", '"5"~abcdef')
    assert seen[0].method == "DELETE" and seen[0].headers["If-Match"] == '"5"'
