"""The scenario driver for Exchange Server (EWS): the stand-in (tests/standins/ews.py) on loopback TLS, changed with
exchangelib the way Outlook changes a mailbox (CreateItem; UpdateItem with the item's own ChangeKey; a series'
occurrences changed or deleted one by one through ``OccurrenceItemId``), never through the bridge's adapter.

It has a small iCalendar <-> EWS converter of its own (what the scenarios write: UTC or zoned times, weekly or
daily RRULEs with COUNT or UNTIL, EXDATEs, moved and cancelled overrides), so that the adapter's is checked
against it. The UID goes into EWS's ``calendar:UID`` (as Outlook keeps the UID of an imported .ics). ``events()``
reads the folder back with GetItem: a series as master (RRULE, EXDATE for deleted occurrences) plus overrides
for the modified ones.

exchangelib trusts the tests' CA through ``BaseProtocol.HTTP_ADAPTER_CLS``, process-wide; the driver sets it the
way the bridge does (``bridge.adapters.exchange.trust``), so both share one setting.
"""

from __future__ import annotations

import json
import zoneinfo
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import exchangelib
import icalendar
from dateutil import rrule as dateutil_rrule
from exchangelib import errors as ews
from exchangelib import recurrence as r
from exchangelib.folders import Calendar as CalendarFolder
from exchangelib.folders import Root
from exchangelib.items import CalendarItem
from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

from bridge.adapters import Account, ca_bundle
from bridge.adapters.exchange import trust
from tests.standins import tls
from tests.standins.ews import EWS_PATH, EwsStandIn, Mailbox, ews_standin

VERSION = "15.1.2507.6"
_DAYS = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]
_READ = ("subject", "start", "end", "is_all_day", "uid", "type", "recurrence", "modified_occurrences",
         "deleted_occurrences", "_start_timezone", "legacy_free_busy_status")


def _ews_time(value: date | datetime) -> Any:
    if not isinstance(value, datetime):
        return exchangelib.EWSDate.from_date(value)
    key = getattr(value.tzinfo, "key", None) or "UTC"
    return exchangelib.EWSDateTime.from_datetime(value.astimezone(zoneinfo.ZoneInfo(key)))


def _utc(value: date | datetime) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.combine(value, time(0), tzinfo=UTC)


def _plain(value: Any) -> datetime:
    return datetime.fromtimestamp(int(value.timestamp()), UTC)


def _fields(event: icalendar.Event) -> dict[str, Any]:
    start = event.decoded("DTSTART")
    end = event.decoded("DTEND") if "DTEND" in event else start + event.decoded("DURATION")
    all_day = not isinstance(start, datetime)
    if all_day:
        end = end - timedelta(days=1)  # exchangelib takes an all-day event's last day
    return {"subject": str(event.get("SUMMARY", "")), "start": _ews_time(start), "end": _ews_time(end),
            "is_all_day": all_day,
            "legacy_free_busy_status": "Free" if str(event.get("TRANSP", "")) == "TRANSPARENT" else "Busy"}


def _recurrence(event: icalendar.Event) -> r.Recurrence:
    rule = event["RRULE"]
    start = event.decoded("DTSTART")
    first = start.date() if isinstance(start, datetime) else start
    freq = str(rule["FREQ"][0])
    interval = int(rule.get("INTERVAL", [1])[0])
    if freq == "WEEKLY":
        days = [_DAYS.index(str(d)[-2:]) + 1 for d in rule.get("BYDAY", [])] or [first.isoweekday()]
        pattern: Any = r.WeeklyPattern(interval=interval, weekdays=days, first_day_of_week=1)
    elif freq == "DAILY":
        pattern = r.DailyPattern(interval=interval)
    else:
        raise NotImplementedError(f"the driver writes weekly and daily series only, not {freq}")
    if "COUNT" in rule:
        boundary: Any = r.NumberedPattern(start=first, number=int(rule["COUNT"][0]))
    elif "UNTIL" in rule:
        boundary = r.EndDatePattern(start=first, end=_utc(rule["UNTIL"][0]).date())
    else:
        boundary = r.NoEndPattern(start=first)
    return r.Recurrence(pattern=pattern, boundary=boundary)


def _originals(master: icalendar.Event) -> list[datetime]:
    """The series' original starts in UTC, in pattern order (occurrence n is at index n - 1)."""
    start = master.decoded("DTSTART")
    zone = start.tzinfo if isinstance(start, datetime) and start.tzinfo else UTC
    local = start.astimezone(zone).replace(tzinfo=None) if isinstance(start, datetime) else datetime.combine(start,
                                                                                                           time(0))
    text = ";".join(p for p in master["RRULE"].to_ical().decode().split(";") if not p.startswith("UNTIL="))
    rule = dateutil_rrule.rrulestr(text, dtstart=local, ignoretz=True)
    if "UNTIL" in master["RRULE"]:
        rule = rule.replace(until=_utc(master["RRULE"]["UNTIL"][0]).astimezone(zone).replace(tzinfo=None))
    return [moment.replace(tzinfo=zone).astimezone(UTC) for _, moment in zip(range(500), rule, strict=False)]


