"""A read-only iCalendar feed (an ``.ics`` URL, ``webcal://`` included).

A feed has no per-event versions and no change log, so every fetch that downloads the
feed returns a complete Delta: the engine treats mapped events missing from it as
deleted. The state (compact JSON: ETag, Last-Modified and a hash of the body) makes the
next GET conditional; 304, or a body identical to the last one, is an empty incremental
delta after exactly one request.

Events are grouped by UID into one object resource (master and overrides with the
VTIMEZONEs they use): remote_id is the UID, the etag a hash of the resource's text, so an
unchanged event keeps its etag from one download to the next. Only resources with a
component overlapping the window are returned; a recurring series counts with its whole
span (to UNTIL, a COUNT bound, or open-ended), which may keep a little too much but never
drops an occurrence in the window.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar

import httpx
import icalendar

from bridge.adapters.base import (
    Delta,
    Permanent,
    RateLimited,
    RemoteCalendar,
    RemoteEvent,
    TokenInvalid,
    Window,
    retry_after_seconds,
)
from bridge.adapters.http import status_error, transport_error
from bridge.ical.zones import parse_calendar

_DEFAULT_RETRY_AFTER = 60.0
_SLACK = timedelta(days=1)  # dates and floating times have no zone yet: widen the window
_PERIOD = {"SECONDLY": timedelta(seconds=1), "MINUTELY": timedelta(minutes=1), "HOURLY": timedelta(hours=1),
           "DAILY": timedelta(days=1), "WEEKLY": timedelta(weeks=1), "MONTHLY": timedelta(days=31),
           "YEARLY": timedelta(days=366)}
_EXPANDING_PARTS = {"BYSECOND", "BYMINUTE", "BYHOUR", "BYDAY", "BYMONTHDAY", "BYYEARDAY", "BYWEEKNO",
                    "BYMONTH", "BYSETPOS"}


class _Refused(Exception):
    """An HTTP answer the caller did not accept; ``_map_errors`` translates it."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(response.status_code)
        self.response = response


@contextmanager
def _map_errors(what: str) -> Iterator[None]:
    """The one place where httpx failures and HTTP statuses become the base error tree.
    Messages hold the operation and status only, never the URL (a feed URL is a secret)."""
    try:
        yield
    except _Refused as refused:
        response = refused.response
        status = response.status_code
        message = f"{what}: HTTP {status}"
        if status in (429, 503):
            retry_after = retry_after_seconds(response.headers.get("Retry-After"))
            if retry_after is not None:
                raise RateLimited(message, retry_after) from None
            if status == 429:
                raise RateLimited(message, _DEFAULT_RETRY_AFTER) from None
        raise status_error(message, status, auth=(401, 403)) from None
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise transport_error(what, exc) from None



class IcsFeedAdapter:
    """One subscribed feed; it is its own (only) calendar. The injected client belongs to
    the caller, who closes it."""

    provider: ClassVar[str] = "ics"
    read_only: ClassVar[bool] = True

    def __init__(self, client: httpx.Client, url: str, *, auth: httpx.Auth | None = None) -> None:
        self._client = client
        self._url = "https://" + url[len("webcal://"):] if url.lower().startswith("webcal://") else url
        self._auth = auth
        self._requests = 0

    @property
    def requests_made(self) -> int:
        return self._requests

    def close(self) -> None:
        """Nothing to release: the injected client is closed by whoever built it."""

    def _get(self, headers: dict[str, str], what: str) -> httpx.Response:
        with _map_errors(what):
            response: httpx.Response | None = None
            try:
                response = self._client.get(self._url, headers=headers, follow_redirects=True,
                                            auth=self._auth if self._auth is not None else httpx.USE_CLIENT_DEFAULT)
            finally:
                self._requests += 1 + (len(response.history) if response is not None else 0)
            if response.status_code >= 300 and response.status_code != 304:
                raise _Refused(response)
        return response

    def list_calendars(self) -> list[RemoteCalendar]:
        feed = _parse(self._get({}, "read the feed").content)
        name = str(feed.get("X-WR-CALNAME", "")) or self._url.rsplit("/", 1)[-1] or self._url
        zone = feed.get("X-WR-TIMEZONE")
        return [RemoteCalendar(id=self._url, name=name, timezone=str(zone) if zone else None, read_only=True)]

    def fetch(self, state: str | None, window: Window) -> Delta:
        saved = _decode(state) if state is not None else {}
        headers = {}
        if saved.get("e"):
            headers["If-None-Match"] = saved["e"]
        if saved.get("m"):
            headers["If-Modified-Since"] = saved["m"]
        response = self._get(headers, "read the feed")
        if response.status_code == 304 and state is not None:
            return Delta(changed=[], deleted=[], state=state, complete=False)
        if response.status_code == 304:
            raise Permanent("read the feed: 304 to an unconditional request")
        body_hash = hashlib.sha256(response.content).hexdigest()
        new_state = json.dumps({"e": response.headers.get("ETag"), "m": response.headers.get("Last-Modified"),
                                "h": body_hash}, separators=(",", ":"), sort_keys=True)
        if state is not None and saved.get("h") == body_hash:
            return Delta(changed=[], deleted=[], state=new_state, complete=False)
        events = [event for event in _resources(_parse(response.content)) if _in_window(event.calendar, window)]
        return Delta(changed=events, deleted=[], state=new_state, complete=True)

    def create(self, event: icalendar.Calendar, key: str) -> RemoteEvent:
        raise Permanent("an ICS feed is read-only")

    def update(self, remote_id: str, etag: str, event: icalendar.Calendar) -> RemoteEvent:
        raise Permanent("an ICS feed is read-only")

    def delete(self, remote_id: str, etag: str | None) -> None:
        raise Permanent("an ICS feed is read-only")


