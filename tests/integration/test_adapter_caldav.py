"""The CalDAV adapter's contract against real servers (Radicale and Xandikos on loopback),
on both incremental paths (sync-collection and ctag + etags), plus its error mapping at the
wire (httpx.MockTransport) and the iCloud preset."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import icalendar
import pytest

from bridge.adapters.base import (
    AuthExpired,
    Delta,
    Permanent,
    PreconditionFailed,
    RateLimited,
    RemoteNotFound,
    TokenInvalid,
    Transient,
    Window,
)
from bridge.adapters.caldav import CalDavAdapter, ICloudAdapter, Quirks, icloud_adapter
from tests.ics import event as event_text
from tests.servers import RADICALE_PASSWORD, DavServer, dav_server, free_port

WINDOW = Window(datetime(2027, 3, 1, tzinfo=UTC), datetime(2027, 4, 1, tzinfo=UTC))
IN = datetime(2027, 3, 10, 9, tzinfo=UTC)
BEFORE = datetime(2027, 1, 10, 9, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.fixture(scope="module", params=["radicale", "xandikos"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DavServer]:
    with dav_server(request.param, tmp_path_factory.mktemp(request.param)) as running:
        yield running


@pytest.fixture
def calendar(server: DavServer) -> str:
    return server.new_calendar()


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as client:
        yield client


@pytest.fixture
def other(server: DavServer) -> Iterator[httpx.Client]:
    """Another client of the same account, changing things behind the adapter's back."""
    with server.client() as client:
        yield client