def _exdates(event: icalendar.Event) -> list[datetime]:
    value = event.get("EXDATE")
    values = value if isinstance(value, list) else [value] if value is not None else []
    return [_utc(d.dt) for v in values for d in v.dts]


@dataclass
class EwsDriver:
    """One fresh mailbox on the stand-in (its default calendar), written with exchangelib."""

    standin: EwsStandIn
    origin: str
    mailbox: Mailbox
    name: str = "exchange"
    write_methods: tuple[str, ...] = ("POST",)  # every EWS operation is a SOAP POST
    _account: exchangelib.Account | None = field(default=None, repr=False)

    def account(self, via: str | None = None) -> Account:
        credentials = {"auth": "basic", "username": self.mailbox.username, "password": self.mailbox.password,
                       "email": self.mailbox.email, "version": VERSION}
        return Account("exchange", f"{via or self.origin}{EWS_PATH}", self.mailbox.calendar_id, credentials,
                       ca_file=tls.ca_file())

    # -- exchangelib, as Outlook ----------------------------------------------------------------------

    def _ews(self) -> exchangelib.Account:
        if self._account is None:
            trust(ca_bundle(tls.ca_file()))
            config = exchangelib.Configuration(
                credentials=exchangelib.Credentials(self.mailbox.username, self.mailbox.password),
                service_endpoint=f"{self.origin}{EWS_PATH}", auth_type=exchangelib.BASIC,
                version=exchangelib.Version(build=exchangelib.Build(15, 1, 2507, 6)))
            self._account = exchangelib.Account(self.mailbox.email, config=config, autodiscover=False,
                                                access_type=exchangelib.DELEGATE, default_timezone=exchangelib.UTC)
        return self._account

    def _folder(self) -> CalendarFolder:
        return CalendarFolder(root=Root(account=self._ews()), id=self.mailbox.calendar_id)

    def create(self, uid: str, ical_text: str) -> str:
        calendar = icalendar.Calendar.from_ical(ical_text)
        master = next(e for e in calendar.walk("VEVENT") if "RECURRENCE-ID" not in e)
        item = CalendarItem(account=self._ews(), folder=self._folder(), uid=uid, **_fields(master))
        if "RRULE" in master:
            item.recurrence = _recurrence(master)
        item.save(send_meeting_invitations="SendToNone")
        self._occurrences(item, calendar)
        return str(item.id)

    def create_many(self, events: Iterable[tuple[str, str]]) -> list[str]:
        return [self.create(uid, text) for uid, text in events]

    def _occurrences(self, item: CalendarItem, calendar: icalendar.Calendar) -> None:
        """Delete the excluded and cancelled occurrences and change the moved ones, one by one."""
        master = next(e for e in calendar.walk("VEVENT") if "RECURRENCE-ID" not in e)
        if "RRULE" not in master:
            return
        originals = _originals(master)
        gone = set(_exdates(master))
        moved: dict[datetime, icalendar.Event] = {}
        for override in calendar.walk("VEVENT"):
            if "RECURRENCE-ID" in override:
                original = _utc(override.decoded("RECURRENCE-ID"))
                if str(override.get("STATUS", "")) == "CANCELLED":
                    gone.add(original)
                else:
                    moved[original] = override
        for original in sorted(gone):
            if original in originals:
                with suppress(ews.ErrorCalendarOccurrenceIsDeletedFromRecurrence):
                    item.occurrence(originals.index(original) + 1).delete(send_meeting_cancellations="SendToNone")
        for original, override in sorted(moved.items()):
            if original in originals:
                occurrence = item.occurrence(originals.index(original) + 1)
                fields = _fields(override)
                for name, value in fields.items():
                    setattr(occurrence, name, value)
                occurrence.save(update_fields=list(fields), conflict_resolution="AlwaysOverwrite",
                                send_meeting_invitations="SendToNone")

    def _get(self, handle: str, fields: tuple[str, ...] = _READ) -> CalendarItem:
        (found,) = list(self._ews().fetch(ids=[(handle, None)], only_fields=list(fields)))
        assert isinstance(found, CalendarItem), found
        return found

    def update(self, handle: str, ical_text: str) -> None:
        calendar = icalendar.Calendar.from_ical(ical_text)
        master = next(e for e in calendar.walk("VEVENT") if "RECURRENCE-ID" not in e)
        current = self._get(handle, ("changekey",))
        fields = {**_fields(master), "recurrence": _recurrence(master) if "RRULE" in master else None}
        item = CalendarItem(account=self._ews(), folder=self._folder(), id=handle, changekey=current.changekey,
                            **fields)
        item.save(update_fields=list(fields), conflict_resolution="NeverOverwrite",
                  send_meeting_invitations="SendToNone")
        self._occurrences(item, calendar)

    def delete(self, handle: str) -> None:
        CalendarItem(account=self._ews(), folder=self._folder(), id=handle,
                     changekey=self._get(handle, ("changekey",)).changekey).delete(
            send_meeting_cancellations="SendToNone")

    # -- reading, as Outlook shows it ---------------------------------------------------------------------

    def events(self) -> dict[str, icalendar.Calendar]:
        ids = self.standin.item_ids(self.mailbox.calendar_id)
        if not ids:
            return {}
        found = {}
        for item in self._ews().fetch(ids=[(i, None) for i in ids], only_fields=list(_READ)):
            assert isinstance(item, CalendarItem), item
            found[str(item.id)] = self._calendar(item)
        return found

    def _calendar(self, item: CalendarItem) -> icalendar.Calendar:
        calendar = icalendar.Calendar()
        calendar.add("PRODID", "-//Outlook stand-in//EN")
        calendar.add("VERSION", "2.0")
        uid = str(item.uid)
        head = self._vevent(uid, item)
        if item.recurrence is not None:
            head.add("RRULE", self._rrule(item))
            for deleted in item.deleted_occurrences or []:
                head.add("EXDATE", _plain(deleted.start))
        calendar.add_component(head)
        modified = list(item.modified_occurrences or [])
        if modified:
            answers = self._ews().fetch(ids=[(str(o.id), None) for o in modified], only_fields=list(_READ))
            for occurrence, read in zip(modified, answers, strict=True):
                assert isinstance(read, CalendarItem), read
                override = self._vevent(uid, read)
                override.add("RECURRENCE-ID", _plain(occurrence.original_start))
                calendar.add_component(override)
        return calendar

    @staticmethod
    def _vevent(uid: str, item: CalendarItem) -> icalendar.Event:
        event = icalendar.Event()
        event.add("UID", uid)
        event.add("DTSTAMP", datetime(2026, 11, 24, 8, tzinfo=UTC))
        if item.is_all_day:
            event.add("DTSTART", date(item.start.year, item.start.month, item.start.day))
            event.add("DTEND", date(item.end.year, item.end.month, item.end.day) + timedelta(days=1))
        else:
            zone_id = getattr(item._start_timezone, "ms_id", None)
            zone = zoneinfo.ZoneInfo(WINDOWS_TO_OLSON.get(zone_id, "UTC")) if zone_id else UTC
            event.add("DTSTART", _plain(item.start).astimezone(zone))
            event.add("DTEND", _plain(item.end).astimezone(zone))
        event.add("SUMMARY", str(item.subject or ""))
        if item.legacy_free_busy_status == "Free":
            event.add("TRANSP", "TRANSPARENT")
        return event

    @staticmethod
    def _rrule(item: CalendarItem) -> dict[str, Any]:
        pattern, boundary = item.recurrence.pattern, item.recurrence.boundary
        rule: dict[str, Any] = {"INTERVAL": pattern.interval}
        if isinstance(pattern, r.WeeklyPattern):
            days = pattern.weekdays if isinstance(pattern.weekdays, list) else [pattern.weekdays]
            rule.update(FREQ="WEEKLY", BYDAY=[_DAYS[d - 1] if isinstance(d, int) else str(d)[:2].upper()
                                              for d in days])
        elif isinstance(pattern, r.DailyPattern):
            rule["FREQ"] = "DAILY"
        else:
            raise NotImplementedError("the driver reads weekly and daily series only")
        if isinstance(boundary, r.NumberedPattern):
            rule["COUNT"] = boundary.number
        elif isinstance(boundary, r.EndDatePattern):
            rule["UNTIL"] = datetime.combine(boundary.end, time(23, 59, 59), tzinfo=UTC)
        return {"FREQ": rule.pop("FREQ"), **rule}

    def expire_token(self, state: str) -> str:
        json.loads(state)  # the adapter's state: the SyncState lives on the server, which forgets it
        self.standin.invalidate_sync_states()
        return state


@dataclass
class EwsProvider:
    standin: EwsStandIn
    origin: str
    name: str = "exchange"

    @contextmanager
    def new_driver(self) -> Iterator[EwsDriver]:
        driver = EwsDriver(self.standin, self.origin, self.standin.new_mailbox())
        try:
            yield driver
        finally:
            if driver._account is not None:
                driver._account.protocol.close()


@contextmanager
def ews_provider(directory: Path) -> Iterator[EwsProvider]:
    """The EWS stand-in, served over TLS for as long as the block runs (``directory`` is unused: it keeps
    everything in memory)."""
    with ews_standin() as running:
        yield EwsProvider(running.standin, running.origin)
