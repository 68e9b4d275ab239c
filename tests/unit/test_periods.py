"""bridge.periods: table tests for the boundary rules, plus a brute-force cross-check of free_slots."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.periods import Period, clip, free_slots, merge, subtract

BASE = datetime(2026, 3, 2, tzinfo=UTC)


def t(hours: float) -> datetime:
    return BASE + timedelta(hours=hours)


def p(a: float, b: float) -> Period:
    return t(a), t(b)


@pytest.mark.parametrize(("given_periods", "merged"), [
    ([], []),
    ([p(9, 10), p(11, 12)], [p(9, 10), p(11, 12)]),
    ([p(11, 12), p(9, 10)], [p(9, 10), p(11, 12)]),
    ([p(9, 10), p(9.5, 11)], [p(9, 11)]),
    ([p(9, 10), p(10, 11)], [p(9, 11)]),  # touching
    ([p(9, 12), p(10, 11)], [p(9, 12)]),  # contained
    ([p(9, 10), p(9, 10)], [p(9, 10)]),
    ([p(10, 10), p(9, 10)], [p(9, 10)]),  # an instant at an edge disappears into the period
    ([p(10.5, 10.5), p(9, 10)], [p(9, 10), p(10.5, 10.5)]),  # a lone instant stays
    ([p(10.5, 10.5), p(10.5, 10.5)], [p(10.5, 10.5)]),
    ([p(10, 9)], [p(10, 10)]),  # malformed: an instant at its start
])
def test_merge(given_periods: list[Period], merged: list[Period]) -> None:
    assert merge(given_periods) == merged


def test_clip_cuts_to_the_window_and_keeps_instants_at_its_start() -> None:
    busy = [p(7, 9.5), p(10, 10), p(11, 13), p(12, 12), p(14, 14), p(15, 16)]
    assert clip(busy, t(9), t(14)) == [p(9, 9.5), p(10, 10), p(11, 13)]
    assert clip([p(9, 9)], t(9), t(10)) == [p(9, 9)]
    assert clip([p(10, 10)], t(9), t(10)) == []
    assert clip([p(8, 9)], t(9), t(10)) == []


def test_subtract_leaves_the_free_parts_of_the_windows() -> None:
    windows = [p(8, 12), p(13, 17)]
    busy = [p(7, 9), p(10, 10.5), p(10.5, 11), p(11.5, 13.5), p(15, 15), p(16, 18)]
    assert subtract(windows, busy) == [p(9, 10), p(11, 11.5), p(13.5, 16)]


def test_subtract_without_busy_and_with_everything_busy() -> None:
    assert subtract([p(8, 12)], []) == [p(8, 12)]
    assert subtract([p(8, 12)], [p(0, 24)]) == []
    assert subtract([p(8, 10), p(10, 12)], [p(9, 9)]) == [p(8, 12)]  # touching windows merge; instants cut nothing


def test_free_slots_on_the_window_grid() -> None:
    slots = free_slots([p(10, 11)], [p(9, 12)], timedelta(minutes=30), timedelta(minutes=30))
    assert slots == [t(9), t(9.5), t(11), t(11.5)]  # slots may touch busy periods


def test_free_slots_aligned_to_a_grid() -> None:
    windows = [p(9 + 10 / 60, 12)]  # 09:10-12:00
    slots = free_slots([], windows, timedelta(hours=1), timedelta(minutes=30), align_to=t(0))
    assert slots == [t(9.5), t(10), t(10.5), t(11)]
    # the grid may lie before or after the window
    assert free_slots([], windows, timedelta(hours=1), timedelta(minutes=30), align_to=t(48)) == slots


def test_free_slots_skip_past_a_busy_period_to_the_next_grid_point() -> None:
    slots = free_slots([p(9.25, 10.1)], [p(9, 12)], timedelta(minutes=30), timedelta(minutes=15))
    assert slots[0] == t(10.25)
    assert slots == [t(10.25), t(10.5), t(10.75), t(11), t(11.25), t(11.5)]


def test_zero_length_busy_blocks_only_slots_strictly_containing_it() -> None:
    slots = free_slots([p(10, 10)], [p(9, 11)], timedelta(minutes=30), timedelta(minutes=15))
    # 09:30-10:00 and 10:00-10:30 are fine; 09:45-10:15 contains 10:00
    assert slots == [t(9), t(9.25), t(9.5), t(10), t(10.25), t(10.5)]


def test_free_slots_in_touching_windows_may_span_both() -> None:
    slots = free_slots([], [p(9, 10), p(10, 11)], timedelta(hours=1), timedelta(minutes=30))
    assert slots == [t(9), t(9.5), t(10)]


def test_free_slots_none_when_the_slot_is_longer_than_the_window() -> None:
    assert free_slots([], [p(9, 9.5)], timedelta(hours=1), timedelta(minutes=15)) == []


@pytest.mark.parametrize(("duration", "step"), [(timedelta(0), timedelta(minutes=15)),
                                                (timedelta(minutes=30), timedelta(0)),
                                                (timedelta(minutes=30), timedelta(minutes=-5))])
def test_free_slots_refuse_non_positive_duration_or_step(duration: timedelta, step: timedelta) -> None:
    with pytest.raises(ValueError):
        free_slots([], [p(9, 12)], duration, step)


# --- brute force ---------------------------------------------------------------------------------

minutes = st.integers(0, 24 * 60)
periods = st.lists(st.tuples(minutes, st.integers(0, 240)).map(lambda s: (s[0], s[0] + s[1])), max_size=6)


def m(n: int) -> datetime:
    return BASE + timedelta(minutes=n)


@settings(max_examples=300, deadline=None)
@given(busy=periods, windows=periods, duration=st.integers(1, 120), step=st.integers(1, 60),
       align=st.one_of(st.none(), st.integers(-100, 2000)))
def test_free_slots_match_brute_force(busy: list[tuple[int, int]], windows: list[tuple[int, int]], duration: int,
                                      step: int, align: int | None) -> None:
    found = free_slots([(m(a), m(b)) for a, b in busy], [(m(a), m(b)) for a, b in windows],
                       timedelta(minutes=duration), timedelta(minutes=step), None if align is None else m(align))
    expected: list[datetime] = []
    for w_start, w_end in merge([(m(a), m(b)) for a, b in windows]):
        slot = w_start if align is None else m(align)
        while slot < w_start:  # walk the grid to the window
            slot += timedelta(minutes=step)
        while slot - timedelta(minutes=step) >= w_start:
            slot -= timedelta(minutes=step)
        while slot + timedelta(minutes=duration) <= w_end:
            end = slot + timedelta(minutes=duration)
            blocked = any((m(a) < end and m(b) > slot) if b > a else (slot < m(a) < end) for a, b in busy)
            if not blocked:
                expected.append(slot)
            slot += timedelta(minutes=step)
    assert found == expected


@settings(max_examples=200, deadline=None)
@given(windows=periods, busy=periods)
def test_subtract_matches_sampling(windows: list[tuple[int, int]], busy: list[tuple[int, int]]) -> None:
    free = subtract([(m(a), m(b)) for a, b in windows], [(m(a), m(b)) for a, b in busy])
    # membership is constant between boundaries: probe each boundary and just after it
    for minute in sorted({x + d for a, b in windows + busy for x in (a, b) for d in (0, 0.5)}):
        moment = BASE + timedelta(minutes=minute)
        in_window = any(a <= minute < b for a, b in windows)
        in_busy = any(a <= minute < b for a, b in busy)
        assert any(s <= moment < e for s, e in free) == (in_window and not in_busy)
    assert free == merge(free)