@pytest.fixture(params=["sync", "ctag"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def make(server: DavServer, calendar: str | None, http: httpx.Client, mode: str = "sync",
         password: str | None = None) -> CalDavAdapter:
    auth = None
    if server.auth is not None:
        auth = httpx.BasicAuth(server.auth[0], password or server.auth[1])
    return CalDavAdapter(http, server.url, calendar_url=calendar, auth=auth, sync_collection=mode == "sync")


@pytest.fixture
def adapter(server: DavServer, calendar: str, http: httpx.Client, mode: str) -> CalDavAdapter:
    return make(server, calendar, http, mode)


def put(other: httpx.Client, calendar: str, name: str, text: str) -> str:
    response = other.put(calendar + name, content=text, headers={"Content-Type": "text/calendar"})
    assert response.status_code in (201, 204), response.status_code
    return httpx.URL(calendar + name).path


def ical(uid: str, start: datetime = IN, summary: str = "Appointment", extra: str = "") -> icalendar.Calendar:
    return icalendar.Calendar.from_ical(event_text(uid, start, start + HOUR, summary, extra))


def by_id(delta: Delta) -> dict[str, icalendar.Calendar]:
    return {event.remote_id: event.calendar for event in delta.changed}


def summaries(delta: Delta) -> dict[str, str]:
    return {event.remote_id: str(event.calendar.walk("VEVENT")[0]["SUMMARY"]) for event in delta.changed}


# -- discovery ----------------------------------------------------------------------------

def test_discovery_finds_the_calendars(server: DavServer, calendar: str, http: httpx.Client) -> None:
    adapter = make(server, None, http)
    found = {c.id: c for c in adapter.list_calendars()}
    assert calendar in found and server.default_calendar in found
    assert not found[calendar].read_only
    assert found[calendar].name
    assert adapter.requests_made >= 3


def test_discovery_skips_task_only_calendars(server: DavServer, http: httpx.Client, other: httpx.Client) -> None:
    url = f"{server.home}tasks-{datetime.now().timestamp():.0f}/"
    body = ('<?xml version="1.0" encoding="utf-8"?><C:mkcalendar xmlns:D="DAV:" '
            'xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop><C:supported-calendar-component-set>'
            '<C:comp name="VTODO"/></C:supported-calendar-component-set></D:prop></D:set></C:mkcalendar>')
    response = other.request("MKCALENDAR", url, content=body, headers={"Content-Type": "application/xml"})
    assert response.status_code == 201
    assert url not in {c.id for c in make(server, None, http).list_calendars()}


# -- fetch --------------------------------------------------------------------------------

def test_full_fetch_returns_the_window(adapter: CalDavAdapter, calendar: str, other: httpx.Client) -> None:
    inside = put(other, calendar, "inside.ics", event_text("inside", IN, IN + HOUR, "Inside"))
    put(other, calendar, "before.ics", event_text("before", BEFORE, BEFORE + HOUR))
    series = put(other, calendar, "series.ics",
                 event_text("series", BEFORE, BEFORE + HOUR, "Weekly", "RRULE:FREQ=WEEKLY;COUNT=20\r\n"))
    put(other, calendar, "task.ics", "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VTODO\r\n"
        "UID:task\r\nDTSTAMP:20261124T080000Z\r\nSUMMARY:Task\r\nEND:VTODO\r\nEND:VCALENDAR\r\n")
    delta = adapter.fetch(None, WINDOW)
    assert delta.complete and delta.deleted == [] and delta.state
    assert summaries(delta) == {inside: "Inside", series: "Weekly"}
    assert all(event.etag.strip('"') for event in delta.changed)


def test_created_event_shows_in_the_next_incremental_fetch(adapter: CalDavAdapter) -> None:
    state = adapter.fetch(None, WINDOW).state
    created = adapter.create(ical("new-1", summary="Booked"), "item-1")
    assert created.remote_id.endswith("/item-1.ics") and created.etag
    delta = adapter.fetch(state, WINDOW)
    assert not delta.complete
    assert [(e.remote_id, e.etag) for e in delta.changed] == [(created.remote_id, created.etag)]
    assert summaries(delta) == {created.remote_id: "Booked"}
    assert adapter.fetch(delta.state, WINDOW).changed == []


def test_update_needs_the_current_etag(adapter: CalDavAdapter) -> None:
    created = adapter.create(ical("upd-1"), "upd-1")
    updated = adapter.update(created.remote_id, created.etag, ical("upd-1", summary="Moved"))
    assert updated.etag != created.etag
    with pytest.raises(PreconditionFailed):
        adapter.update(created.remote_id, created.etag, ical("upd-1", summary="Stale"))
    assert summaries(adapter.fetch(None, WINDOW)) == {created.remote_id: "Moved"}


def test_delete(adapter: CalDavAdapter) -> None:
    created = adapter.create(ical("del-1"), "del-1")
    kept = adapter.create(ical("del-2"), "del-2")
    state = adapter.fetch(None, WINDOW).state
    with pytest.raises(PreconditionFailed):
        adapter.delete(created.remote_id, '"stale"')
    adapter.delete(created.remote_id, created.etag)
    adapter.delete(created.remote_id, created.etag)  # gone already is fine
    adapter.delete(kept.remote_id, None)
    delta = adapter.fetch(state, WINDOW)
    assert delta.changed == [] and sorted(delta.deleted) == sorted([created.remote_id, kept.remote_id])


def test_changes_by_another_client_appear(adapter: CalDavAdapter, calendar: str, other: httpx.Client) -> None:
    keep = put(other, calendar, "keep.ics", event_text("keep", IN, IN + HOUR))
    edit = put(other, calendar, "edit.ics", event_text("edit", IN, IN + HOUR, "Before"))
    gone = put(other, calendar, "gone.ics", event_text("gone", IN, IN + HOUR))
    state = adapter.fetch(None, WINDOW).state
    put(other, calendar, "edit.ics", event_text("edit", IN, IN + HOUR, "After"))
    added = put(other, calendar, "added.ics", event_text("added", IN + HOUR, IN + 2 * HOUR, "Added"))
    assert other.delete(calendar + "gone.ics").status_code in (200, 204)
    delta = adapter.fetch(state, WINDOW)
    assert summaries(delta) == {edit: "After", added: "Added"}
    assert delta.deleted == [gone]
    assert keep not in delta.deleted
    again = adapter.fetch(delta.state, WINDOW)
    assert again.changed == [] and again.deleted == []


def test_a_task_is_no_event(adapter: CalDavAdapter, calendar: str, other: httpx.Client) -> None:
    state = adapter.fetch(None, WINDOW).state
    task = put(other, calendar, "task.ics", "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VTODO\r\n"
               "UID:task\r\nDTSTAMP:20261124T080000Z\r\nSUMMARY:Task\r\nEND:VTODO\r\nEND:VCALENDAR\r\n")
    delta = adapter.fetch(state, WINDOW)
    assert delta.changed == [] and delta.deleted == [task]  # a no-op for an unmapped remote id


@pytest.mark.parametrize("mode", ["sync"])
@pytest.mark.parametrize("token", ["http://example.invalid/never-issued", "0" * 40,
                                   "http://radicale.org/ns/sync/" + "0" * 64])
def test_unknown_sync_token_is_token_invalid(adapter: CalDavAdapter, token: str) -> None:
    with pytest.raises(TokenInvalid):
        adapter.fetch(json.dumps({"v": 1, "t": token}), WINDOW)


@pytest.mark.parametrize("state", ["", "not json", "{}", '{"v":2,"t":"x"}', '{"v":1,"c":"x","e":[]}'])
def test_unreadable_state_is_token_invalid(adapter: CalDavAdapter, state: str) -> None:
    with pytest.raises(TokenInvalid):
        adapter.fetch(state, WINDOW)
    assert adapter.requests_made == 0


def test_a_no_change_cycle_is_one_request(server: DavServer, calendar: str, http: httpx.Client, mode: str,
                                          other: httpx.Client) -> None:
    put(other, calendar, "one.ics", event_text("one", IN, IN + HOUR))
    state = make(server, calendar, http, mode).fetch(None, WINDOW).state
    assert state is not None
    kind = "t" if mode == "sync" else "c"
    assert kind in json.loads(state) and " " not in state
    fresh = make(server, calendar, http, mode)  # the engine builds one per run: no probing allowed
    delta = fresh.fetch(state, WINDOW)
    assert (delta.changed, delta.deleted, delta.complete) == ([], [], False)
    assert fresh.requests_made == 1
    put(other, calendar, "two.ics", event_text("two", IN, IN + HOUR))
    changed = fresh.fetch(delta.state, WINDOW)
    assert len(changed.changed) == 1
    after = make(server, calendar, http, mode)
    assert after.fetch(changed.state, WINDOW).changed == [] and after.requests_made == 1


def test_create_retried_with_the_same_key_makes_no_duplicate(adapter: CalDavAdapter) -> None:
    first = adapter.create(ical("retry-1"), "retry key/1")
    again = adapter.create(ical("retry-1"), "retry key/1")
    assert again.remote_id == first.remote_id and again.etag == first.etag
    assert [e.remote_id for e in adapter.fetch(None, WINDOW).changed] == [first.remote_id]
    with pytest.raises(Permanent):
        adapter.create(ical("someone-else"), "retry key/1")


def test_many_changes_are_read_in_batches(server: DavServer, calendar: str, http: httpx.Client, mode: str,
                                          other: httpx.Client) -> None:
    auth = httpx.BasicAuth(*server.auth) if server.auth else None
    adapter = CalDavAdapter(http, server.url, calendar_url=calendar, auth=auth, sync_collection=mode == "sync",
                            quirks=Quirks(multiget_batch=4))
    state = adapter.fetch(None, WINDOW).state
    hrefs = {put(other, calendar, f"b{n}.ics", event_text(f"b{n}", IN, IN + HOUR)) for n in range(10)}
    before = adapter.requests_made
    delta = adapter.fetch(state, WINDOW)
    assert {e.remote_id for e in delta.changed} == hrefs
    expected = 1 + 3 if mode == "sync" else 2 + 3  # (ctag probe +) sync report or listing, 3 multigets
    assert adapter.requests_made - before == expected


def test_missing_calendar_is_remote_not_found(server: DavServer, http: httpx.Client) -> None:
    with pytest.raises(RemoteNotFound):
        make(server, server.home + "no-such-calendar/", http).fetch(None, WINDOW)


def test_a_vanished_calendar_is_remote_not_found_not_a_mass_deletion(adapter: CalDavAdapter, calendar: str,
                                                                    other: httpx.Client) -> None:
    put(other, calendar, "one.ics", event_text("one", IN, IN + HOUR))
    state = adapter.fetch(None, WINDOW).state
    assert other.delete(calendar).status_code in (200, 204)
    with pytest.raises(RemoteNotFound):
        adapter.fetch(state, WINDOW)


def test_wrong_password_is_auth_expired(server: DavServer, calendar: str, http: httpx.Client) -> None:
    if server.auth is None:
        pytest.skip("Xandikos serves without authentication")
    adapter = make(server, calendar, http, password="wrong-" + RADICALE_PASSWORD)
    with pytest.raises(AuthExpired) as raised:
        adapter.fetch(None, WINDOW)
    assert RADICALE_PASSWORD not in str(raised.value)
    with pytest.raises(AuthExpired):
        adapter.list_calendars()


def test_server_down_is_transient(http: httpx.Client) -> None:
    url = f"http://127.0.0.1:{free_port()}/"
    adapter = CalDavAdapter(http, url, calendar_url=url + "cal/")
    with pytest.raises(Transient):
        adapter.fetch(None, WINDOW)
    with pytest.raises(Transient):
        adapter.list_calendars()
    with pytest.raises(Transient):
        adapter.create(ical("x"), "x")
    assert adapter.requests_made == 3  # discovery stops at the first transport failure


# -- error mapping at the wire ------------------------------------------------------------

def mocked(status: int, headers: dict[str, str] | None = None, body: bytes = b"") -> CalDavAdapter:
    transport = httpx.MockTransport(lambda request: httpx.Response(status, headers=headers, content=body))
    client = httpx.Client(transport=transport)
    return CalDavAdapter(client, "https://dav.example/cal/", auth=httpx.BasicAuth("user", "s3cret-pass"))


@pytest.mark.parametrize(("status", "headers", "body", "error"), [
    (401, {}, b"", AuthExpired),
    (403, {}, b"", AuthExpired),
    (403, {}, b'<error xmlns="DAV:"><need-privileges/></error>', Permanent),
    (404, {}, b"", RemoteNotFound),
    (410, {}, b"", RemoteNotFound),
    (412, {}, b"", PreconditionFailed),
    (429, {"Retry-After": "7"}, b"", RateLimited),
    (429, {}, b"", RateLimited),
    (503, {"Retry-After": "12"}, b"", RateLimited),
    (503, {}, b"", Transient),
    (500, {}, b"", Transient),
    (400, {}, b"", Permanent),
    (207, {}, b"<not-xml", Permanent),
])
def test_statuses_map_to_the_error_tree(status: int, headers: dict[str, str], body: bytes,
                                        error: type[Exception]) -> None:
    adapter = mocked(status, headers, body)
    with pytest.raises(error) as raised:
        adapter.fetch(None, WINDOW)
    assert "s3cret" not in str(raised.value) and "dav.example" not in str(raised.value)
    if status == 503 and headers:
        assert isinstance(raised.value, RateLimited) and raised.value.retry_after == 12
    assert adapter.requests_made == 1


@pytest.mark.parametrize("status", [403, 409, 412, 410])
def test_sync_token_refusals_are_token_invalid(status: int) -> None:
    body = b'<error xmlns="DAV:"><valid-sync-token/></error>' if status != 410 else b""
    with pytest.raises(TokenInvalid):
        mocked(status, body=body).fetch('{"t":"old","v":1}', WINDOW)


def test_timeout_is_transient() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    adapter = CalDavAdapter(httpx.Client(transport=httpx.MockTransport(slow)), "https://dav.example/cal/")
    with pytest.raises(Transient):
        adapter.delete("/cal/x.ics", '"1"')
    assert adapter.requests_made == 1


def test_a_server_without_the_sync_token_property_names_it_in_an_initial_sync() -> None:
    event = event_text("one", IN, IN + HOUR).replace("\r\n", "\n")
    answers = {
        "PROPFIND": '<multistatus xmlns="DAV:"><response><href>/cal/</href><propstat><prop><supported-report-set>'
                    '<supported-report><report><sync-collection/></report></supported-report></supported-report-set>'
                    '</prop><status>HTTP/1.1 200 OK</status></propstat></response></multistatus>',
        "sync-collection": '<multistatus xmlns="DAV:"><sync-token>urn:token:7</sync-token></multistatus>',
        "calendar-query": '<multistatus xmlns="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><response>'
                          '<href>/cal/one.ics</href><propstat><prop><getetag>"e1"</getetag>'
                          f'<C:calendar-data>{event}</C:calendar-data></prop><status>HTTP/1.1 200 OK</status>'
                          '</propstat></response></multistatus>',
    }

    def answer(request: httpx.Request) -> httpx.Response:
        key = next(k for k in answers if k == request.method or k.encode() in request.content[:80])
        return httpx.Response(207, content=answers[key].encode())

    adapter = CalDavAdapter(httpx.Client(transport=httpx.MockTransport(answer)), "https://dav.example/cal/")
    delta = adapter.fetch(None, WINDOW)
    assert json.loads(delta.state or "") == {"v": 1, "t": "urn:token:7"}
    assert [(e.remote_id, e.etag) for e in delta.changed] == [("/cal/one.ics", '"e1"')]
    assert adapter.requests_made == 3


def test_icloud_preset() -> None:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(401)

    adapter = icloud_adapter(httpx.Client(transport=httpx.MockTransport(answer)), "me@icloud.com", "abcd-efgh")
    assert isinstance(adapter, ICloudAdapter)
    assert (adapter.provider, adapter.SYNC_TIMEZONE, CalDavAdapter.provider) == ("icloud", "UTC", "caldav")
    with pytest.raises(AuthExpired):
        adapter.list_calendars()
    assert str(seen[0].url) == "https://caldav.icloud.com/.well-known/caldav"
    assert seen[0].method == "PROPFIND" and seen[0].headers["Authorization"].startswith("Basic ")
