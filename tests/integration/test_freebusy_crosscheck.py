"""Busy periods from the store (span index, stored instances, on-the-fly expansion beyond the
horizon) against an independent expansion of the same data with recurring-ical-events.

The generated resources are those of tests/unit/test_expand_hypothesis.py (series with COUNT,
UNTIL or no end, overrides, EXDATE, RDATE, all-day, zoned across DST, floating); each is stored
the way a PUT stores it, in a calendar of the generated zone, and the instances are materialised
from 2026-01-01 with the usual horizon, so windows before and beyond it are both asked.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge import freebusy
from bridge.store import calendars, items, migrate, users, writers
from bridge.store.db import Store
from bridge.store.index import facts_of
from tests.unit.test_expand_hypothesis import moments, reference, resources

WRITTEN_AT = datetime(2026, 1, 1, tzinfo=UTC)
_slugs = itertools.count()


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    path: Path = tmp_path_factory.mktemp("freebusy") / "calbridge.sqlite3"
    store = Store(f"sqlite:///{path}")
    migrate.upgrade(store)
    with store.write() as session:
        users.create_user(session, users.create_tenant(session, "Hypothesis"), login="hypo",
                          email="hypo@example.org", password_hash="x")
    yield store
    store.dispose()


def _busy_reference(resource: icalendar.Calendar, tz: tzinfo, start: datetime, end: datetime) -> Counter[tuple]:
    rows: Counter[tuple] = Counter()
    for (first, last, busy), count in reference(resource, tz, start, end).items():
        first, last = max(first, start), min(last, end)
        if busy is not None and last > first:
            rows[(first, last, str(busy))] += count
    return rows


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(resources(), st.data())
def test_busy_periods_from_the_store_agree_with_recurring_ical_events(
        shared_store: Store, generated: tuple[icalendar.Calendar, tzinfo, list[datetime]],
        data: st.DataObject) -> None:
    resource, tz, edges = generated
    start = data.draw(st.one_of(moments, st.sampled_from(edges)) if edges else moments, label="start")
    end = start + data.draw(st.sampled_from([timedelta(hours=1), timedelta(days=1), timedelta(days=28),
                                             timedelta(days=366)]), label="length")
    zone_name = getattr(tz, "key", "UTC")
    with shared_store.write() as session:
        owner = users.user_by_login(session, "hypo")
        assert owner is not None
        calendar = calendars.create_calendar(session, owner, f"c{next(_slugs)}", timezone=zone_name)
        described = facts_of(resource, tz, WRITTEN_AT)
        text = resource.to_ical().decode()
        uid = str(next(c for c in resource.subcomponents if c.name == "VEVENT")["UID"])
        items.write(session, calendar, items.NewItem(
            href="x.ics", uid=uid, etag=items.etag_of(text), text=text, facts=described.facts,
            occurrences=described.instances, occurrences_until=described.instances_until), writers.CLIENT)
        found = freebusy.busy_periods(session, [calendar], start, end)[calendar.id]
    ours = Counter((p.start, p.end, p.busy) for p in found)
    assert ours == _busy_reference(resource, tz, start, end), text


def test_a_series_too_dense_to_list_counts_as_busy_not_free(shared_store: Store) -> None:
    dense = icalendar.Calendar.from_ical(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:dense\r\n"
        "DTSTAMP:20260101T000000Z\r\nDTSTART:20260101T000000Z\r\nDURATION:PT30S\r\nRRULE:FREQ=MINUTELY\r\n"
        "END:VEVENT\r\nEND:VCALENDAR\r\n")
    start, end = datetime(2029, 1, 1, tzinfo=UTC), datetime(2029, 12, 1, tzinfo=UTC)  # beyond the stored horizon
    with shared_store.write() as session:
        owner = users.user_by_login(session, "hypo")
        assert owner is not None
        calendar = calendars.create_calendar(session, owner, "dense", timezone="UTC")
        described = facts_of(dense, ZoneInfo("UTC"), WRITTEN_AT)
        text = dense.to_ical().decode()
        items.write(session, calendar, items.NewItem(
            href="dense.ics", uid="dense", etag=items.etag_of(text), text=text, facts=described.facts,
            occurrences=described.instances, occurrences_until=described.instances_until), writers.CLIENT)
        found = freebusy.busy_periods(session, [calendar], start, end)[calendar.id]
    assert [(p.start, p.end) for p in found] == [(start, end)]
