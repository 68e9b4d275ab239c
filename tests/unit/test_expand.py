"""Named cases for bridge.expand: each asserts the instant values a calendar user would notice."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar
import pytest
from dateutil import rrule as du  # type: ignore[import-untyped, unused-ignore]

from bridge import expand
from bridge.expand import BusyType, ExpansionError, Instance, TooManyInstances
from bridge.ical.zones import parse_calendar
from bridge.store.models import EARLIEST, UNBOUNDED

FIXTURES = Path(__file__).parent.parent / "fixtures"
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
WIDE = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2040, 1, 1, tzinfo=UTC))


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


def cal(*events: str, extra: str = "") -> icalendar.Calendar:
    """A resource from VEVENT bodies (one property per line, UID and DTSTAMP added)."""
    body = "".join(
        "BEGIN:VEVENT\r\nUID:case@calbridge.test\r\nDTSTAMP:20260101T000000Z\r\n"
        + "".join(line.strip() + "\r\n" for line in event.strip().splitlines())
        + "END:VEVENT\r\n"
        for event in events
    )
    return parse_calendar(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calbridge//tests//EN\r\n" + extra + body + "END:VCALENDAR\r\n"
    )


def fixture(name: str) -> icalendar.Calendar:
    return parse_calendar((FIXTURES / name).read_text())


def times(found: list[Instance]) -> list[tuple[datetime, datetime]]:
    return [(i.start, i.end) for i in found]


def starts(found: list[Instance]) -> list[datetime]:
    return [i.start for i in found]


def every(resource: icalendar.Calendar, tz: ZoneInfo = BERLIN) -> list[Instance]:
    return expand.instances(resource, tz, *WIDE)


# --- 1. COUNT, UNTIL, unbounded -----------------------------------------------------------------

def test_count_limits_the_series() -> None:
    found = every(cal("""
        DTSTART;TZID=Europe/Berlin:20260105T090000
        DTEND;TZID=Europe/Berlin:20260105T093000
        RRULE:FREQ=WEEKLY;COUNT=3
    """))
    assert times(found) == [(utc(2026, 1, d, 8), utc(2026, 1, d, 8, 30)) for d in (5, 12, 19)]
    assert [i.recurrence_id for i in found] == [datetime(2026, 1, d, 9, tzinfo=BERLIN) for d in (5, 12, 19)]


def test_count_includes_an_unsynchronised_dtstart() -> None:
    # RFC 5545 §3.3.10: DTSTART always counts as the first occurrence (Monday, then two Wednesdays)
    found = every(cal("""
        DTSTART:20260105T090000Z
        RRULE:FREQ=WEEKLY;BYDAY=WE;COUNT=3
    """))
    assert starts(found) == [utc(2026, 1, 5, 9), utc(2026, 1, 7, 9), utc(2026, 1, 14, 9)]


def test_until_in_utc_with_zoned_dtstart_is_inclusive() -> None:
    rule = """
        DTSTART;TZID=Europe/Berlin:20260310T090000
        DTEND;TZID=Europe/Berlin:20260310T100000
        RRULE:FREQ=DAILY;UNTIL={}
    """
    assert starts(every(cal(rule.format("20260312T080000Z")))) == [utc(2026, 3, d, 8) for d in (10, 11, 12)]
    assert starts(every(cal(rule.format("20260312T075959Z")))) == [utc(2026, 3, d, 8) for d in (10, 11)]
    assert expand.span(cal(rule.format("20260312T080000Z")), BERLIN) == (utc(2026, 3, 10, 8), utc(2026, 3, 12, 9))


def test_until_as_date_with_all_day_series() -> None:
    resource = cal("""
        DTSTART;VALUE=DATE:20260310
        RRULE:FREQ=DAILY;UNTIL=20260312
    """)
    found = every(resource)
    # all-day instances run from local midnight to local midnight in the calendar's zone
    assert times(found) == [(utc(2026, 3, d - 1, 23), utc(2026, 3, d, 23)) for d in (10, 11, 12)]
    assert [i.recurrence_id for i in found] == [date(2026, 3, d) for d in (10, 11, 12)]
    assert all(i.all_day for i in found)


def test_unbounded_series_spans_to_unbounded_and_is_found_far_ahead_fast() -> None:
    resource = cal("""
        DTSTART;TZID=Europe/Berlin:20000103T090000
        DTEND;TZID=Europe/Berlin:20000103T100000
        RRULE:FREQ=DAILY
    """)
    assert expand.span(resource, BERLIN) == (utc(2000, 1, 3, 8), UNBOUNDED)
    began = time.perf_counter()
    found = expand.instances(resource, BERLIN, utc(2030, 7, 1), utc(2030, 7, 3))
    elapsed = time.perf_counter() - began
    assert times(found) == [(utc(2030, 7, 1, 7), utc(2030, 7, 1, 8)), (utc(2030, 7, 2, 7), utc(2030, 7, 2, 8))]
    assert elapsed < 0.05  # the rule is entered near the window, not walked from 2000 (about 0.2 ms)


def test_unbounded_weekly_with_interval_keeps_its_phase_far_ahead() -> None:
    resource = cal("""
        DTSTART:20000103T090000Z
        RRULE:FREQ=WEEKLY;INTERVAL=3;BYDAY=MO,FR
    """)
    found = expand.instances(resource, BERLIN, utc(2030, 1, 1), utc(2030, 2, 1))
    expected = [d for d in (datetime(2000, 1, 3, 9, tzinfo=UTC) + timedelta(weeks=3 * k) for k in range(2000))
                if utc(2030, 1, 1) <= d < utc(2030, 2, 1)]
    assert starts(found) == sorted(expected + [d + timedelta(days=4) for d in expected
                                               if d + timedelta(days=4) < utc(2030, 2, 1)])


def test_monthly_on_the_31st_skips_short_months_far_ahead() -> None:
    resource = cal("""
        DTSTART:20000131T090000Z
        RRULE:FREQ=MONTHLY
    """)
    found = expand.instances(resource, BERLIN, utc(2031, 1, 1), utc(2031, 6, 1))
    assert starts(found) == [utc(2031, 1, 31, 9), utc(2031, 3, 31, 9), utc(2031, 5, 31, 9)]


@pytest.mark.parametrize("rule", [
    "FREQ=DAILY;INTERVAL=3;BYDAY=MO",
    "FREQ=WEEKLY;INTERVAL=2;WKST=SU;BYDAY=SU,TU",
    "FREQ=WEEKLY;INTERVAL=3;BYDAY=MO,WE,FR;BYSETPOS=-1",
    "FREQ=MONTHLY;INTERVAL=5;BYDAY=-1FR",
    "FREQ=MONTHLY;BYDAY=MO,TU,WE,TH,FR;BYSETPOS=1,-1",
    "FREQ=MONTHLY;INTERVAL=2;BYMONTHDAY=31,-3",
    "FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=29",
    "FREQ=YEARLY;INTERVAL=2;BYWEEKNO=1,53;BYDAY=TH",
    "FREQ=YEARLY;BYYEARDAY=-1,100",
    "FREQ=YEARLY;BYDAY=20MO",
    "FREQ=HOURLY;INTERVAL=37;BYHOUR=9,10,11",
    "FREQ=MINUTELY;INTERVAL=1441;BYDAY=SA",
])
def test_entering_a_rule_far_ahead_matches_walking_it_from_dtstart(rule: str) -> None:
    resource = cal(f"DTSTART:20000229T093000Z\nRRULE:{rule}")
    window = (utc(2031, 1, 1), utc(2033, 1, 1))
    lo, hi = (moment.replace(tzinfo=None) for moment in window)
    walking = du.rrulestr(rule, dtstart=datetime(2000, 2, 29, 9, 30))
    walked = [v.replace(tzinfo=UTC) for v in walking.between(lo, hi, inc=True) if v < hi]
    assert walked, "the rule should have instances in the window"
    assert starts(expand.instances(resource, BERLIN, *window)) == walked


# --- 2. EXDATE, RDATE -------------------------------------------------------------------------

def test_exdate_several_values_on_one_line() -> None:
    found = every(cal("""
        DTSTART;TZID=Europe/Berlin:20260105T090000
        RRULE:FREQ=DAILY;COUNT=5
        EXDATE;TZID=Europe/Berlin:20260106T090000,20260108T090000
    """))
    assert starts(found) == [utc(2026, 1, d, 8) for d in (5, 7, 9)]


def test_exdate_in_utc_or_another_zone_matches_by_instant() -> None:
    found = every(cal("""
        DTSTART;TZID=Europe/Berlin:20260105T090000
        RRULE:FREQ=DAILY;COUNT=5
        EXDATE:20260106T080000Z
        EXDATE;TZID=America/New_York:20260108T030000
        EXDATE:20260109T090000Z
    """))
    # the last EXDATE names 10:00 Berlin, which is no instance: nothing else disappears
    assert starts(found) == [utc(2026, 1, d, 8) for d in (5, 7, 9)]


def test_exdate_as_date_in_a_timed_series_removes_that_local_day() -> None:
    found = every(cal("""
        DTSTART;TZID=Europe/Berlin:20260105T090000
        RRULE:FREQ=DAILY;COUNT=3
        EXDATE;VALUE=DATE:20260106
    """))
    assert starts(found) == [utc(2026, 1, 5, 8), utc(2026, 1, 7, 8)]


def test_rdate_date_time_and_period_from_fixture() -> None:
    found = every(fixture("expand_rdate_period.ics"))
    assert times(found) == [
        (utc(2026, 3, 2, 9), utc(2026, 3, 2, 10)),
        (utc(2026, 3, 4, 12), utc(2026, 3, 4, 15)),  # PERIOD start/end: its own length wins
        (utc(2026, 3, 5, 9), utc(2026, 3, 5, 10)),  # plain RDATE: the master's length
        (utc(2026, 3, 6, 8), utc(2026, 3, 6, 8, 30)),  # PERIOD start/duration
    ]
    assert [i.recurrence_id for i in found] == [utc(2026, 3, 2, 9), utc(2026, 3, 4, 12), utc(2026, 3, 5, 9),
                                                utc(2026, 3, 6, 8)]
    assert expand.span(fixture("expand_rdate_period.ics"), BERLIN) == (utc(2026, 3, 2, 9), utc(2026, 3, 6, 8, 30))


def test_rdate_date_in_an_all_day_series() -> None:
    found = every(cal("""
        DTSTART;VALUE=DATE:20260701
        DTEND;VALUE=DATE:20260703
        RDATE;VALUE=DATE:20260710,20260720
        EXDATE;VALUE=DATE:20260720
    """))
    assert times(found) == [(utc(2026, 6, 30, 22), utc(2026, 7, 2, 22)), (utc(2026, 7, 9, 22), utc(2026, 7, 11, 22))]


def test_rdate_period_equal_to_a_rule_instance_replaces_its_length_once() -> None:
    found = every(cal("""
        DTSTART:20260302T090000Z
        DURATION:PT1H
        RRULE:FREQ=DAILY;COUNT=2
        RDATE;VALUE=PERIOD:20260303T090000Z/PT4H
    """))
    assert times(found) == [(utc(2026, 3, 2, 9), utc(2026, 3, 2, 10)), (utc(2026, 3, 3, 9), utc(2026, 3, 3, 13))]


# --- 3. several RRULEs --------------------------------------------------------------------------

def test_several_rrules_make_a_union_without_duplicates() -> None:
    found = every(cal("""
        DTSTART:20260302T090000Z
        DTEND:20260302T100000Z
        RRULE:FREQ=WEEKLY;BYDAY=MO,WE;COUNT=4
        RRULE:FREQ=WEEKLY;BYDAY=MO,FR;COUNT=4
    """))
    assert starts(found) == [utc(2026, 3, d, 9) for d in (2, 4, 6, 9, 11, 13)]


# --- 4. overrides -----------------------------------------------------------------------------

WEEKLY_FIVE = """
    DTSTART;TZID=Europe/Berlin:20260105T090000
    DTEND;TZID=Europe/Berlin:20260105T100000
    RRULE:FREQ=WEEKLY;COUNT=5