def _decode(state: str) -> dict[str, str]:
    try:
        data = json.loads(state)
    except ValueError:
        raise TokenInvalid("the saved feed state is not readable") from None
    if not isinstance(data, dict) or not isinstance(data.get("h"), str):
        raise TokenInvalid("the saved feed state has an unknown format")
    return {key: value for key, value in data.items() if isinstance(value, str)}


def _parse(body: bytes) -> icalendar.Calendar:
    try:
        feed = parse_calendar(body)
    except ValueError:
        raise Permanent("read the feed: not iCalendar") from None
    if not isinstance(feed, icalendar.Calendar):
        raise Permanent("read the feed: not a VCALENDAR")
    return feed


def _resources(feed: icalendar.Calendar) -> list[RemoteEvent]:
    """One object resource per UID: its VEVENTs and the VTIMEZONEs they name."""
    zones = {str(zone.get("TZID")): zone for zone in feed.walk("VTIMEZONE")}
    groups: dict[str, list[icalendar.Event]] = {}
    for event in feed.walk("VEVENT"):
        uid = event.get("UID")
        key = str(uid) if uid else "sha256-" + hashlib.sha256(event.to_ical()).hexdigest()[:32]
        groups.setdefault(key, []).append(event)
    resources = []
    for uid, events in groups.items():
        calendar = icalendar.Calendar()
        calendar.add("VERSION", "2.0")
        calendar.add("PRODID", str(feed.get("PRODID", "-//calbridge//ics feed//EN")))
        for tzid in sorted(set().union(*(_tzids(event) for event in events))):
            if tzid in zones:
                calendar.add_component(zones[tzid])
        for event in events:
            calendar.add_component(event)
        etag = hashlib.sha256(calendar.to_ical()).hexdigest()[:32]
        resources.append(RemoteEvent(remote_id=uid, etag=etag, calendar=calendar))
    return resources


def _tzids(component: icalendar.cal.Component) -> set[str]:
    found = set()
    for part in component.walk():
        for value in part.values():
            for item in value if isinstance(value, list) else [value]:
                tzid = getattr(item, "params", {}).get("TZID")
                if tzid:
                    found.add(str(tzid))
    return found


def _in_window(calendar: icalendar.Calendar, window: Window) -> bool:
    start, end = _utc(window.start), _utc(window.end)
    for event in calendar.walk("VEVENT"):
        try:
            span = _span(event)
        except (KeyError, TypeError, ValueError):  # values too odd to place: keep rather than drop
            span = None
        if span is None:
            return True  # cannot tell: keep rather than drop
        first, last, exact = span
        slack = timedelta(0) if exact else _SLACK
        if first < end + slack and (last is None or last + slack >= start):
            return True
    return False


def _span(event: icalendar.Event) -> tuple[datetime, datetime | None, bool] | None:
    """First start and last end (None: open-ended) in UTC, and whether both are exact."""
    try:
        raw_start = event.decoded("DTSTART")
    except KeyError:
        return None
    exact = _is_aware(raw_start)
    first = _utc(raw_start)
    if "DTEND" in event:
        raw_end = event.decoded("DTEND")
        exact = exact and _is_aware(raw_end)
        duration = _utc(raw_end) - first
    elif "DURATION" in event:
        duration = event.decoded("DURATION")
    else:
        duration = timedelta(days=1) if not isinstance(raw_start, datetime) else timedelta(0)
    last: datetime | None = first + max(duration, timedelta(0))
    for rule in _list(event.get("RRULE")):
        last = _rule_end(rule, first, duration, last)
    for rdates in _list(event.get("RDATE")):
        for rdate in getattr(rdates, "dts", []):
            value = rdate.dt
            if isinstance(value, tuple):  # a PERIOD: (start, end or duration)
                begin, until = value
                value_end = _utc(until) if isinstance(until, date) else _utc(begin) + until
            else:
                value_end = _utc(value) + duration
            exact = exact and _is_aware(value[0] if isinstance(value, tuple) else value)
            last = None if last is None else max(last, value_end)
    return first, last, exact


def _rule_end(rule: Any, first: datetime, duration: timedelta, last: datetime | None) -> datetime | None:
    """The end of a series' last occurrence, an upper bound, or None when open-ended."""
    if last is None:
        return None
    if rule.get("UNTIL"):
        return max(last, _utc(rule["UNTIL"][0]) + max(duration, timedelta(0)))
    if rule.get("COUNT") and not _EXPANDING_PARTS & set(rule):
        period = _PERIOD.get(str(rule.get("FREQ", [""])[0]).upper())
        if period is not None:
            interval = int(rule.get("INTERVAL", [1])[0])
            return max(last, first + (int(rule["COUNT"][0]) - 1) * interval * period + max(duration, timedelta(0)))
    return None


def _list(value: Any) -> list[Any]:
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _is_aware(value: date | datetime) -> bool:
    return isinstance(value, datetime) and value.tzinfo is not None


def _utc(value: date | datetime) -> datetime:
    """Aware UTC; dates and floating times are taken as UTC (the window gets slack for them)."""
    if not isinstance(value, datetime):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)
