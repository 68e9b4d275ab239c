"""Busy periods and free slots of internal calendars, from the store.

One implementation for the JSON API and CalDAV free-busy-query. It reads only the items
whose span overlaps the window (span index), takes the instances of recurring events from
the occurrence table where they are materialised that far, and expands on the fly only the
series whose stored instances end before the window does. Times of single events and of
stored instances were computed at write time by ``bridge.expand`` in the calendar's zone,
so every path gives the same answer.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Sequence
from datetime import datetime, timedelta
from itertools import chain
from typing import Any, NamedTuple

from sqlalchemy.orm import Session

from bridge import expand, periods
from bridge.ical.zones import parse_calendar
from bridge.store import items
from bridge.store.models import Calendar

BUSY_TYPES = ("BUSY", "BUSY-UNAVAILABLE", "BUSY-TENTATIVE")


class BusyPeriod(NamedTuple):
    """One busy instance, clipped to the window, with why it is busy (no content).
    A tuple: free/busy builds thousands per request, and they sort by start."""

    start: datetime
    end: datetime
    busy: str  # RFC 5545 FBTYPE
    calendar_id: int
    item_id: int
    origin: str  # booking | client | connection:<id>


class StoredBusy(NamedTuple):
    """A busy instance of one calendar as read, times in the store's form (``items.StoredTimes``):
    they compare and sort like instants, and only the answered ones become text or datetimes."""

    start: Any
    end: Any
    busy: str
    item_id: int
    origin: str


def busy_periods(session: Session, calendars: Sequence[Calendar], start: datetime,
                 end: datetime) -> dict[int, list[BusyPeriod]]:
    """Busy instances of each calendar over [start, end), sorted by start."""
    times, found = busy_stored(session, calendars, start, end)
    aware = times.aware
    return {calendar_id: [BusyPeriod(aware(p.start), aware(p.end), p.busy, calendar_id, p.item_id, p.origin)
                          for p in ps] for calendar_id, ps in found.items()}


def busy_stored(session: Session, calendars: Sequence[Calendar], start: datetime,
                end: datetime) -> tuple[items.StoredTimes, dict[int, list[StoredBusy]]]:
    """``busy_periods`` with the times left in the store's form, for answers of thousands of
    periods (the JSON API): the same instances in the same order."""
    if end <= start:
        raise ValueError("the window must end after it starts")
    times = items.stored_times(session)
    lo, hi = times.of(start), times.of(end)
    by_id = {calendar.id: calendar for calendar in calendars}
    found: dict[int, list[StoredBusy]] = {calendar_id: [] for calendar_id in by_id}
    stored: dict[int, items.BusyCandidate] = {}
    on_the_fly: dict[int, items.BusyCandidate] = {}
    for row in items.busy_candidates(session, list(by_id), start, end):
        item_id, calendar_id, origin, first, last, busy, recurring, until = row
        if not recurring:
            if busy and first is not None and last is not None and first < hi and last > lo and last > first:
                found[calendar_id].append(StoredBusy(first if first > lo else lo, last if last < hi else hi,
                                                     busy, item_id, origin))
        elif until is not None and until >= hi:
            stored[item_id] = row
        else:
            on_the_fly[item_id] = row
    for item_id, first, last, busy in items.busy_occurrences(session, list(stored), start, end):
        if last > first:
            row = stored[item_id]
            found[row.calendar_id].append(StoredBusy(first if first > lo else lo, last if last < hi else hi,
                                                     busy, item_id, row.origin))
    for item_id, text in items.texts(session, list(on_the_fly)).items():
        row = on_the_fly[item_id]
        zone = zoneinfo.ZoneInfo(by_id[row.calendar_id].timezone)
        try:
            instances = expand.instances(parse_calendar(text), zone, start, end)
        except expand.TooManyInstances:
            # A series too dense to list (a minutely rule over a long window): a booking engine
            # must not see free time there, so the whole window counts as busy.
            found[row.calendar_id].append(StoredBusy(lo, hi, row.busy or "BUSY", item_id, row.origin))
            continue
        except (expand.ExpansionError, ValueError):
            continue  # stored text that no longer expands; it was valid when written
        for instance in instances:
            if instance.busy is not None and instance.end > instance.start:
                found[row.calendar_id].append(StoredBusy(
                    times.of(max(instance.start, start)), times.of(min(instance.end, end)), str(instance.busy),
                    item_id, row.origin))
    for periods_of_calendar in found.values():
        periods_of_calendar.sort()
    return times, found


def merged(busy: dict[int, list[BusyPeriod]]) -> list[tuple[datetime, datetime]]:
    """The union of every calendar's busy time."""
    return periods.merge([(p.start, p.end) for ps in busy.values() for p in ps])


def merged_stored(busy: dict[int, list[StoredBusy]]) -> list[tuple[Any, Any]]:
    """``merged`` over ``busy_stored``'s periods, times in the store's form: ``periods.merge``
    for periods that all have a positive length, without a pair per period on the way."""
    out: list[tuple[Any, Any]] = []
    last_start: Any = None
    last_end: Any = None
    for first, last, *_ in sorted(chain.from_iterable(busy.values())):
        if last_end is not None and first <= last_end:
            if last > last_end:
                last_end = last
            continue
        if last_end is not None:
            out.append((last_start, last_end))
        last_start, last_end = first, last
    if last_end is not None:
        out.append((last_start, last_end))
    return out


def free_slots(busy: dict[int, list[BusyPeriod]], windows: Sequence[tuple[datetime, datetime]],
               duration: timedelta, step: timedelta) -> list[datetime]:
    """Starts of slots of ``duration`` inside ``windows`` when every calendar is free."""
    return periods.free_slots(merged(busy), windows, duration, step, None)

