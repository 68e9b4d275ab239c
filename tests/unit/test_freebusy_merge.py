"""``freebusy.merged_stored`` (the API's union, times in the store's form) is ``periods.merge``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from bridge import freebusy, periods
from bridge.store.items import StoredTimes

BASE = datetime(2026, 12, 7, tzinfo=UTC)
spans = st.tuples(st.integers(0, 200), st.integers(1, 60)).map(
    lambda p: (BASE + timedelta(minutes=15 * p[0]), BASE + timedelta(minutes=15 * (p[0] + p[1]))))


@given(st.dictionaries(st.integers(1, 4), st.lists(spans, max_size=12), max_size=4),
       st.sampled_from(["sqlite", "postgresql"]))
def test_merged_stored_is_periods_merge(busy: dict[int, list[tuple[datetime, datetime]]], dialect: str) -> None:
    times = StoredTimes(dialect)
    stored = {calendar_id: sorted(freebusy.StoredBusy(times.of(s), times.of(e), "BUSY", n, "client")
                                  for n, (s, e) in enumerate(ps)) for calendar_id, ps in busy.items()}
    got = [(times.aware(s), times.aware(e)) for s, e in freebusy.merged_stored(stored)]
    assert got == periods.merge([p for ps in busy.values() for p in ps])
