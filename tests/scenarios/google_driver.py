"""The scenario driver for Google Calendar: the stand-in (tests/standins/google.py), changed through its REST
API the way Google's own apps change a calendar, never through the bridge's adapter.

Google's apps keep a series as a master with ``recurrence`` and its instances: moving one instance updates
that instance (``<master id>_<UTC start>``), cancelling one deletes it. The driver does the same with the
scenario's iCalendar text, and reads events back the other way round (a cancelled instance as an override
with STATUS:CANCELLED), with a small converter of its own, so that the adapter's is checked against it.
"""

from __future__ import annotations

import json
import zoneinfo
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import icalendar

from bridge.adapters import Account
from tests.standins import tls
from tests.standins.google import RunningGoogle, google_standin


def _time(value: date | datetime) -> dict[str, str]:
    if not isinstance(value, datetime):
        return {"date": value.isoformat()}
    zone = getattr(value.tzinfo, "key", None)
    if zone:
        return {"dateTime": value.replace(tzinfo=None).isoformat(), "timeZone": zone}
    return {"dateTime": value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}


def _stamp(value: date | datetime) -> str:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    return value.strftime("%Y%m%d")


def _body(event: icalendar.Event) -> dict[str, Any]:
    """What Google's web app sends for one VEVENT: title, times, recurrence lines."""
    start = event.decoded("DTSTART")
    end = event.decoded("DTEND") if "DTEND" in event else start + event.decoded("DURATION", timedelta(0))
    body: dict[str, Any] = {"summary": str(event.get("SUMMARY", "")), "start": _time(start), "end": _time(end)}
    lines = []
    for name in ("RRULE", "RDATE", "EXDATE"):
        values = event.get(name)
        for value in values if isinstance(values, list) else ([values] if values is not None else []):
            lines.append(event.content_line(name, value).strip())
    if lines:
        body["recurrence"] = lines
        for key in ("start", "end"):  # a series needs its zone
            body[key].setdefault("timeZone", "UTC")
    return body


def _parse(value: dict[str, str]) -> date | datetime:
    if "date" in value:
        return date.fromisoformat(value["date"])
    moment = datetime.fromisoformat(value["dateTime"])
    zone = zoneinfo.ZoneInfo(value["timeZone"]) if value.get("timeZone") else UTC
    return moment.astimezone(zone) if moment.tzinfo is not None else moment.replace(tzinfo=zone)


def _vevent(resource: dict[str, Any]) -> icalendar.Event:
    event = icalendar.Event()
    event.add("UID", resource["iCalUID"])
    event.add("DTSTAMP", datetime(2026, 11, 24, 8, 0, tzinfo=UTC))
    if resource.get("status") != "cancelled" or not resource.get("recurringEventId"):
        event.add("DTSTART", _parse(resource["start"]))
        event.add("DTEND", _parse(resource["end"]))
    if resource.get("summary"):
        event.add("SUMMARY", resource["summary"])
    return event


