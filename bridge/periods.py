"""Interval arithmetic over aware-UTC half-open periods [start, end), for free/busy and free slots.

Pure functions, no I/O. A period is a ``(start, end)`` pair; ``end == start`` is a zero-length
period (an instant), which RFC 4791 §9.9 still counts as an event. Boundaries:

* ``merge`` joins overlapping *and touching* periods ([9, 10) + [10, 11) = [9, 11)); an instant
  inside or at the edge of a period disappears into it; lone instants are kept.
* ``clip`` keeps what lies in the window; an instant is kept if ``start <= t < end`` (as §9.9).
* ``subtract`` ignores instants: removing a point from a continuous stretch leaves it whole.
* ``free_slots``: an instant ``t`` blocks a slot [s, s + duration) only if s < t < s + duration,
  so a zero-length marker at 10:00 blocks neither 09:30-10:00 nor 10:00-10:30, but 09:45-10:15.
  Positive busy periods block every slot they overlap (touching is fine).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from datetime import datetime, timedelta

__all__ = ["Period", "clip", "free_slots", "merge", "subtract"]

Period = tuple[datetime, datetime]


def merge(periods: Iterable[Period]) -> list[Period]:
    """Sorted periods with overlapping and touching ones joined; malformed (end < start) ones are
    read as instants at their start, as expand.py reads a DTEND before DTSTART."""
    ordered = sorted((s, max(s, e)) for s, e in periods)
    out: list[Period] = []
    for start, end in ordered:
        if out and start <= out[-1][1]:
            if end > out[-1][1]:
                out[-1] = (out[-1][0], end)
            continue
        out.append((start, end))
    return out


def clip(periods: Iterable[Period], start: datetime, end: datetime) -> list[Period]:
    """The merged periods cut to the window [start, end)."""
    out: list[Period] = []
    for s, e in merge(periods):
        if s == e:
            if start <= s < end:
                out.append((s, e))
        elif s < end and e > start:
            out.append((max(s, start), min(e, end)))
    return out


def subtract(windows: Iterable[Period], busy: Iterable[Period]) -> list[Period]:
    """The parts of ``windows`` not covered by ``busy`` (free time), sorted and merged."""
    blocks = [(s, e) for s, e in merge(busy) if e > s]
    out: list[Period] = []
    for w_start, w_end in merge(windows):
        cursor = w_start
        index = bisect.bisect_right(blocks, (w_start, w_start))
        if index and blocks[index - 1][1] > w_start:
            index -= 1
        while cursor < w_end and index < len(blocks) and blocks[index][0] < w_end:
            b_start, b_end = blocks[index]
            if b_start > cursor:
                out.append((cursor, b_start))
            cursor = max(cursor, b_end)
            index += 1
        if cursor < w_end:
            out.append((cursor, w_end))
    return out


def free_slots(busy: Iterable[Period], windows: Iterable[Period], duration: timedelta, step: timedelta,
               align_to: datetime | None = None) -> list[datetime]:
    """Starts s of the slots [s, s + duration) that lie inside a window and meet no busy period.

    Candidates are the window's start + k * step, or the grid align_to + k * step when given
    (so slots line up on the hour across windows). Touching windows are merged first, so a slot
    may span two adjacent windows."""
    if duration <= timedelta(0) or step <= timedelta(0):
        raise ValueError("duration and step must be positive")
    merged = merge(busy)
    blocks = [(s, e) for s, e in merged if e > s]
    block_ends = [e for _, e in blocks]
    instants = [s for s, e in merged if e == s]
    out: list[datetime] = []
    for w_start, w_end in merge(windows):
        slot = w_start if align_to is None else _grid_at_or_after(w_start, align_to, step)
        while slot + duration <= w_end:
            slot_end = slot + duration
            # the first block ending after the slot starts is the only one that can overlap it
            index = bisect.bisect_right(block_ends, slot)
            if index < len(blocks) and blocks[index][0] < slot_end:
                slot = _next_grid(slot, blocks[index][1], step)
                continue
            index = bisect.bisect_right(instants, slot)
            if index < len(instants) and instants[index] < slot_end:
                slot = _next_grid(slot, instants[index], step)
                continue
            out.append(slot)
            slot += step
    return out


def _grid_at_or_after(moment: datetime, origin: datetime, step: timedelta) -> datetime:
    """The first point of the grid origin + k * step (k any integer) at or after ``moment``."""
    return origin + -((origin - moment) // step) * step


def _next_grid(slot: datetime, moment: datetime, step: timedelta) -> datetime:
    """The first candidate on slot's grid at or after ``moment`` (skips blocked stretches at once)."""
    return _grid_at_or_after(moment, slot, step)
