"""bridge.expand.instances cross-checked against an independent expansion (recurring-ical-events).

Generated resources: a master (zoned Europe/Berlin or America/New_York, UTC, floating, all-day)
with DAILY/WEEKLY/MONTHLY rules (COUNT, UNTIL or open-ended; BYDAY; sometimes two RRULEs), EXDATEs
(same zone or UTC, several per line), RDATEs, and overrides (moved, resized, cancelled, transparent,
sometimes naming no instance at all), or overrides without a master; a random window, often with
edges exactly on instance boundaries.

We compare every instance, cancelled and transparent ones included, as a multiset of
(start UTC, end UTC, busy type): recurring-ical-events returns cancelled overrides as occurrences
too, so comparing all of them checks the instant arithmetic *and* which component governs each
instance (the busy type is read from the component it returns).

Conventions bridged, and where generation stays inside the region both must agree on:
* recurring-ical-events compares floating and all-day values with the window in the window's own
  zone, so the window is passed as aware datetimes in the calendar zone ``tz``; its naive results
  are then read in ``tz``, as bridge.expand reads floating values.
* It computes lengths in wall-clock time (DTEND - DTSTART on the same tzinfo), RFC 5545 asks for an
  exact duration with DTEND; the two only differ when an instance crosses a DST change or lies in a
  gap, so timed events start between 06:00 and 19:45 and last at most 4 hours.
* It adds DTSTART as an extra instance when DTSTART does not match the rule and does not count it
  towards COUNT, RFC 5545 §3.3.10 counts it: DTSTART is always synchronised with the rule here.
* It drops DTSTART when DTSTART is after UNTIL: UNTIL is never before DTSTART here.
* Bug found in recurring-ical-events 3.8.2 (``util.to_recurrence_ids``): it identifies an instance by
  its UTC time *and* its wall-clock time, both naive, in one set, so an EXDATE or RECURRENCE-ID whose
  UTC clock reading equals the local wall clock of another instance (two times exactly one UTC offset
  apart, e.g. EXDATE 08:00 Europe/Berlin in summer = 06:00Z removes an RDATE at 06:00 Berlin) removes
  or overrides that other instance. Generation steers clear of such pairs (``_collides``).
* It swaps DTEND and DTSTART when DTEND is earlier, bridge.expand makes such an instance
  zero-length: ends are never before starts here. THISANDFUTURE and RDATE PERIODs are covered by
  named tests in test_expand.py, not here.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

import icalendar
import recurring_ical_events  # type: ignore[import-untyped, unused-ignore]
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from bridge import expand

ZONES = {"berlin": ZoneInfo("Europe/Berlin"), "new_york": ZoneInfo("America/New_York"), "utc": ZoneInfo("UTC")}
KINDS = ["berlin", "new_york", "utc", "floating", "date"]
WEEKDAYS = ["MO", "TU", "WE", "TH", "FR", "SA", "SU"]

Row = tuple[datetime, datetime, object]


def fmt(value: date | datetime, kind: str) -> str:
    """A property's parameters and value (after the name) for the given kind of time."""
    if kind == "date":
        return f";VALUE=DATE:{value:%Y%m%d}"
    assert isinstance(value, datetime)
    if kind == "utc":
        return f":{value:%Y%m%dT%H%M%S}Z"
    if kind == "floating":
        return f":{value:%Y%m%dT%H%M%S}"
    return f";TZID={ZONES[kind].key}:{value:%Y%m%dT%H%M%S}"


def as_utc(value: date | datetime, tz: tzinfo) -> datetime:
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return value.astimezone(UTC)


def busy_of(component: icalendar.cal.Component) -> object:
    """FBTYPE as RFC 4791 §7.10 reads the component (here: STATUS and TRANSP only)."""
    if str(component.get("STATUS", "")) == "CANCELLED" or str(component.get("TRANSP", "")) == "TRANSPARENT":
        return None
    if str(component.get("STATUS", "")) == "TENTATIVE":
        return expand.BusyType.BUSY_TENTATIVE
    return expand.BusyType.BUSY


def wall_start(draw: st.DrawFn, kind: str) -> date | datetime:
    day = draw(st.dates(date(2025, 6, 1), date(2027, 6, 30)))
    if kind == "date":
        return day
    return datetime(day.year, day.month, day.day, draw(st.integers(6, 19)), draw(st.sampled_from([0, 15, 30, 45])))