@dataclass
class GoogleDriver:
    """One fresh calendar of the stand-in, written with a phone's own grant."""

    running: RunningGoogle
    calendar_id: str
    client: httpx.Client = field(repr=False)
    name: str = "google"
    write_methods: tuple[str, ...] = ("POST", "PUT", "PATCH", "DELETE")  # events.insert is a POST

    @property
    def origin(self) -> str:
        return self.running.origin

    def account(self, via: str | None = None) -> Account:
        api_root = (via + "/calendar/v3") if via else self.running.api_root
        return Account("google", api_root, self.calendar_id, self.running.credentials(via=via),
                       ca_file=tls.ca_file())

    def _events(self, suffix: str = "") -> str:
        return f"/calendar/v3/calendars/{quote(self.calendar_id, safe='')}/events{suffix}"

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = self.client.request(method, path, **kwargs)
        assert response.status_code < 300, (method, path, response.status_code, response.text)
        return response

    def _write_series(self, master_id: str, overrides: list[icalendar.Event]) -> None:
        for override in overrides:
            path = self._events(f"/{master_id}_{_stamp(override.decoded('RECURRENCE-ID'))}")
            current = self._send("GET", path).json()
            if str(override.get("STATUS", "")).upper() == "CANCELLED":
                if current.get("status") != "cancelled":  # cancelled already: nothing to do
                    self._send("DELETE", path)
            else:
                self._send("PUT", path, json=_body(override), headers={"If-Match": current["etag"]})

    def create(self, uid: str, ical_text: str) -> str:
        calendar = icalendar.Calendar.from_ical(ical_text)
        events = calendar.walk("VEVENT")
        master = next(e for e in events if "RECURRENCE-ID" not in e)
        created = self._send("POST", self._events(), json={**_body(master), "iCalUID": uid}).json()
        self._write_series(created["id"], [e for e in events if "RECURRENCE-ID" in e])
        return str(created["id"])

    def create_many(self, events: Iterable[tuple[str, str]]) -> list[str]:
        return [self.create(uid, text) for uid, text in events]

    def update(self, handle: str, ical_text: str) -> None:
        calendar = icalendar.Calendar.from_ical(ical_text)
        events = calendar.walk("VEVENT")
        master = next(e for e in events if "RECURRENCE-ID" not in e)
        current = self._send("GET", self._events(f"/{handle}")).json()
        self._send("PUT", self._events(f"/{handle}"), json=_body(master), headers={"If-Match": current["etag"]})
        self._write_series(handle, [e for e in events if "RECURRENCE-ID" in e])

    def delete(self, handle: str) -> None:
        current = self._send("GET", self._events(f"/{handle}")).json()
        self._send("DELETE", self._events(f"/{handle}"), headers={"If-Match": current["etag"]})

    def events(self) -> dict[str, icalendar.Calendar]:
        resources: list[dict[str, Any]] = []
        page: str | None = None
        while True:
            params = {"maxResults": "100", **({"pageToken": page} if page else {})}
            data = self._send("GET", self._events(), params=params).json()
            resources.extend(data["items"])
            page = data.get("nextPageToken")
            if not page:
                break
        found: dict[str, icalendar.Calendar] = {}
        for resource in sorted(resources, key=lambda r: bool(r.get("recurringEventId"))):
            master_id = resource.get("recurringEventId") or resource["id"]
            if resource.get("recurringEventId") and master_id not in found:
                continue  # an instance of a deleted series
            if master_id not in found:
                calendar = icalendar.Calendar()
                calendar.add("PRODID", "-//Google Inc//Google Calendar 70.9054//EN")
                calendar.add("VERSION", "2.0")
                found[master_id] = calendar
            event = _vevent(resource)
            for line in resource.get("recurrence") or []:
                parsed = icalendar.Event.from_ical(f"BEGIN:VEVENT\r\n{line}\r\nEND:VEVENT\r\n")
                for name, value in parsed.items():
                    for one in value if isinstance(value, list) else [value]:
                        event.add(name, one)
            if resource.get("recurringEventId"):
                event.add("RECURRENCE-ID", _parse(resource["originalStartTime"]))
                if resource.get("status") == "cancelled":
                    event.add("STATUS", "CANCELLED")
                    event.add("DTSTART", _parse(resource["originalStartTime"]))
            found[master_id].add_component(event)
        return found

    def expire_token(self, state: str) -> str:
        """The stand-in forgets every sync token of the calendar; the state stays as it was."""
        assert json.loads(state).get("t"), "a Google state without a sync token has nothing to expire"
        self.running.standin.expire_sync_tokens(self.calendar_id)
        return state


@dataclass
class GoogleProvider:
    running: RunningGoogle
    name: str = "google"

    @contextmanager
    def new_driver(self) -> Iterator[GoogleDriver]:
        calendar_id = self.running.standin.new_calendar()
        phone = self.running.standin.issue_tokens()
        with httpx.Client(base_url=self.running.origin, verify=tls.client_context(), timeout=30,
                          headers={"Authorization": f"Bearer {phone['access_token']}"}) as client:
            yield GoogleDriver(self.running, calendar_id, client)


@contextmanager
def google_provider(directory: Path) -> Iterator[GoogleProvider]:
    """The stand-in for a test session (``directory`` is unused: it keeps its state in memory)."""
    with google_standin() as running:
        yield GoogleProvider(running)
