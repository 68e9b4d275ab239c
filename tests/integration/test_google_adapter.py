"""The Google adapter against the stand-in (tests/standins/google.py) over TLS: tokens (cached, refreshed,
rotated, revoked), sync tokens (paging, 410), etag preconditions, rate limits, idempotent creates, series,
calendars and watch channels."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta

import httpx
import icalendar
import pytest

from bridge.adapters import ca_bundle, tls_context
from bridge.adapters.base import AuthExpired, PreconditionFailed, RateLimited, RemoteNotFound, TokenInvalid, Window
from bridge.adapters.google import QUIRKS, GoogleAdapter, Quirks
from tests.standins import tls
from tests.standins.google import RunningGoogle, google_standin

WINDOW = Window(datetime(2026, 11, 1, tzinfo=UTC), datetime(2027, 6, 1, tzinfo=UTC))
KEY = "cb1v" + "0123456789abcdef" * 4


_MADE: list[GoogleAdapter] = []


@pytest.fixture(scope="module")
def google() -> Iterator[RunningGoogle]:
    with google_standin() as running:
        yield running
        for adapter in _MADE:  # their token sessions' idle connections would hold up the server's shutdown
            adapter.close()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(verify=tls_context(tls.ca_file()), timeout=10) as made:
        yield made


class Saved:
    def __init__(self) -> None:
        self.calls: list[dict[str, str]] = []

    def __call__(self, credentials: Mapping[str, str]) -> None:
        self.calls.append(dict(credentials))


def make(google: RunningGoogle, client: httpx.Client, calendar_id: str | None = None, *,
         credentials: dict[str, str] | None = None, saved: Saved | None = None,
         quirks: Quirks = QUIRKS) -> GoogleAdapter:
    _MADE.append(GoogleAdapter(client, calendar_id or google.standin.new_calendar(),
                               credentials or google.credentials(), api_url=google.api_root, save_credentials=saved,
                               ca_bundle=ca_bundle(tls.ca_file()), quirks=quirks))
    return _MADE[-1]


def single(uid: str, start: datetime, summary: str = "Termin") -> icalendar.Calendar:
    fmt = "%Y%m%dT%H%M%SZ"
    return icalendar.Calendar.from_ical(
        f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:t\r\nBEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20261124T080000Z\r\n"
        f"DTSTART:{start.strftime(fmt)}\r\nDTEND:{(start + timedelta(hours=1)).strftime(fmt)}\r\n"
        f"SUMMARY:{summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")


SERIES = icalendar.Calendar.from_ical("""BEGIN:VCALENDAR\r
VERSION:2.0\r
PRODID:t\r
BEGIN:VEVENT\r
UID:series@here\r
DTSTAMP:20261124T080000Z\r
DTSTART;TZID=Europe/Berlin:20261207T090000\r
DTEND;TZID=Europe/Berlin:20261207T093000\r
RRULE:FREQ=WEEKLY;COUNT=4\r
SUMMARY:Stand-up\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:series@here\r
DTSTAMP:20261124T080000Z\r
RECURRENCE-ID;TZID=Europe/Berlin:20261214T090000\r
DTSTART;TZID=Europe/Berlin:20261216T140000\r
DTEND;TZID=Europe/Berlin:20261216T143000\r
SUMMARY:Stand-up (verlegt)\r
END:VEVENT\r
BEGIN:VEVENT\r
UID:series@here\r
DTSTAMP:20261124T080000Z\r
RECURRENCE-ID;TZID=Europe/Berlin:20261221T090000\r
DTSTART;TZID=Europe/Berlin:20261221T090000\r
DTEND;TZID=Europe/Berlin:20261221T093000\r
STATUS:CANCELLED\r
SUMMARY:Stand-up\r
END:VEVENT\r
END:VCALENDAR\r
""")


# -- tokens -----------------------------------------------------------------------------------------------

def test_a_cached_valid_access_token_makes_no_token_request(google: RunningGoogle, client: httpx.Client) -> None:
    adapter = make(google, client)
    state = adapter.fetch(None, WINDOW).state
    before = google.standin.token_requests
    adapter = make(google, client, adapter._calendar_id)
    delta = adapter.fetch(state, WINDOW)
    assert delta.changed == [] and adapter.requests_made == 1
    assert google.standin.token_requests == before


def test_an_expired_token_is_refreshed_and_saved(google: RunningGoogle, client: httpx.Client) -> None:
    credentials = google.credentials(lifetime=timedelta(seconds=-10))
    saved = Saved()
    adapter = make(google, client, credentials=credentials, saved=saved)
    adapter.fetch(None, WINDOW)
    assert adapter.requests_made == 2  # the token request, then the listing
    (new,) = saved.calls
    assert new["access_token"] != credentials["access_token"]
    assert new["refresh_token"] == credentials["refresh_token"]
    assert datetime.fromisoformat(new["expiry"]) > datetime.now(UTC) + timedelta(minutes=50)
    assert {k: new[k] for k in ("client_id", "client_secret", "token_uri")} == {
        k: credentials[k] for k in ("client_id", "client_secret", "token_uri")}


def test_a_rotated_refresh_token_is_saved_and_the_old_one_refused(google: RunningGoogle,
                                                                   client: httpx.Client) -> None:
    credentials = google.credentials(lifetime=timedelta(seconds=-10))
    saved = Saved()
    google.standin.rotate_refresh_tokens = True
    try:
        make(google, client, credentials=credentials, saved=saved).fetch(None, WINDOW)
    finally:
        google.standin.rotate_refresh_tokens = False
    (new,) = saved.calls
    assert new["refresh_token"] != credentials["refresh_token"]
    with pytest.raises(AuthExpired):
        make(google, client, credentials=credentials).fetch(None, WINDOW)
    make(google, client, credentials={**new, "expiry": "2000-01-01T00:00:00+00:00"}).fetch(None, WINDOW)


def test_a_revoked_refresh_token_is_auth_expired(google: RunningGoogle, client: httpx.Client) -> None:
    credentials = google.credentials(lifetime=timedelta(seconds=-10))
    google.standin.revoke(credentials["refresh_token"])
    saved = Saved()
    with pytest.raises(AuthExpired) as raised:
        make(google, client, credentials=credentials, saved=saved).fetch(None, WINDOW)
    assert credentials["refresh_token"] not in str(raised.value) and saved.calls == []


def test_a_401_refreshes_once_and_retries(google: RunningGoogle, client: httpx.Client) -> None:
    credentials = google.credentials()
    google.standin.revoke(credentials["access_token"])  # valid by its expiry, refused by the API
    saved = Saved()
    adapter = make(google, client, credentials=credentials, saved=saved)
    adapter.fetch(None, WINDOW)
    assert adapter.requests_made == 3 and len(saved.calls) == 1


# -- sync tokens --------------------------------------------------------------------------------------------

def test_paging_then_incremental_then_410(google: RunningGoogle, client: httpx.Client) -> None:
    adapter = make(google, client, quirks=Quirks(page_size=2))
    for n in range(5):
        adapter.create(single(f"e{n}@here", datetime(2026, 12, 1 + n, 9, tzinfo=UTC)), f"{KEY}{n}")
    full = make(google, client, adapter._calendar_id, quirks=Quirks(page_size=2))
    delta = full.fetch(None, WINDOW)
    assert delta.complete and len(delta.changed) == 5 and full.requests_made == 3
    assert {e.key for e in delta.changed} == {f"{KEY}{n}" for n in range(5)}

    gone = delta.changed[0]
    adapter.delete(gone.remote_id, gone.etag)
    later = full.fetch(delta.state, WINDOW)
    assert later.deleted == [gone.remote_id] and later.changed == [] and not later.complete

    google.standin.expire_sync_tokens(adapter._calendar_id)
    with pytest.raises(TokenInvalid):
        full.fetch(later.state, WINDOW)
    assert len(full.fetch(None, WINDOW).changed) == 4


def test_an_event_outside_the_window_is_not_in_a_full_fetch(google: RunningGoogle, client: httpx.Client) -> None:
    adapter = make(google, client)
    adapter.create(single("in@here", datetime(2026, 12, 1, 9, tzinfo=UTC)), KEY + "1")
    adapter.create(single("out@here", datetime(2027, 8, 1, 9, tzinfo=UTC)), KEY + "2")
    assert [str(e.calendar.walk("VEVENT")[0]["UID"]) for e in adapter.fetch(None, WINDOW).changed] == ["in@here"]


# -- writes --------------------------------------------------------------------------------------------

def test_an_update_with_a_stale_etag_is_precondition_failed(google: RunningGoogle, client: httpx.Client) -> None:
    adapter = make(google, client)
    created = adapter.create(single("e@here", datetime(2026, 12, 1, 9, tzinfo=UTC)), KEY)
    updated = adapter.update(created.remote_id, created.etag, single("e@here", datetime(2026, 12, 1, 10, tzinfo=UTC)))
    assert updated.etag != created.etag
    with pytest.raises(PreconditionFailed):
        adapter.update(created.remote_id, created.etag, single("e@here", datetime(2026, 12, 1, 11, tzinfo=UTC)))
    with pytest.raises(PreconditionFailed):
        adapter.delete(created.remote_id, created.etag)
    adapter.delete(created.remote_id, updated.etag)
    adapter.delete(created.remote_id, updated.etag)  # gone already (410) is fine
    with pytest.raises(RemoteNotFound):
        adapter.update("nosuchevent", '"1"', single("e@here", datetime(2026, 12, 1, 9, tzinfo=UTC)))


def test_a_create_retried_returns_the_first_attempt_and_a_deleted_one_comes_back(
        google: RunningGoogle, client: httpx.Client) -> None:
    adapter = make(google, client)
    event = single("e@here", datetime(2026, 12, 1, 9, tzinfo=UTC))
    first = adapter.create(event, KEY)
    again = adapter.create(event, KEY)
    assert (again.remote_id, again.etag, again.key) == (first.remote_id, first.etag, KEY)
    adapter.delete(first.remote_id, first.etag)
    restored = adapter.create(event, KEY)  # Google keeps a deleted id: the create restores it
    assert restored.remote_id == first.remote_id
    live = [r for r in google.standin.events_of(adapter._calendar_id) if r.get("status") != "cancelled"]
    assert [r["id"] for r in live] == [KEY]


def test_a_series_is_written_whole_and_read_back_with_the_same_etag(google: RunningGoogle,
                                                                     client: httpx.Client) -> None:
    adapter = make(google, client)
    state = adapter.fetch(None, WINDOW).state
    created = adapter.create(SERIES, KEY)
    delta = adapter.fetch(state, WINDOW)
    (read,) = delta.changed
    assert (read.remote_id, read.etag) == (created.remote_id, created.etag)
    events = read.calendar.walk("VEVENT")
    master = next(e for e in events if "RECURRENCE-ID" not in e)
    assert "RRULE" in master and len(events) == 2
    assert [d.dt.isoformat() for value in [master["EXDATE"]] for d in value.dts] == ["2026-12-21T09:00:00+01:00"]
    assert adapter.requests_made == 1 + 4 + 2  # list; insert, instance put, instance delete, read back; sync + series

    moved = icalendar.Calendar.from_ical(SERIES.to_ical().replace(b"Stand-up (verlegt)", b"Stand-up (Raum 2)"))
    updated = adapter.update(created.remote_id, created.etag, moved)
    assert updated.etag != created.etag
    (again,) = adapter.fetch(delta.state, WINDOW).changed
    assert again.etag == updated.etag
    assert "Stand-up (Raum 2)" in again.calendar.to_ical().decode()
    with pytest.raises(PreconditionFailed):
        adapter.update(created.remote_id, created.etag, moved)


# -- faults, calendars, channels -------------------------------------------------------------------------

def test_429_with_retry_after_is_rate_limited(google: RunningGoogle, client: httpx.Client) -> None:
    adapter = make(google, client)
    google.standin.fail_next(1, 429, retry_after=2)
    with pytest.raises(RateLimited) as raised:
        adapter.fetch(None, WINDOW)
    assert raised.value.retry_after == 2
    google.standin.fail_next(1, 403, reason="userRateLimitExceeded")
    with pytest.raises(RateLimited) as raised:
        adapter.fetch(None, WINDOW)
    assert raised.value.retry_after == 30
    assert adapter.fetch(None, WINDOW).complete  # the provider answers again


def test_calendars_are_listed_with_their_access(google: RunningGoogle, client: httpx.Client) -> None:
    mine = google.standin.new_calendar("Privat", user="reader@example.com")
    shared = google.standin.new_calendar("Team", user="boss@example.com")
    google.standin.share(shared, "reader@example.com", "reader")
    adapter = make(google, client, mine, credentials=google.credentials(user="reader@example.com"))
    found = {c.id: c for c in adapter.list_calendars()}
    assert set(found) == {mine, shared}
    assert (found[mine].name, found[mine].read_only, found[mine].timezone) == ("Privat", False, "Europe/Berlin")
    assert found[shared].read_only


def test_watch_and_unwatch(google: RunningGoogle, client: httpx.Client) -> None:
    adapter = make(google, client)
    channel = adapter.watch("https://bridge.example/hooks/google", "secret-token")
    assert channel.expires_at > datetime.now(UTC) + timedelta(days=6)
    assert google.standin.channels[channel.id] == channel.resource_id
    adapter.unwatch(channel)
    adapter.unwatch(channel)  # unknown by now: fine
    assert channel.id not in google.standin.channels


def test_a_state_saved_as_json_names_the_sync_token(google: RunningGoogle, client: httpx.Client) -> None:
    adapter = make(google, client)
    state = adapter.fetch(None, WINDOW).state
    assert state is not None and set(json.loads(state)) == {"v", "t"}
    google.standin.expire_all_sync_tokens()
    with pytest.raises(TokenInvalid):
        adapter.fetch(state, WINDOW)


def test_a_full_fetch_reads_a_series_whole_when_an_instance_moved_out_of_the_window(
        google: RunningGoogle, client: httpx.Client) -> None:
    edge = SERIES.to_ical().decode()
    for old, new in (("20261207T090000", "20270517T090000"), ("20261207T093000", "20270517T093000"),
                     ("20261214T090000", "20270531T090000"), ("20261216T140000", "20270602T140000"),
                     ("20261216T143000", "20270602T143000"), ("20261221T090000", "20270524T090000"),
                     ("20261221T093000", "20270524T093000")):
        edge = edge.replace(old, new)
    adapter = make(google, client)
    created = adapter.create(icalendar.Calendar.from_ical(edge), KEY)  # the 31 May instance moved to 2 June
    full = make(google, client, adapter._calendar_id)
    (read,) = full.fetch(None, WINDOW).changed
    assert read.etag == created.etag and full.requests_made == 2
    overrides = [e for e in read.calendar.walk("VEVENT") if "RECURRENCE-ID" in e]
    assert [e.decoded("DTSTART").date().isoformat() for e in overrides] == ["2027-06-02"]
