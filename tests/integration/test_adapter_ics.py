"""The ICS feed adapter against a feed served on loopback: conditional GETs, UID grouping,
the window, refused writes and the error mapping."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import icalendar
import pytest

from bridge.adapters.base import AuthExpired, Permanent, RateLimited, RemoteNotFound, TokenInvalid, Transient, Window
from bridge.adapters.ics import IcsFeedAdapter
from tests.servers import IcsFeed, free_port, ics_feed_server

WINDOW = Window(datetime(2027, 3, 1, tzinfo=UTC), datetime(2027, 4, 1, tzinfo=UTC))

BERLIN = """BEGIN:VTIMEZONE
TZID:Europe/Berlin
BEGIN:STANDARD
DTSTART:19701025T030000
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:19700329T020000
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
END:DAYLIGHT
END:VTIMEZONE
"""


def vevent(uid: str, start: str, end: str, extra: str = "", summary: str = "Busy") -> str:
    return (f"BEGIN:VEVENT\nUID:{uid}\nDTSTAMP:20261124T080000Z\nDTSTART{start}\nDTEND{end}\n"
            f"SUMMARY:{summary}\n{extra}END:VEVENT\n")


def feed_text(*events: str, zones: str = BERLIN) -> str:
    text = "BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//feed//EN\nX-WR-CALNAME:Team holidays\n" + zones
    return (text + "".join(events) + "END:VCALENDAR\n").replace("\n", "\r\n")


SERIES = vevent("series", ";TZID=Europe/Berlin:20270104T090000", ";TZID=Europe/Berlin:20270104T100000",
                "RRULE:FREQ=WEEKLY\n", "Standup")
OVERRIDE = vevent("series", ";TZID=Europe/Berlin:20270316T110000", ";TZID=Europe/Berlin:20270316T120000",
                  "RECURRENCE-ID;TZID=Europe/Berlin:20270315T090000\n", "Standup moved")
INSIDE = vevent("inside", ":20270310T090000Z", ":20270310T100000Z")
BASIC = feed_text(SERIES, INSIDE, OVERRIDE)


@pytest.fixture
def feed() -> Iterator[IcsFeed]:
    with ics_feed_server(BASIC) as running:
        yield running


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


@pytest.fixture
def adapter(feed: IcsFeed, http: httpx.Client) -> IcsFeedAdapter:
    return IcsFeedAdapter(http, feed.url)


def test_master_and_overrides_are_one_resource_per_uid(adapter: IcsFeedAdapter) -> None:
    delta = adapter.fetch(None, WINDOW)
    assert delta.complete and delta.deleted == [] and delta.state
    resources = {event.remote_id: event for event in delta.changed}
    assert set(resources) == {"series", "inside"}
    series = resources["series"].calendar
    assert [str(e["SUMMARY"]) for e in series.walk("VEVENT")] == ["Standup", "Standup moved"]
    assert [str(z["TZID"]) for z in series.walk("VTIMEZONE")] == ["Europe/Berlin"]
    assert resources["inside"].calendar.walk("VTIMEZONE") == []  # only the zones it uses
    assert all(event.etag for event in delta.changed)


def test_etag_follows_the_resource_text(adapter: IcsFeedAdapter, feed: IcsFeed) -> None:
    first = {e.remote_id: e.etag for e in adapter.fetch(None, WINDOW).changed}
    feed.set_body(feed_text(SERIES, INSIDE.replace("Busy", "Out of office"), OVERRIDE))
    second = {e.remote_id: e.etag for e in adapter.fetch(None, WINDOW).changed}
    assert second["series"] == first["series"] and second["inside"] != first["inside"]


def test_not_modified_is_one_request_and_an_empty_delta(adapter: IcsFeedAdapter, feed: IcsFeed,
                                                        http: httpx.Client) -> None:
    state = adapter.fetch(None, WINDOW).state
    assert feed.requests == 1
    fresh = IcsFeedAdapter(http, feed.url)
    delta = fresh.fetch(state, WINDOW)
    assert (delta.changed, delta.deleted, delta.complete, delta.state) == ([], [], False, state)
    assert fresh.requests_made == 1 and feed.requests == 2
    feed.set_body(feed_text(INSIDE))
    changed = fresh.fetch(state, WINDOW)
    assert changed.complete and [e.remote_id for e in changed.changed] == ["inside"]
    assert changed.state != state


def test_last_modified_alone_makes_the_get_conditional(feed: IcsFeed, http: httpx.Client) -> None:
    adapter = IcsFeedAdapter(http, feed.url)
    state = adapter.fetch(None, WINDOW).state
    assert state is not None
    without_etag = state.replace('"e":', '"x":')
    assert adapter.fetch(without_etag, WINDOW).changed == []
    assert adapter.requests_made == 2


def test_an_identical_body_without_validators_is_an_empty_delta(feed: IcsFeed, http: httpx.Client) -> None:
    feed.send_validators = False
    adapter = IcsFeedAdapter(http, feed.url)
    state = adapter.fetch(None, WINDOW).state
    delta = adapter.fetch(state, WINDOW)
    assert (delta.changed, delta.complete) == ([], False) and adapter.requests_made == 2


def test_window_keeps_what_overlaps_and_series_by_their_span(http: httpx.Client) -> None:
    events = [
        vevent("before", ":20270110T090000Z", ":20270110T100000Z"),
        vevent("after", ":20270410T090000Z", ":20270410T100000Z"),
        vevent("inside", ":20270310T090000Z", ":20270310T100000Z"),
        vevent("straddles-start", ":20270228T230000Z", ":20270301T010000Z"),
        vevent("all-day-last", ";VALUE=DATE:20270331", ";VALUE=DATE:20270401"),
        vevent("floating", ":20270331T230000", ":20270331T233000"),
        vevent("open-series", ":20200106T090000Z", ":20200106T100000Z", "RRULE:FREQ=WEEKLY\n"),
        vevent("until-inside", ":20270104T090000Z", ":20270104T100000Z", "RRULE:FREQ=DAILY;UNTIL=20270302T000000Z\n"),
        vevent("until-before", ":20270104T090000Z", ":20270104T100000Z", "RRULE:FREQ=DAILY;UNTIL=20270201T000000Z\n"),
        vevent("count-before", ":20270104T090000Z", ":20270104T100000Z", "RRULE:FREQ=WEEKLY;COUNT=4\n"),
        vevent("count-inside", ":20270104T090000Z", ":20270104T100000Z", "RRULE:FREQ=WEEKLY;COUNT=10\n"),
        vevent("byday-count", ":20270104T090000Z", ":20270104T100000Z", "RRULE:FREQ=MONTHLY;BYDAY=1MO;COUNT=3\n"),
        vevent("rdate-inside", ":20270104T090000Z", ":20270104T100000Z", "RDATE:20270320T090000Z\n"),
        vevent("override-moved-in", ":20261207T090000Z", ":20261207T100000Z", "RRULE:FREQ=DAILY;COUNT=2\n"),
        vevent("override-moved-in", ":20270305T090000Z", ":20270305T100000Z",
               "RECURRENCE-ID:20261208T090000Z\n"),
    ]
    with ics_feed_server(feed_text(*events, zones="")) as feed:
        delta = IcsFeedAdapter(http, feed.url).fetch(None, WINDOW)
    assert {e.remote_id for e in delta.changed} == {
        "inside", "straddles-start", "all-day-last", "floating", "open-series", "until-inside", "count-inside",
        "byday-count", "rdate-inside", "override-moved-in"}


def test_writes_are_refused(adapter: IcsFeedAdapter) -> None:
    calendar = icalendar.Calendar.from_ical(BASIC)
    assert IcsFeedAdapter.read_only and IcsFeedAdapter.provider == "ics"
    with pytest.raises(Permanent):
        adapter.create(calendar, "key")
    with pytest.raises(Permanent):
        adapter.update("inside", "etag", calendar)
    with pytest.raises(Permanent):
        adapter.delete("inside", None)
    assert adapter.requests_made == 0


def test_list_calendars_names_the_feed(adapter: IcsFeedAdapter, feed: IcsFeed) -> None:
    [calendar] = adapter.list_calendars()
    assert (calendar.id, calendar.name, calendar.read_only) == (feed.url, "Team holidays", True)


def test_webcal_means_https(http: httpx.Client) -> None:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        return httpx.Response(200, content=BASIC.encode())

    client = httpx.Client(transport=httpx.MockTransport(answer))
    IcsFeedAdapter(client, "webcal://feeds.example/team.ics").fetch(None, WINDOW)
    assert seen == ["https://feeds.example/team.ics"]


@pytest.mark.parametrize(("status", "headers", "error"), [
    (401, {}, AuthExpired),
    (403, {}, AuthExpired),
    (404, {}, RemoteNotFound),
    (410, {}, RemoteNotFound),
    (429, {"Retry-After": "30"}, RateLimited),
    (503, {"Retry-After": "30"}, RateLimited),
    (503, {}, Transient),
    (502, {}, Transient),
    (400, {}, Permanent),
])
def test_failures_map_to_the_error_tree(feed: IcsFeed, adapter: IcsFeedAdapter, status: int,
                                        headers: dict[str, str], error: type[Exception]) -> None:
    feed.status, feed.headers = status, headers
    with pytest.raises(error) as raised:
        adapter.fetch(None, WINDOW)
    assert "127.0.0.1" not in str(raised.value)
    if headers:
        assert isinstance(raised.value, RateLimited) and raised.value.retry_after == 30
    assert adapter.requests_made == 1


def test_not_icalendar_is_permanent(feed: IcsFeed, adapter: IcsFeedAdapter) -> None:
    feed.set_body("<html>Please log in</html>")
    with pytest.raises(Permanent):
        adapter.fetch(None, WINDOW)


def test_unreadable_state_is_token_invalid(adapter: IcsFeedAdapter) -> None:
    with pytest.raises(TokenInvalid):
        adapter.fetch("garbage", WINDOW)
    assert adapter.requests_made == 0


def test_feed_down_is_transient(http: httpx.Client) -> None:
    adapter = IcsFeedAdapter(http, f"http://127.0.0.1:{free_port()}/feed.ics")
    with pytest.raises(Transient):
        adapter.fetch(None, WINDOW)
    assert adapter.requests_made == 1
