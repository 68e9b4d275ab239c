from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from radicale import item as radicale_item

from bridge.store.index import UNBOUNDED_CLASS, describe, span_class
from bridge.store.models import UNBOUNDED

BERLIN_FLOATING = """BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:f\r\n\
DTSTAMP:20260101T000000Z\r\nDTSTART:20260701T090000\r\nDURATION:PT45M\r\nTRANSP:TRANSPARENT\r\nCLASS:PRIVATE\r\n\
STATUS:CONFIRMED\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"""
ALL_DAY = """BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:d\r\n\
DTSTAMP:20260101T000000Z\r\nDTSTART;VALUE=DATE:20260105\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"""
OPEN_SERIES = """BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:s\r\n\
DTSTAMP:20260101T000000Z\r\nDTSTART:20260105T080000Z\r\nDTEND:20260105T090000Z\r\nRRULE:FREQ=WEEKLY\r\n\
END:VEVENT\r\nEND:VCALENDAR\r\n"""


def _facts(text: str, zone: str = "Europe/Berlin"):
    item = radicale_item.Item(collection_path="u/c", text=text)
    return describe(text, item.time_range, zone).facts


def test_floating_time_is_read_in_the_calendar_zone_and_flags_are_indexed() -> None:
    facts = _facts(BERLIN_FLOATING)
    assert facts.dtstart == datetime(2026, 7, 1, 7, 0, tzinfo=UTC)  # 09:00 CEST
    assert facts.dtend == facts.dtstart + timedelta(minutes=45)
    assert (facts.transparency, facts.klass, facts.status) == ("TRANSPARENT", "PRIVATE", "CONFIRMED")
    assert not facts.recurring and facts.span_class == 0


def test_all_day_event_spans_midnight_to_midnight_in_the_calendar_zone() -> None:
    facts = _facts(ALL_DAY)
    assert facts.dtstart == datetime(2026, 1, 4, 23, 0, tzinfo=UTC)
    assert facts.dtend == datetime(2026, 1, 5, 23, 0, tzinfo=UTC)


def test_open_ended_series_is_unbounded() -> None:
    facts = _facts(OPEN_SERIES)
    assert facts.recurring
    assert facts.span_end == UNBOUNDED
    assert facts.span_class == UNBOUNDED_CLASS


@pytest.mark.parametrize(("days", "klass"), [(0.5, 0), (1, 0), (1.5, 1), (2, 1), (3, 2), (140, 8)])
def test_span_class_is_the_log2_bucket_of_the_length_in_days(days: float, klass: int) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    assert span_class(start, start + timedelta(days=days)) == klass
