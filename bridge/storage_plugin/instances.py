"""Instances of a recurring event, computed as Radicale's time-range filter visits them
(radicale.item.filter.visit_time_ranges), so that the stored occurrences answer a
time-range query exactly as expanding the series would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from radicale.item import filter as radicale_filter

from bridge.store.models import EARLIEST, UNBOUNDED

HORIZON = timedelta(days=730)  # open-ended series are materialised this far ahead of now
MAX_INSTANCES = 5000


def _clamped(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    return min(max(moment, EARLIEST), UNBOUNDED)


def occurrences(vobject_item: object, component: str,
                now: datetime) -> tuple[list[tuple[datetime, datetime]], datetime | None]:
    """(instances, until): every instance starting before ``until`` is listed
    (UNBOUNDED: all of them). ``until`` is None where nothing could be materialised."""
    if component != "VEVENT":
        return [], None
    horizon = now + HORIZON
    found: list[tuple[datetime, datetime]] = []
    until = UNBOUNDED

    def range_fn(start: datetime, end: datetime, is_recurrence: bool) -> bool:
        nonlocal until
        if not is_recurrence and (start > horizon or len(found) >= MAX_INSTANCES):
            until = _clamped(start)
            return True
        found.append((_clamped(start), _clamped(end)))
        return False

    try:
        radicale_filter.visit_time_ranges(vobject_item, component, range_fn, lambda start: False)
    except (ValueError, AttributeError, TypeError, OverflowError):
        return [], None
    return found, until