def length_lines(draw: st.DrawFn, start: date | datetime, kind: str) -> list[str]:
    how = draw(st.sampled_from(["DTEND", "DURATION", "none"]))
    if how == "none":
        return []
    if kind == "date":
        days = draw(st.integers(1, 3))
        return [f"DTEND{fmt(start + timedelta(days=days), kind)}" if how == "DTEND" else f"DURATION:P{days}D"]
    minutes = draw(st.sampled_from([0, 15, 30, 60, 90, 240]))
    if how == "DTEND":
        return [f"DTEND{fmt(start + timedelta(minutes=minutes), kind)}"]
    return [f"DURATION:PT{minutes}M"]


def rule_text(draw: st.DrawFn, start: date | datetime, kind: str, tz: tzinfo) -> str:
    freq = draw(st.sampled_from(["DAILY", "WEEKLY", "MONTHLY"]))
    parts = [f"FREQ={freq}"]
    interval = draw(st.integers(1, 3))
    if interval > 1:
        parts.append(f"INTERVAL={interval}")
    weekday = WEEKDAYS[start.weekday()]
    if freq == "WEEKLY" and draw(st.booleans()):
        others = draw(st.sets(st.sampled_from(WEEKDAYS), max_size=3))
        parts.append("BYDAY=" + ",".join(d for d in WEEKDAYS if d in others | {weekday}))
    if freq == "MONTHLY" and draw(st.booleans()):
        nth = (start.day - 1) // 7 + 1
        parts.append(f"BYDAY={-1 if nth == 5 else nth}{weekday}")  # keeps DTSTART synchronised
    end = draw(st.sampled_from(["COUNT", "UNTIL", "none"]))
    if end == "COUNT":
        parts.append(f"COUNT={draw(st.integers(1, 15))}")
    elif end == "UNTIL":
        until = start + timedelta(days=draw(st.integers(0, 120)))
        if kind == "date":
            parts.append(f"UNTIL={until:%Y%m%d}")
        elif kind == "floating":
            parts.append(f"UNTIL={until:%Y%m%dT%H%M%S}")
        else:
            assert isinstance(until, datetime)
            zone = ZONES[kind]
            moment = until.replace(tzinfo=zone).astimezone(UTC) + timedelta(hours=draw(st.integers(0, 30)))
            parts.append(f"UNTIL={moment:%Y%m%dT%H%M%S}Z")
    return ";".join(parts)


def vevent(lines: list[str]) -> str:
    return "BEGIN:VEVENT\r\nUID:prop@calbridge.test\r\nDTSTAMP:20250101T000000Z\r\n" + "".join(
        line + "\r\n" for line in lines) + "END:VEVENT\r\n"


def calendar(events: list[str]) -> icalendar.Calendar:
    return icalendar.Calendar.from_ical(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calbridge//hypothesis//EN\r\n" + "".join(events)
        + "END:VCALENDAR\r\n")


def reference(resource: icalendar.Calendar, tz: tzinfo, start: datetime, end: datetime) -> Counter[Row]:
    """recurring-ical-events' expansion as (start UTC, end UTC, busy) rows."""
    rows: Counter[Row] = Counter()
    for occurrence in recurring_ical_events.of(resource).between(start.astimezone(tz), end.astimezone(tz)):
        rows[(as_utc(occurrence["DTSTART"].dt, tz), as_utc(occurrence["DTEND"].dt, tz), busy_of(occurrence))] += 1
    return rows


def ours(resource: icalendar.Calendar, tz: tzinfo, start: datetime, end: datetime) -> Counter[Row]:
    return Counter((i.start, i.end, i.busy) for i in expand.instances(resource, tz, start, end))


def status_lines(draw: st.DrawFn) -> list[str]:
    return draw(st.sampled_from([[], [], ["STATUS:CANCELLED"], ["STATUS:TENTATIVE"], ["TRANSP:TRANSPARENT"],
                                 ["STATUS:CONFIRMED", "TRANSP:OPAQUE"]]))


def _naive_ids(value: date | datetime, tz: tzinfo) -> set[datetime]:
    """The identifiers recurring-ical-events gives a time: UTC-naive and wall-naive."""
    if not isinstance(value, datetime):
        return {datetime(value.year, value.month, value.day)}
    if value.tzinfo is None:
        return {value}
    return {value.astimezone(UTC).replace(tzinfo=None), value.replace(tzinfo=None)}


