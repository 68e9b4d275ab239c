"""The scenario driver for Microsoft Graph: the stand-in (tests/standins/microsoft.py) on loopback TLS, changed
through its REST API the way Outlook changes a mailbox (POST, PATCH and DELETE with the event's own change
key, a series' instances patched or deleted one by one), never through the bridge's adapter.

It has a small iCalendar -> Graph converter of its own (what the scenarios write: UTC or zoned times, weekly
or daily RRULEs with COUNT or UNTIL, EXDATEs, moved and cancelled overrides); zoned times go out under their
Windows names, as Outlook writes them. A UID is given as ``iCalUId`` (the stand-in's stand-in for an event
imported from an .ics file, which keeps its UID in Outlook). ``events()`` reads the stand-in's store
in-process: a series as master (RRULE, EXDATE) plus overrides; the UID of an event the bridge wrote is the one
it keeps in its extended property (Graph's ``iCalUId`` is read-only).

Through a fault proxy (``account(via)``), only Graph goes through the plain-HTTP proxy; the authority stays
direct, because msal refuses an authority that is not HTTPS.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import icalendar
from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

from bridge.adapters import Account
from tests.standins import tls
from tests.standins.microsoft import GraphStandIn, app_of
from tests.standins.serve import serve

CLIENT_ID = "5e3ce6c0-2b1f-4285-8d4b-75ee78787346"
CLIENT_SECRET = "stand-in-secret"
TENANT = "common"
UID_PROPERTY = "String {00020329-0000-0000-C000-000000000046} Name calbridge.uid"
_DAYS = {"MO": "monday", "TU": "tuesday", "WE": "wednesday", "TH": "thursday", "FR": "friday", "SA": "saturday",
         "SU": "sunday"}
_CODES = {name: code for code, name in _DAYS.items()}


def _windows_name(iana: str) -> str:
    for windows, olson in WINDOWS_TO_OLSON.items():
        if olson == iana:
            return windows
    return iana


def _when(value: date | datetime) -> dict[str, str]:
    if not isinstance(value, datetime):
        return {"dateTime": f"{value.isoformat()}T00:00:00", "timeZone": "UTC"}
    if value.tzinfo is None or value.utcoffset() == timedelta(0) and getattr(value.tzinfo, "key", "UTC") == "UTC":
        return {"dateTime": value.astimezone(UTC).replace(tzinfo=None).isoformat(), "timeZone": "UTC"}
    key = getattr(value.tzinfo, "key", None)
    if key is None:
        return {"dateTime": value.astimezone(UTC).replace(tzinfo=None).isoformat(), "timeZone": "UTC"}
    return {"dateTime": value.replace(tzinfo=None).isoformat(), "timeZone": _windows_name(key)}


def _utc(value: date | datetime) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime(value.year, value.month, value.day, tzinfo=UTC)


def _fields(event: icalendar.Event) -> dict[str, Any]:
    start = event.decoded("DTSTART")
    end = event.decoded("DTEND") if "DTEND" in event else start + event.decoded("DURATION")
    body: dict[str, Any] = {"subject": str(event.get("SUMMARY", "")), "start": _when(start), "end": _when(end),
                            "isAllDay": not isinstance(start, datetime),
                            "showAs": "free" if str(event.get("TRANSP", "")) == "TRANSPARENT" else "busy"}
    if "DESCRIPTION" in event:
        body["body"] = {"contentType": "text", "content": str(event["DESCRIPTION"])}
    if "LOCATION" in event:
        body["location"] = {"displayName": str(event["LOCATION"])}
    return body


def _recurrence(event: icalendar.Event) -> dict[str, Any]:
    rule = event["RRULE"]
    start = event.decoded("DTSTART")
    first = start.date() if isinstance(start, datetime) else start
    freq = rule["FREQ"][0]
    pattern: dict[str, Any] = {"interval": int(rule.get("INTERVAL", [1])[0])}
    if freq == "WEEKLY":
        days = [_DAYS[str(d)[-2:]] for d in rule.get("BYDAY", [])] or [list(_DAYS.values())[first.weekday()]]
        pattern.update(type="weekly", daysOfWeek=days, firstDayOfWeek="monday")
    elif freq == "DAILY":
        pattern["type"] = "daily"
    else:
        raise NotImplementedError(f"the driver writes weekly and daily series only, not {freq}")
    span: dict[str, Any] = {"startDate": first.isoformat(), "type": "noEnd"}
    if "COUNT" in rule:
        span.update(type="numbered", numberOfOccurrences=int(rule["COUNT"][0]))
    elif "UNTIL" in rule:
        span.update(type="endDate", endDate=_utc(rule["UNTIL"][0]).date().isoformat())
    return {"pattern": pattern, "range": span}


def _exdates(event: icalendar.Event) -> list[datetime]:
    value = event.get("EXDATE")
    values = value if isinstance(value, list) else [value] if value is not None else []
    return [_utc(d.dt) for v in values for d in v.dts]


@dataclass
class MicrosoftDriver:
    """One fresh calendar on the stand-in, written through its REST API."""

    standin: GraphStandIn
    origin: str
    calendar_id: str
    client: httpx.Client = field(repr=False)
    name: str = "microsoft"
    write_methods: tuple[str, ...] = ("POST", "PATCH", "DELETE")  # what Graph writes with (no PUT)

    def account(self, via: str | None = None) -> Account:
        tokens = self.standin.issue_tokens(CLIENT_ID)
        expires = datetime.now(UTC) + timedelta(seconds=int(tokens["expires_in"]))
        credentials = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                       "authority": f"{self.origin}/{TENANT}", "refresh_token": tokens["refresh_token"],
                       "access_token": tokens["access_token"], "expires_at": expires.strftime("%Y-%m-%dT%H:%M:%SZ"),
                       "scope": tokens["scope"]}
        return Account("microsoft", f"{via or self.origin}/v1.0", self.calendar_id, credentials,
                       ca_file=tls.ca_file())

    # -- writing as Outlook -------------------------------------------------------------------------

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        answer = self.client.request(method, f"{self.origin}/v1.0{path}", **kwargs)
        assert answer.status_code < 400, (method, path, answer.status_code, answer.text)
        return answer

    def create(self, uid: str, ical_text: str) -> str:
        calendar = icalendar.Calendar.from_ical(ical_text)
        master = next(e for e in calendar.walk("VEVENT") if "RECURRENCE-ID" not in e)
        body = {**_fields(master), "iCalUId": uid}
        if "RRULE" in master:
            body["recurrence"] = _recurrence(master)
        created = self._call("POST", f"/me/calendars/{self.calendar_id}/events", json=body).json()
        self._instances(created["id"], calendar)
        return str(created["id"])

    def create_many(self, events: Iterable[tuple[str, str]]) -> list[str]:
        return [self.create(uid, text) for uid, text in events]

    def _instances(self, event_id: str, calendar: icalendar.Calendar) -> None:
        """Patch the moved instances and delete the excluded and cancelled ones, one by one."""
        master = next(e for e in calendar.walk("VEVENT") if "RECURRENCE-ID" not in e)
        if "RRULE" not in master:
            return
        gone = set(_exdates(master))
        moved: dict[datetime, icalendar.Event] = {}
        for override in calendar.walk("VEVENT"):
            if "RECURRENCE-ID" in override:
                original = _utc(override.decoded("RECURRENCE-ID"))
                if str(override.get("STATUS", "")) == "CANCELLED":
                    gone.add(original)
                else:
                    moved[original] = override
        if not gone and not moved:
            return
        wanted = gone | moved.keys()
        listed = self._call("GET", f"/me/events/{event_id}/instances", params={
            "startDateTime": (min(wanted) - timedelta(days=1)).isoformat(),
            "endDateTime": (max(wanted) + timedelta(days=1)).isoformat()}, headers={"Prefer": "odata.maxpagesize=500"})
        by_original = {_utc(datetime.fromisoformat(i["originalStart"].replace("Z", "+00:00"))): i
                       for i in listed.json()["value"]}
        for original in gone:
            if original in by_original:
                self._call("DELETE", f"/me/events/{by_original[original]['id']}")
        for original, override in moved.items():
            if original in by_original:
                self._call("PATCH", f"/me/events/{by_original[original]['id']}", json=_fields(override))

    def update(self, handle: str, ical_text: str) -> None:
        calendar = icalendar.Calendar.from_ical(ical_text)
        master = next(e for e in calendar.walk("VEVENT") if "RECURRENCE-ID" not in e)
        current = self._call("GET", f"/me/events/{handle}").json()
        body = _fields(master)
        body["recurrence"] = _recurrence(master) if "RRULE" in master else None
        self._call("PATCH", f"/me/events/{handle}", json=body, headers={"If-Match": current["@odata.etag"]})
        self._instances(handle, calendar)

    def delete(self, handle: str) -> None:
        current = self._call("GET", f"/me/events/{handle}").json()
        self._call("DELETE", f"/me/events/{handle}", headers={"If-Match": current["@odata.etag"]})

    # -- reading ------------------------------------------------------------------------------------

    def events(self) -> dict[str, icalendar.Calendar]:
        found = {}
        for stored in self.standin.stored(self.calendar_id):
            uid = stored["extended"].get(UID_PROPERTY) or stored["uid"]
            calendar = icalendar.Calendar()
            calendar.add("PRODID", "-//Outlook stand-in//EN")
            calendar.add("VERSION", "2.0")
            head = self._vevent(uid, stored["fields"], stored["start"], stored["end"], stored["all_day"])
            if stored["recurrence"]:
                head.add("RRULE", self._rrule(stored))
                for key in sorted(stored["cancelled"]):
                    head.add("EXDATE", datetime.strptime(key, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC))
            calendar.add_component(head)
            for key, exception in sorted(stored["exceptions"].items()):
                override = self._vevent(uid, {**stored["fields"], **exception["fields"]}, exception["start"],
                                        exception["end"], stored["all_day"])
                override.add("RECURRENCE-ID", datetime.strptime(key, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC))
                calendar.add_component(override)
            found[stored["id"]] = calendar
        return found

    def _vevent(self, uid: str, fields: dict[str, Any], start: datetime, end: datetime,
                all_day: bool) -> icalendar.Event:
        event = icalendar.Event()
        event.add("UID", uid)
        event.add("DTSTAMP", datetime(2026, 11, 24, 8, tzinfo=UTC))
        event.add("DTSTART", start.date() if all_day else start)
        event.add("DTEND", end.date() if all_day else end)
        event.add("SUMMARY", fields.get("subject", ""))
        if fields.get("isCancelled"):
            event.add("STATUS", "CANCELLED")
        if fields.get("showAs") == "free":
            event.add("TRANSP", "TRANSPARENT")
        return event

    @staticmethod
    def _rrule(stored: dict[str, Any]) -> dict[str, Any]:
        pattern, span = stored["recurrence"]["pattern"], stored["recurrence"]["range"]
        if pattern["type"] not in ("weekly", "daily"):  # read what the driver cannot spell as the dates it has
            raise NotImplementedError("the driver reads weekly and daily series only")
        rule: dict[str, Any] = {"FREQ": pattern["type"].upper(), "INTERVAL": pattern.get("interval", 1)}
        if pattern["type"] == "weekly":
            rule["BYDAY"] = [_CODES[d] for d in pattern["daysOfWeek"]]
        if span["type"] == "numbered":
            rule["COUNT"] = span["numberOfOccurrences"]
        elif span["type"] == "endDate":
            rule["UNTIL"] = datetime.combine(date.fromisoformat(span["endDate"]), datetime.max.time(), tzinfo=UTC)
        return rule

    def expire_token(self, state: str) -> str:
        link = json.loads(state)["d"]
        (token,) = parse_qs(urlsplit(link).query)["$deltatoken"]
        self.standin.forget_delta_token(token)
        return state


@dataclass
class MicrosoftProvider:
    standin: GraphStandIn
    origin: str
    name: str = "microsoft"

    @contextmanager
    def new_driver(self) -> Iterator[MicrosoftDriver]:
        calendar_id = self.standin.new_calendar()
        token = self.standin.issue_tokens(CLIENT_ID)["access_token"]
        with httpx.Client(verify=tls.client_context(), timeout=30,
                          headers={"Authorization": f"Bearer {token}"}) as client:
            try:
                yield MicrosoftDriver(self.standin, self.origin, calendar_id, client)
            finally:
                self.standin.drop_calendar(calendar_id)


@contextmanager
def microsoft_provider(directory: Path) -> Iterator[MicrosoftProvider]:
    """The Graph stand-in, served over TLS for as long as the block runs (``directory`` is unused: it keeps
    everything in memory)."""
    standin = GraphStandIn()
    standin.register_client(CLIENT_ID, secret=CLIENT_SECRET)
    with serve(app_of(standin)) as origin:
        yield MicrosoftProvider(standin, origin)
