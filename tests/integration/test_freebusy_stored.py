"""Free/busy with times in the store's form (``items.StoredTimes``), on SQLite and PostgreSQL:
the stored form round-trips, orders like the instants, and the JSON API's hand-written answer
equals the one built from ``busy_periods`` with dicts and ``json.dumps``."""

from __future__ import annotations

import json
import types
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import pytest

from bridge import freebusy
from bridge.store import calendars, items, users, writers
from bridge.store.db import Store
from bridge.store.index import facts_of
from bridge.store.models import EARLIEST, UNBOUNDED
from bridge.web.api import busy_routes
from bridge.web.api.context import iso
from tests.ics import event

WRITTEN_AT = datetime(2026, 1, 1, tzinfo=UTC)
MONDAY = datetime(2026, 12, 7, tzinfo=UTC)
MOMENTS = [EARLIEST, UNBOUNDED, MONDAY, MONDAY + timedelta(microseconds=250_000),
           datetime(2026, 3, 29, 3, 30, tzinfo=ZoneInfo("Europe/Berlin")), datetime(999, 5, 6, 7, 8, 9, tzinfo=UTC)]


def test_stored_times_round_trip_and_order_like_instants(store: Store) -> None:
    with store.read() as session:
        times = items.stored_times(session)
    for moment in MOMENTS:
        assert times.aware(times.of(moment)) == moment
        assert times.iso(times.of(moment)) == iso(moment.astimezone(UTC))
    assert sorted(MOMENTS) == [times.aware(v) for v in sorted(times.of(m) for m in MOMENTS)]


def _put(session: Any, calendar: Any, name: str, text: str, origin: str = "client") -> None:
    described = facts_of(icalendar.Calendar.from_ical(text), ZoneInfo(calendar.timezone), WRITTEN_AT)
    items.write(session, calendar, items.NewItem(
        href=f"{name}.ics", uid=name, etag=items.etag_of(text), text=text, facts=described.facts,
        occurrences=described.instances, occurrences_until=described.instances_until), writers.for_origin(origin))


def _reference(busy: dict[int, list[freebusy.BusyPeriod]], ids: list[int], start: datetime, end: datetime,
               providers: dict[int, str]) -> dict[str, Any]:
    """The answer as the route built it before it wrote JSON itself."""
    def source(period: freebusy.BusyPeriod) -> dict[str, Any]:
        found: dict[str, Any] = {"item": period.item_id}
        if period.origin.startswith("connection:"):
            connection_id = int(period.origin.split(":", 1)[1])
            found.update(kind="connection", connection=connection_id, provider=providers.get(connection_id))
        else:
            found["kind"] = period.origin
        return found
    return {"start": iso(start), "end": iso(end),
            "calendars": [{"id": i, "busy": [{"start": iso(p.start), "end": iso(p.end), "type": p.busy,
                                              "source": source(p)} for p in busy[i]]} for i in ids],
            "merged": [{"start": iso(s), "end": iso(e)} for s, e in freebusy.merged(busy)]}


@pytest.mark.parametrize("window", [
    (MONDAY, MONDAY + timedelta(days=14)),
    (MONDAY + timedelta(hours=9, minutes=30, microseconds=250_000), MONDAY + timedelta(days=1, hours=12)),
    # beyond the stored instances' horizon: the open series is expanded on the fly
    (datetime(2029, 6, 4, tzinfo=UTC), datetime(2029, 6, 18, tzinfo=UTC)),
])
def test_json_answer_equals_the_one_built_from_busy_periods(store: Store, window: tuple[datetime, datetime]) -> None:
    start, end = window
    with store.write() as session:
        tenant = users.create_tenant(session, "Salon")
        owner = users.create_user(session, tenant, login="nora", email="nora@example.org", password_hash="x")
        work = calendars.create_calendar(session, owner, "work", timezone="Europe/Berlin")
        home = calendars.create_calendar(session, owner, "home", timezone="UTC")
        hour = timedelta(hours=1)
        _put(session, work, "one", event("one", MONDAY + 9 * hour, MONDAY + 10 * hour))
        _put(session, work, "touching", event("touching", MONDAY + 10 * hour, MONDAY + 11 * hour), origin="booking")
        _put(session, work, "free", event("free", MONDAY + 9 * hour, MONDAY + 12 * hour,
                                         extra="TRANSP:TRANSPARENT\r\n"))
        _put(session, work, "weekly", event("weekly", MONDAY + 12 * hour, MONDAY + 13 * hour,
                                           extra="RRULE:FREQ=WEEKLY\r\n"))
        _put(session, home, "tentative", event("tentative", MONDAY + 9 * hour, MONDAY + 33 * hour,
                                              extra="STATUS:TENTATIVE\r\n"), origin="connection:7")
        _put(session, home, "quoted", event("quoted", MONDAY + 2 * hour, MONDAY + 3 * hour), origin='odd "origin"')
        ids = [home.id, work.id]
        wanted = freebusy.busy_periods(session, [work, home], start, end)
    assert any(wanted.values())
    api = types.SimpleNamespace(store=store)
    answer = json.loads(busy_routes._freebusy(api, tenant.id, ids, start, end))
    assert answer == _reference(wanted, ids, start, end, {})