def _collides(names: list[date | datetime], instances: list[date | datetime], tz: tzinfo) -> bool:
    """Whether an EXDATE/RECURRENCE-ID shares a naive identifier with a *different* instant."""
    by_id: dict[datetime, set[datetime]] = {}
    for value in [*names, *instances]:
        for ident in _naive_ids(value, tz):
            by_id.setdefault(ident, set()).add(as_utc(value, tz))
    return any(len(by_id[ident]) > 1 for value in names for ident in _naive_ids(value, tz))


@st.composite
def resources(draw: st.DrawFn) -> tuple[icalendar.Calendar, tzinfo, list[datetime]]:
    """(resource, calendar zone, instance boundaries worth putting window edges on)."""
    tz = ZONES[draw(st.sampled_from(["berlin", "new_york", "utc"]))]
    kind = draw(st.sampled_from(KINDS))
    start = wall_start(draw, kind)
    master = [f"DTSTART{fmt(start, kind)}", *length_lines(draw, start, kind), *status_lines(draw)]
    if draw(st.integers(0, 4)):
        master.append(f"RRULE:{rule_text(draw, start, kind, tz)}")
        if draw(st.integers(0, 5)) == 0:
            master.append(f"RRULE:{rule_text(draw, start, kind, tz)}")
    for _ in range(draw(st.integers(0, 2))):
        master.append(f"RDATE{fmt(wall_start(draw, kind), kind)}")
    # pick EXDATEs and overrides among real instances (and, rarely, a time that is none)
    plain = calendar([vevent(master)])
    window = (datetime(2025, 1, 1, tzinfo=tz), datetime(2029, 1, 1, tzinfo=tz))
    generated = sorted({o["DTSTART"].dt for o in recurring_ical_events.of(plain).between(*window)},
                       key=lambda v: as_utc(v, tz))
    stray = wall_start(draw, kind)  # a time that is (most likely) no instance
    if kind in ZONES and isinstance(stray, datetime):
        stray = stray.replace(tzinfo=ZONES[kind])
    occurrences = [*generated[:40], stray]
    exdates = draw(st.lists(st.sampled_from(occurrences), max_size=3, unique=True))
    if exdates:
        in_utc = kind in ZONES and draw(st.booleans())
        values = [as_utc(v, tz).strftime("%Y%m%dT%H%M%SZ") if in_utc else fmt(v, kind).split(":")[1]
                  for v in exdates]
        params = "" if in_utc else fmt(exdates[0], kind).split(":")[0]
        master.append(f"EXDATE{params}:{','.join(values)}")
    has_master = draw(st.integers(0, 6)) > 0
    events = [vevent(master)] if has_master else []
    rids = draw(st.lists(st.sampled_from(occurrences), max_size=3, unique=True))
    assume(not _collides([*exdates, *rids], generated if has_master else rids, tz))
    for rid in rids:
        moved = rid + timedelta(days=draw(st.integers(-3, 3)))
        if isinstance(moved, datetime):
            moved = moved.replace(hour=draw(st.integers(6, 19)))
        rid_text = (f":{as_utc(rid, tz):%Y%m%dT%H%M%S}Z" if kind in ZONES and draw(st.booleans())
                    else fmt(rid, kind))
        events.append(vevent([f"RECURRENCE-ID{rid_text}", f"DTSTART{fmt(moved, kind)}",
                              *length_lines(draw, moved, kind), *status_lines(draw)]))
    if not events:
        events = [vevent(master)]
    resource = calendar(events)
    wide = reference(resource, tz, *window)
    edges = sorted({moment for row in wide for moment in row[:2]})
    return resource, tz, edges


moments = st.datetimes(datetime(2025, 1, 1), datetime(2028, 12, 31)).map(lambda d: d.replace(tzinfo=UTC))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(resources(), st.data())
def test_instances_agree_with_recurring_ical_events(
        generated: tuple[icalendar.Calendar, tzinfo, list[datetime]], data: st.DataObject) -> None:
    resource, tz, edges = generated
    pick = st.sampled_from(edges) if edges else moments
    start = data.draw(st.one_of(moments, pick), label="start")
    end = data.draw(st.one_of(moments, pick, st.integers(1, 24 * 400).map(lambda h: start + timedelta(hours=h))),
                    label="end")
    if end < start:
        start, end = end, start
    if end == start:
        end = start + timedelta(minutes=1)
    assert ours(resource, tz, start, end) == reference(resource, tz, start, end), resource.to_ical().decode()