"""


def test_override_moves_and_resizes_one_instance() -> None:
    found = every(cal(WEEKLY_FIVE, """
        RECURRENCE-ID;TZID=Europe/Berlin:20260112T090000
        DTSTART;TZID=Europe/Berlin:20260113T140000
        DTEND;TZID=Europe/Berlin:20260113T170000
        SUMMARY:moved
    """))
    assert times(found)[1] == (utc(2026, 1, 13, 13), utc(2026, 1, 13, 16))
    assert found[1].recurrence_id == datetime(2026, 1, 12, 9, tzinfo=BERLIN)
    assert found[1].component["SUMMARY"] == "moved"
    assert len(found) == 5


def test_override_moved_into_the_window_from_outside() -> None:
    resource = cal(WEEKLY_FIVE, """
        RECURRENCE-ID:20260126T080000Z
        DTSTART;TZID=Europe/Berlin:20260108T120000
        DTEND;TZID=Europe/Berlin:20260108T130000
    """)
    found = expand.instances(resource, BERLIN, utc(2026, 1, 7), utc(2026, 1, 10))
    assert times(found) == [(utc(2026, 1, 8, 11), utc(2026, 1, 8, 12))]
    assert found[0].recurrence_id == datetime(2026, 1, 26, 9, tzinfo=BERLIN)  # named as the master names it


def test_override_moved_out_of_the_window() -> None:
    resource = cal(WEEKLY_FIVE, """
        RECURRENCE-ID;TZID=Europe/Berlin:20260112T090000
        DTSTART;TZID=Europe/Berlin:20260301T090000
        DTEND;TZID=Europe/Berlin:20260301T100000
    """)
    assert expand.instances(resource, BERLIN, utc(2026, 1, 11), utc(2026, 1, 14)) == []
    assert expand.span(resource, BERLIN) == (utc(2026, 1, 5, 8), utc(2026, 3, 1, 9))


def test_cancelled_override_exists_but_is_free() -> None:
    found = every(cal(WEEKLY_FIVE, """
        RECURRENCE-ID;TZID=Europe/Berlin:20260112T090000
        DTSTART;TZID=Europe/Berlin:20260112T090000
        DTEND;TZID=Europe/Berlin:20260112T100000
        STATUS:CANCELLED
    """))
    assert len(found) == 5
    assert [i.busy for i in found] == [BusyType.BUSY, None, BusyType.BUSY, BusyType.BUSY, BusyType.BUSY]


def test_exdate_wins_over_an_override_of_the_same_instance() -> None:
    found = every(cal(WEEKLY_FIVE + "EXDATE;TZID=Europe/Berlin:20260112T090000", """
        RECURRENCE-ID;TZID=Europe/Berlin:20260112T090000
        DTSTART;TZID=Europe/Berlin:20260113T090000
        DTEND;TZID=Europe/Berlin:20260113T100000
    """))
    assert starts(found) == [utc(2026, 1, d, 8) for d in (5, 19, 26)] + [utc(2026, 2, 2, 8)]


def test_highest_sequence_wins_between_two_overrides() -> None:
    found = every(cal(WEEKLY_FIVE, """
        RECURRENCE-ID;TZID=Europe/Berlin:20260112T090000
        SEQUENCE:2
        DTSTART;TZID=Europe/Berlin:20260112T150000
    """, """
        RECURRENCE-ID;TZID=Europe/Berlin:20260112T090000
        SEQUENCE:1
        DTSTART;TZID=Europe/Berlin:20260112T120000
    """))
    assert found[1].start == utc(2026, 1, 12, 14)
    assert len(found) == 5


def test_thisandfuture_shifts_later_instances_and_an_individual_override_still_wins() -> None:
    found = every(fixture("expand_thisandfuture.ics"))
    assert times(found) == [
        (utc(2026, 3, 2, 8), utc(2026, 3, 2, 9)),
        (utc(2026, 3, 9, 8), utc(2026, 3, 9, 9)),
        (utc(2026, 3, 16, 10), utc(2026, 3, 16, 10, 30)),  # the THISANDFUTURE override itself
        (utc(2026, 3, 23, 10), utc(2026, 3, 23, 10, 30)),  # +2 h, 30 minutes
        (utc(2026, 3, 30, 9), utc(2026, 3, 30, 9, 30)),  # still 11:00 local after the DST change
        (utc(2026, 4, 7, 13), utc(2026, 4, 7, 14)),  # individual override of 6 April
        (utc(2026, 4, 13, 9), utc(2026, 4, 13, 9, 30)),
        (utc(2026, 4, 20, 9), utc(2026, 4, 20, 9, 30)),
    ]
    assert [i.busy for i in found] == [BusyType.BUSY] * 2 + [BusyType.BUSY_TENTATIVE] * 3 + [BusyType.BUSY] + [
        BusyType.BUSY_TENTATIVE] * 2
    assert found[3].recurrence_id == datetime(2026, 3, 23, 9, tzinfo=BERLIN)
    assert str(found[3].component["SUMMARY"]) == "Team meeting (later, shorter)"
    # a window that only the shifted instance reaches
    shifted = expand.instances(fixture("expand_thisandfuture.ics"), BERLIN, utc(2026, 3, 23, 10, 15),
                               utc(2026, 3, 23, 11))
    assert times(shifted) == [(utc(2026, 3, 23, 10), utc(2026, 3, 23, 10, 30))]


def test_thisandfuture_span_uses_the_shifted_tail() -> None:
    assert expand.span(fixture("expand_thisandfuture.ics"), BERLIN) == (utc(2026, 3, 2, 8), utc(2026, 4, 20, 9, 30))


# --- 5. overrides only --------------------------------------------------------------------------

def test_resource_with_only_overrides() -> None:
    resource = fixture("expand_overrides_only.ics")
    found = every(resource)
    assert times(found) == [(utc(2026, 3, 9, 14), utc(2026, 3, 9, 15)), (utc(2026, 3, 24, 18), utc(2026, 3, 24, 19))]
    assert found[1].recurrence_id == datetime(2026, 3, 23, 10, tzinfo=NEW_YORK)
    assert expand.span(resource, BERLIN) == (utc(2026, 3, 9, 14), utc(2026, 3, 24, 19))
    assert expand.materialise(resource, BERLIN, UNBOUNDED, 10) == (found, UNBOUNDED)


# --- 6. an override carrying its own RRULE --------------------------------------------------------

def test_rrule_inside_an_override_is_ignored() -> None:
    # RFC 5545 §3.8.4.4: RECURRENCE-ID identifies one instance; the override replaces exactly that
    # instance, and a recurrence rule inside it defines nothing (recurring-ical-events agrees).
    found = every(cal(WEEKLY_FIVE, """
        RECURRENCE-ID;TZID=Europe/Berlin:20260112T090000
        DTSTART;TZID=Europe/Berlin:20260112T180000
        DTEND;TZID=Europe/Berlin:20260112T190000
        RRULE:FREQ=DAILY;COUNT=10
        RDATE:20260301T100000Z
    """))
    assert len(found) == 5
    assert found[1].start == utc(2026, 1, 12, 17)


# --- 7. window edges and zero-length instances -------------------------------------------------

def test_instance_starting_at_the_window_end_does_not_match() -> None:
    resource = cal("DTSTART:20260302T090000Z\nDTEND:20260302T100000Z")
    assert expand.instances(resource, BERLIN, utc(2026, 3, 2, 8), utc(2026, 3, 2, 9)) == []
    assert expand.instances(resource, BERLIN, utc(2026, 3, 2, 10), utc(2026, 3, 2, 11)) == []
    assert len(expand.instances(resource, BERLIN, utc(2026, 3, 2, 9, 59), utc(2026, 3, 2, 11))) == 1


@pytest.mark.parametrize("length", ["DTEND:20260302T090000Z", "DURATION:PT0S", ""])
def test_zero_length_instance_at_the_window_start_matches(length: str) -> None:
    resource = cal("DTSTART:20260302T090000Z\n" + length)
    found = expand.instances(resource, BERLIN, utc(2026, 3, 2, 9), utc(2026, 3, 2, 10))
    assert times(found) == [(utc(2026, 3, 2, 9), utc(2026, 3, 2, 9))]
    assert expand.instances(resource, BERLIN, utc(2026, 3, 2, 8), utc(2026, 3, 2, 9)) == []


def test_date_without_dtend_lasts_one_day() -> None:
    found = every(cal("DTSTART;VALUE=DATE:20260302"))
    assert times(found) == [(utc(2026, 3, 1, 23), utc(2026, 3, 2, 23))]


@pytest.mark.parametrize(("inst", "window", "expected"), [
    ((9, 10), (10, 11), False),
    ((9, 10), (8, 9), False),
    ((9, 10), (9, 9), False),
    ((9, 10), (8, 12), True),
    ((9, 9), (9, 10), True),
    ((9, 9), (8, 9), False),
    ((9, 8), (9, 10), True),  # end before start: treated as an instant
])
def test_overlaps_table(inst: tuple[int, int], window: tuple[int, int], expected: bool) -> None:
    assert expand.overlaps(utc(2026, 1, 1, inst[0]), utc(2026, 1, 1, inst[1]),
                           utc(2026, 1, 1, window[0]), utc(2026, 1, 1, window[1])) is expected


# --- 8. floating, all-day, DST -----------------------------------------------------------------

def test_floating_time_is_read_in_the_calendar_zone() -> None:
    resource = cal("DTSTART:20260701T090000\nDTEND:20260701T100000")
    assert times(every(resource, BERLIN)) == [(utc(2026, 7, 1, 7), utc(2026, 7, 1, 8))]
    assert times(every(resource, NEW_YORK)) == [(utc(2026, 7, 1, 13), utc(2026, 7, 1, 14))]
    assert every(resource)[0].recurrence_id is None


def test_all_day_on_the_dst_day_lasts_23_hours() -> None:
    found = every(cal("DTSTART;VALUE=DATE:20260329\nDTEND;VALUE=DATE:20260330"))
    assert times(found) == [(utc(2026, 3, 28, 23), utc(2026, 3, 29, 22))]
    assert found[0].all_day


def test_zoned_weekly_series_keeps_wall_clock_across_dst() -> None:
    found = every(cal("""
        DTSTART;TZID=Europe/Berlin:20260316T090000
        DTEND;TZID=Europe/Berlin:20260316T100000
        RRULE:FREQ=WEEKLY;COUNT=4
    """))
    assert starts(found) == [utc(2026, 3, 16, 8), utc(2026, 3, 23, 8), utc(2026, 3, 30, 7), utc(2026, 4, 6, 7)]


def test_utc_series_stays_utc_across_dst() -> None:
    found = every(cal("DTSTART:20260316T080000Z\nRRULE:FREQ=WEEKLY;COUNT=4"))
    assert starts(found) == [utc(2026, 3, d, 8) for d in (16, 23, 30)] + [utc(2026, 4, 6, 8)]


def test_floating_series_follows_the_calendar_zone_across_dst() -> None:
    found = every(cal("DTSTART:20261024T090000\nRRULE:FREQ=DAILY;COUNT=2"), NEW_YORK)
    assert starts(found) == [utc(2026, 10, 24, 13), utc(2026, 10, 25, 13)]
    found = every(cal("DTSTART:20261024T090000\nRRULE:FREQ=DAILY;COUNT=2"), BERLIN)
    assert starts(found) == [utc(2026, 10, 24, 7), utc(2026, 10, 25, 8)]


def test_custom_vtimezone_definition_is_honoured() -> None:
    vtimezone = (FIXTURES / "weekly_override_exdate_issue3.ics").read_text().split("BEGIN:VEVENT")[0]
    vtimezone = vtimezone.split("PRODID:-//calbridge//tests//EN\n")[1].replace("Europe/Berlin", "Office Time")
    found = every(cal("""
        DTSTART;TZID=Office Time:20260323T090000
        RRULE:FREQ=WEEKLY;COUNT=2
    """, extra=vtimezone.replace("\n", "\r\n")), NEW_YORK)
    assert starts(found) == [utc(2026, 3, 23, 8), utc(2026, 3, 30, 7)]


def test_nonexistent_wall_time_uses_the_offset_before_the_gap() -> None:
    found = every(cal("""
        DTSTART;TZID=Europe/Berlin:20260328T023000
        DTEND;TZID=Europe/Berlin:20260328T033000
        RRULE:FREQ=DAILY;COUNT=2
    """))
    # 29 March 02:30 does not exist: it is read as 02:30 CET = 01:30Z (RFC 5545 §3.3.5); DTEND is exact
    assert times(found) == [(utc(2026, 3, 28, 1, 30), utc(2026, 3, 28, 2, 30)),
                            (utc(2026, 3, 29, 1, 30), utc(2026, 3, 29, 2, 30))]


# --- 9. DURATION and malformed ends ------------------------------------------------------------

def test_duration_instead_of_dtend() -> None:
    found = every(cal("DTSTART;TZID=Europe/Berlin:20260302T090000\nDURATION:PT1H30M\nRRULE:FREQ=DAILY;COUNT=2"))
    assert times(found) == [(utc(2026, 3, d, 8), utc(2026, 3, d, 9, 30)) for d in (2, 3)]


def test_duration_in_days_is_nominal_across_dst() -> None:
    found = every(cal("DTSTART;TZID=Europe/Berlin:20260328T120000\nDURATION:P1D"))
    assert times(found) == [(utc(2026, 3, 28, 11), utc(2026, 3, 29, 10))]  # 23 real hours


def test_dtend_before_dtstart_is_zero_length() -> None:
    resource = cal("DTSTART:20260302T090000Z\nDTEND:20260302T080000Z\nRRULE:FREQ=DAILY;COUNT=2")
    assert times(every(resource)) == [(utc(2026, 3, d, 9), utc(2026, 3, d, 9)) for d in (2, 3)]
    assert expand.span(resource, BERLIN) == (utc(2026, 3, 2, 9), utc(2026, 3, 3, 9))


# --- 10. garbage --------------------------------------------------------------------------------

@pytest.mark.parametrize("body", [
    "DTSTART:20260302T090000Z\nRRULE:FREQ=FORTNIGHTLY",
    "DTSTART:20260302T090000Z\nRRULE:garbage",
    "DTSTART:20260302T090000Z\nRRULE:FREQ=DAILY;INTERVAL=0",
    "DTSTART:20260302T090000Z\nRRULE:FREQ=DAILY;COUNT=0",
    "DTSTART:20260302T090000Z\nRRULE:FREQ=MONTHLY;BYMONTHDAY=32",
    "DTSTART:20260302T090000Z\nRRULE:FREQ=DAILY;BYDAY=XX",
    "DTSTART:20260302T090000Z\nRRULE:FREQ=DAILY;FOO=1",
    "DTSTART:20260302T090000Z\nRRULE:FREQ=YEARLY;RSCALE=HEBREW",
    "DTSTART:20260302T090000Z\nEXDATE:tomorrow",
    "DTSTART:20260302T090000Z\nDURATION:soon",
    "SUMMARY:no start",
    "DTSTART:2026",
])
def test_garbage_raises_expansion_error(body: str) -> None:
    resource = cal(body)
    with pytest.raises(ExpansionError):
        expand.instances(resource, BERLIN, *WIDE)
    with pytest.raises(ValueError):  # callers may catch ValueError too
        expand.span(resource, BERLIN)


def test_resource_without_vevent_raises() -> None:
    with pytest.raises(ExpansionError):
        expand.span(parse_calendar("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n"), BERLIN)


@pytest.mark.parametrize("rule", ["FREQ=DAILY;BYMONTH=2;BYMONTHDAY=30", "FREQ=HOURLY;BYMONTH=4;BYMONTHDAY=31",
                                  "FREQ=WEEKLY;BYDAY=MO;BYSETPOS=3"])
def test_impossible_rule_leaves_dtstart_and_does_not_hang(rule: str) -> None:
    resource = cal(f"DTSTART:20260302T090000Z\nRRULE:{rule}")
    began = time.perf_counter()
    assert starts(every(resource)) == [utc(2026, 3, 2, 9)]
    assert expand.span(resource, BERLIN) == (utc(2026, 3, 2, 9), utc(2026, 3, 2, 9))
    assert time.perf_counter() - began < 2


def test_too_many_instances_is_refused() -> None:
    resource = cal("DTSTART:20000101T000000Z\nRRULE:FREQ=HOURLY")
    with pytest.raises(TooManyInstances):
        expand.instances(resource, BERLIN, utc(2000, 1, 1), utc(2030, 1, 1), max_instances=1000)


# --- busy types ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("props", "busy"), [
    ("", BusyType.BUSY),
    ("TRANSP:TRANSPARENT", None),
    ("STATUS:CANCELLED", None),
    ("STATUS:TENTATIVE", BusyType.BUSY_TENTATIVE),
    ("STATUS:CONFIRMED\nTRANSP:OPAQUE", BusyType.BUSY),
    ("X-MICROSOFT-CDO-BUSYSTATUS:OOF", BusyType.BUSY_UNAVAILABLE),
    ("X-MICROSOFT-CDO-BUSYSTATUS:FREE", None),
    ("X-MICROSOFT-CDO-BUSYSTATUS:WORKINGELSEWHERE", None),
    ("X-MICROSOFT-CDO-BUSYSTATUS:TENTATIVE", BusyType.BUSY_TENTATIVE),
])
def test_busy_type(props: str, busy: BusyType | None) -> None:
    found = every(cal("DTSTART:20260302T090000Z\nDTEND:20260302T100000Z\n" + props))
    assert found[0].busy == busy


# --- span, materialise, expand ------------------------------------------------------------------

def test_span_of_an_excluded_only_series_is_the_master() -> None:
    resource = cal("DTSTART:20260302T090000Z\nDTEND:20260302T100000Z\nRRULE:FREQ=DAILY;COUNT=1\n"
                   "EXDATE:20260302T090000Z")
    assert every(resource) == []
    assert expand.span(resource, BERLIN) == (utc(2026, 3, 2, 9), utc(2026, 3, 2, 10))


def test_span_when_dtstart_is_excluded_starts_at_the_next_instance() -> None:
    resource = cal("DTSTART:20260302T090000Z\nRRULE:FREQ=MONTHLY\nEXDATE:20260302T090000Z")
    assert expand.span(resource, BERLIN) == (utc(2026, 4, 2, 9), UNBOUNDED)


def test_materialise_lists_until_and_reports_where_it_stopped() -> None:
    resource = cal("DTSTART:20260302T090000Z\nDTEND:20260302T100000Z\nRRULE:FREQ=DAILY")
    listed, complete_until = expand.materialise(resource, BERLIN, utc(2026, 3, 5), 100)
    assert times(listed) == [(utc(2026, 3, d, 9), utc(2026, 3, d, 10)) for d in (2, 3, 4)]
    assert complete_until == utc(2026, 3, 5, 9)
    listed, complete_until = expand.materialise(resource, BERLIN, utc(2027, 1, 1), 2)
    assert len(listed) == 2 and complete_until == utc(2026, 3, 4, 9)


def test_materialise_of_a_bounded_series_is_complete() -> None:
    listed, complete_until = expand.materialise(fixture("weekly_override_exdate_issue3.ics"), BERLIN, UNBOUNDED, 100)
    assert complete_until == UNBOUNDED
    assert times(listed) == [
        (utc(2026, 12, 7, 8), utc(2026, 12, 7, 8, 30)),
        (utc(2026, 12, 16, 13), utc(2026, 12, 16, 13, 30)),
        (utc(2026, 12, 28, 8), utc(2026, 12, 28, 8, 30)),
        (utc(2027, 1, 4, 8), utc(2027, 1, 4, 8, 30)),
        (utc(2027, 1, 11, 8), utc(2027, 1, 11, 8, 30)),
    ]


def test_materialise_counts_an_override_moved_ahead_in_order() -> None:
    resource = cal(WEEKLY_FIVE, """
        RECURRENCE-ID;TZID=Europe/Berlin:20260105T090000
        DTSTART;TZID=Europe/Berlin:20260130T090000
        DTEND;TZID=Europe/Berlin:20260130T100000
    """)
    listed, complete_until = expand.materialise(resource, BERLIN, UNBOUNDED, 3)
    assert starts(listed) == [utc(2026, 1, d, 8) for d in (12, 19, 26)]
    assert complete_until == utc(2026, 1, 30, 8)


def test_materialise_lists_cancelled_instances_with_their_busy_type() -> None:
    resource = cal(WEEKLY_FIVE, """
        RECURRENCE-ID;TZID=Europe/Berlin:20260112T090000
        DTSTART;TZID=Europe/Berlin:20260112T090000
        STATUS:CANCELLED
    """)
    listed, _ = expand.materialise(resource, BERLIN, UNBOUNDED, 10)
    assert [i.busy for i in listed] == [BusyType.BUSY, None, BusyType.BUSY, BusyType.BUSY, BusyType.BUSY]


@pytest.mark.parametrize(("body", "expected"), [
    ("DTSTART;TZID=Europe/Berlin:20260302T090000\nDURATION:PT45M", (utc(2026, 3, 2, 8), utc(2026, 3, 2, 8, 45))),
    ("DTSTART;VALUE=DATE:20260329", (utc(2026, 3, 28, 23), utc(2026, 3, 29, 22))),
    ("DTSTART:20260302T090000", (utc(2026, 3, 2, 8), utc(2026, 3, 2, 8))),
    ("DTSTART:20260302T090000Z\nDTEND:20260302T080000Z", (utc(2026, 3, 2, 9), utc(2026, 3, 2, 9))),
])
def test_bounds_of_one_component(body: str, expected: tuple[datetime, datetime]) -> None:
    (event,) = cal(body).walk("VEVENT")
    assert isinstance(event, icalendar.Event)
    assert expand.bounds(event, BERLIN) == expected


def test_bounds_and_busy_type_of_garbage() -> None:
    (event,) = cal("SUMMARY:no start\nSTATUS:TENTATIVE").walk("VEVENT")
    assert isinstance(event, icalendar.Event)
    with pytest.raises(ExpansionError):
        expand.bounds(event, BERLIN)
    assert expand.busy_type(event) == BusyType.BUSY_TENTATIVE
    assert str(expand.busy_type(event)) == "BUSY-TENTATIVE"  # stored as text


def test_far_edges_are_clamped() -> None:
    resource = cal("DTSTART:99991231T000000Z\nDURATION:P30D\nRRULE:FREQ=DAILY")
    assert expand.span(resource, BERLIN) == (utc(9999, 12, 31), UNBOUNDED)
    found = expand.instances(resource, BERLIN, EARLIEST, UNBOUNDED)
    assert times(found) == [(utc(9999, 12, 31), UNBOUNDED)]


def test_expanded_components_for_caldav_expand() -> None:
    resource = fixture("weekly_override_exdate_issue3.ics")
    out = expand.expanded_components(resource, BERLIN, utc(2026, 12, 10), utc(2027, 1, 1))
    events = list(out.walk("VEVENT"))
    assert not list(out.walk("VTIMEZONE"))
    rows = [(e.decoded("DTSTART"), e.decoded("DTEND"), e.decoded("RECURRENCE-ID"), str(e["SUMMARY"])) for e in events]
    assert rows == [
        (utc(2026, 12, 16, 13), utc(2026, 12, 16, 13, 30), utc(2026, 12, 14, 8), "Weekly stand-up (moved)"),
        (utc(2026, 12, 28, 8), utc(2026, 12, 28, 8, 30), utc(2026, 12, 28, 8), "Weekly stand-up"),
    ]
    assert all("RRULE" not in e and "EXDATE" not in e for e in events)
    text = out.to_ical().decode()
    assert "DTSTART:20261228T080000Z" in text and "RECURRENCE-ID:20261214T080000Z" in text


def test_expanded_components_keep_dates_for_all_day() -> None:
    resource = cal("DTSTART;VALUE=DATE:20260328\nDTEND;VALUE=DATE:20260329\nRRULE:FREQ=DAILY;COUNT=3")
    out = expand.expanded_components(resource, BERLIN, utc(2026, 3, 29), utc(2026, 3, 29, 12))
    assert [(e.decoded("DTSTART"), e.decoded("DTEND"), e.decoded("RECURRENCE-ID")) for e in out.walk("VEVENT")] == [
        (date(2026, 3, 29), date(2026, 3, 30), date(2026, 3, 29))]


def test_expanded_single_event_has_no_recurrence_id() -> None:
    out = expand.expanded_components(cal("DTSTART;TZID=Europe/Berlin:20260302T090000"), BERLIN, *WIDE)
    (event,) = out.walk("VEVENT")
    assert "RECURRENCE-ID" not in event and "DTEND" not in event
    assert event.decoded("DTSTART") == utc(2026, 3, 2, 8)


def test_window_bounds_must_be_aware() -> None:
    with pytest.raises(TypeError):
        expand.instances(cal("DTSTART:20260302T090000Z"), BERLIN, datetime(2026, 1, 1), utc(2027, 1, 1))
