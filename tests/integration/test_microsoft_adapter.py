"""The Graph adapter against the stand-in over TLS: resync, preconditions, throttling, token renewal and
rotation, idempotent creates."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import icalendar
import pytest

from bridge.adapters.base import AuthExpired, PreconditionFailed, RateLimited, TokenInvalid, Window
from bridge.adapters.microsoft import MicrosoftAdapter
from tests.scenarios.microsoft_driver import MicrosoftDriver, MicrosoftProvider, microsoft_provider
from tests.scenarios.world import single
from tests.standins import tls

WINDOW = Window(datetime(2026, 10, 25, tzinfo=UTC), datetime(2028, 5, 17, tzinfo=UTC))
AT = datetime(2026, 12, 7, 9, tzinfo=UTC)


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MicrosoftProvider]:
    with microsoft_provider(Path(tmp_path_factory.mktemp("graph"))) as running:
        yield running


@pytest.fixture
def driver(provider: MicrosoftProvider) -> Iterator[MicrosoftDriver]:
    with provider.new_driver() as fresh:
        yield fresh


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(verify=tls.client_context(), timeout=30) as client:
        yield client


class Saved(list[dict[str, str]]):
    def __call__(self, credentials: Any) -> None:
        self.append(dict(credentials))


def make(driver: MicrosoftDriver, http: httpx.Client, saved: Saved | None = None,
         **changes: str) -> MicrosoftAdapter:
    account = driver.account()
    return MicrosoftAdapter(http, {**account.credentials, **changes}, account.remote_calendar,
                            graph_url=account.server_url, save_credentials=saved, verify=tls.ca_file())


def ical(uid: str, start: datetime = AT, summary: str = "Termin") -> icalendar.Calendar:
    return icalendar.Calendar.from_ical(single(uid, start, summary=summary))


def test_an_expired_delta_token_is_token_invalid_and_the_full_fetch_has_no_duplicates(
        driver: MicrosoftDriver, http: httpx.Client) -> None:
    driver.create("a@phone", single("a@phone", AT))
    driver.create("b@phone", single("b@phone", AT + timedelta(days=1)))
    adapter = make(driver, http)
    first = adapter.fetch(None, WINDOW)
    assert first.complete and len(first.changed) == 2
    driver.standin.expire_delta_tokens()
    with pytest.raises(TokenInvalid):
        adapter.fetch(first.state, WINDOW)
    again = adapter.fetch(None, WINDOW)
    assert sorted(e.remote_id for e in again.changed) == sorted(e.remote_id for e in first.changed)
    assert sorted(str(e.calendar.walk("VEVENT")[0]["UID"]) for e in again.changed) == ["a@phone", "b@phone"]
    quiet = adapter.fetch(again.state, WINDOW)
    assert (quiet.changed, quiet.deleted) == ([], [])


def test_a_stale_etag_is_precondition_failed(driver: MicrosoftDriver, http: httpx.Client) -> None:
    adapter = make(driver, http)
    created = adapter.create(ical("mine@bridge"), "cb1vkey")
    driver.update(created.remote_id, single("mine@bridge", AT + timedelta(hours=2)))
    with pytest.raises(PreconditionFailed):
        adapter.update(created.remote_id, created.etag, ical("mine@bridge", summary="neu"))
    with pytest.raises(PreconditionFailed):
        adapter.delete(created.remote_id, created.etag)


def test_throttling_carries_the_retry_after(driver: MicrosoftDriver, http: httpx.Client) -> None:
    adapter = make(driver, http)
    driver.standin.fail_next(1, 429, "2")
    with pytest.raises(RateLimited) as raised:
        adapter.fetch(None, WINDOW)
    assert raised.value.retry_after == 2.0


def test_a_revoked_refresh_token_is_auth_expired(driver: MicrosoftDriver, http: httpx.Client) -> None:
    adapter = make(driver, http, expires_at="2020-01-01T00:00:00Z")
    driver.standin.revoke_refresh_tokens()
    with pytest.raises(AuthExpired):
        adapter.fetch(None, WINDOW)


def test_a_refresh_rotates_and_saves_the_token_and_a_reused_one_is_auth_expired(
        driver: MicrosoftDriver, http: httpx.Client) -> None:
    saved = Saved()
    account = driver.account()
    old = account.credentials["refresh_token"]
    adapter = make(driver, http, saved, expires_at="2020-01-01T00:00:00Z", refresh_token=old)
    before = driver.standin.token_requests
    adapter.fetch(None, WINDOW)
    assert driver.standin.token_requests == before + 1
    (fresh,) = saved
    assert fresh["refresh_token"] != old and driver.standin.refresh_token_valid(fresh["refresh_token"])
    assert not driver.standin.refresh_token_valid(old)
    assert fresh["access_token"] != account.credentials["access_token"]
    reused = make(driver, http, expires_at="2020-01-01T00:00:00Z", refresh_token=old)
    with pytest.raises(AuthExpired):
        reused.fetch(None, WINDOW)


def test_a_401_renews_once_and_then_succeeds(driver: MicrosoftDriver, http: httpx.Client) -> None:
    saved = Saved()
    adapter = make(driver, http, saved)
    driver.standin.expire_access_tokens()
    assert adapter.fetch(None, WINDOW).complete
    assert len(saved) == 1


def test_a_valid_cached_access_token_makes_no_token_request(driver: MicrosoftDriver, http: httpx.Client) -> None:
    adapter = make(driver, http)
    before = driver.standin.token_requests
    state = adapter.fetch(None, WINDOW).state
    used = adapter.requests_made
    adapter.fetch(state, WINDOW)
    assert adapter.requests_made == used + 1  # a quiet cycle: the delta call only
    assert driver.standin.token_requests == before


def test_a_repeated_create_returns_the_first_event(driver: MicrosoftDriver, http: httpx.Client) -> None:
    adapter = make(driver, http)
    first = adapter.create(ical("mine@bridge"), "cb1vabc")
    retry = make(driver, http).create(ical("mine@bridge"), "cb1vabc")
    assert retry.remote_id == first.remote_id
    assert list(driver.events()) == [first.remote_id]
    fetched = make(driver, http).fetch(None, WINDOW)  # a later adapter recovers the key and the UID
    (event,) = fetched.changed
    assert (event.key, str(event.calendar.walk("VEVENT")[0]["UID"])) == ("cb1vabc", "mine@bridge")


def test_watch_and_unwatch_a_calendar(driver: MicrosoftDriver, http: httpx.Client) -> None:
    driver.standin.validate_subscriptions = False
    try:
        adapter = make(driver, http)
        channel = adapter.watch("https://hooks.example/graph", "secret-state")
        assert channel.resource_id.endswith("/events")
        assert timedelta(days=2) < channel.expires_at - datetime.now(UTC) <= timedelta(minutes=4230)
        (subscription,) = [s for s in driver.standin.subscriptions() if s["id"] == channel.id]
        assert subscription["clientState"] == "secret-state"
        adapter.unwatch(channel)
        adapter.unwatch(channel)  # gone already is fine
    finally:
        driver.standin.validate_subscriptions = True


SERIES = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//bridge//EN\r\nBEGIN:VEVENT\r\nUID:weekly@bridge\r\n"
          "DTSTAMP:20261124T080000Z\r\nDTSTART:20261207T090000Z\r\nDTEND:20261207T093000Z\r\n"
          "RRULE:FREQ=WEEKLY;COUNT=4\r\nSUMMARY:Sprechstunde\r\nEND:VEVENT\r\n{override}END:VCALENDAR\r\n")
MOVED = ("BEGIN:VEVENT\r\nUID:weekly@bridge\r\nDTSTAMP:20261124T080000Z\r\nRECURRENCE-ID:20261214T090000Z\r\n"
         "DTSTART:20261214T140000Z\r\nDTEND:20261214T143000Z\r\nSUMMARY:Sprechstunde\r\nEND:VEVENT\r\n")


def instance_times(driver: MicrosoftDriver, remote_id: str) -> list[tuple[datetime, datetime]]:
    """When each instance of the series takes place in Outlook, as the stand-in holds it."""
    (series,) = [c for handle, c in driver.events().items() if handle == remote_id]
    head = next(e for e in series.walk("VEVENT") if "RECURRENCE-ID" not in e)
    moved = {e.decoded("RECURRENCE-ID"): (e.decoded("DTSTART"), e.decoded("DTEND")) for e in series.walk("VEVENT")
             if "RECURRENCE-ID" in e}
    start, length = head.decoded("DTSTART"), head.decoded("DTEND") - head.decoded("DTSTART")
    regular = [start + timedelta(weeks=n) for n in range(4)]
    return [moved.get(at, (at, at + length)) for at in regular]


def test_an_override_dropped_here_puts_the_instance_back_in_outlook(driver: MicrosoftDriver,
                                                                    http: httpx.Client) -> None:
    adapter = make(driver, http)
    created = adapter.create(icalendar.Calendar.from_ical(SERIES.format(override=MOVED)), "cb1vseries")
    second = datetime(2026, 12, 14, 9, tzinfo=UTC)
    assert instance_times(driver, created.remote_id)[1] == (second.replace(hour=14), second.replace(hour=14, minute=30))

    updated = adapter.update(created.remote_id, created.etag, icalendar.Calendar.from_ical(SERIES.format(override="")))

    assert instance_times(driver, created.remote_id)[1] == (second, second.replace(minute=30))
    (read,) = adapter.fetch(None, WINDOW).changed
    assert read.etag == updated.etag  # what the update answered is what a fetch sees: no echo next run
    assert [e.decoded("DTSTART") for e in read.calendar.walk("VEVENT") if "RECURRENCE-ID" in e] in ([], [second])
