"""Red team: odd VTIMEZONEs against the per-resource zones (bridge.ical.zones).

A VTIMEZONE that dateutil cannot read (no STANDARD or DAYLIGHT, one without DTSTART or offsets)
passed the /dav gate's PUT, which reads with icalendar, but made vobject raise in every later
parse: each calendar-query that Radicale filters itself (a prop-filter beside the time range)
answered 500 for the whole calendar, hiding the owner's other events from every client. And the
zones built from VTIMEZONEs were built and cached by their text in 256 places whatever their size: a
VTIMEZONE of 50,000 RDATEs is 800 KB of text, seconds of CPU and some 4 MB as a zone, per distinct
definition (about 1 GB in all); definitions over 64 KiB now leave their times floating. Likewise
the name cache kept any TZID as its key: 1,024 TZIDs of a megabyte each were a gigabyte.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest

from bridge.ical import zones
from bridge.store import objects
from tests.adversarial.test_timezone_collision import DAY, busy, caldav_query_hrefs
from tests.conftest import Bridge

STAMP = DAY.strftime("%Y%m%d")
HEAD = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//careless//EN\r\n"
FOOT = "END:VCALENDAR\r\n"
STANDARD = "BEGIN:STANDARD\r\nDTSTART:19700101T000000\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\n"


def event(uid: str, tzid: str | None = "Odd") -> str:
    zone = f";TZID={tzid}" if tzid else ""
    return (f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20261201T000000Z\r\nDTSTART{zone}:{STAMP}T090000\r\n"
            f"DTEND{zone}:{STAMP}T100000\r\nSUMMARY:{uid}\r\nEND:VEVENT\r\n")


def vtimezone(body: str, tzid: str = "Odd") -> str:
    return f"BEGIN:VTIMEZONE\r\nTZID:{tzid}\r\n{body}END:VTIMEZONE\r\n"


@pytest.fixture
def bea(bridge: Bridge) -> httpx.Client:
    bridge.add_user("Praxis Berg", "bea")
    bridge.add_calendar("bea", "cal")
    client = bridge.client("bea")
    mine = HEAD + vtimezone(STANDARD, "Mine") + event("mine", "Mine") + FOOT
    assert client.put("/dav/bea/cal/mine.ics", content=mine).status_code == 201
    return client


@pytest.mark.parametrize("definition", [
    "",
    "BEGIN:STANDARD\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\n",
    "BEGIN:DAYLIGHT\r\nDTSTART:19700101T000000\r\nTZOFFSETFROM:+0100\r\nEND:DAYLIGHT\r\n",
], ids=["no-standard-or-daylight", "no-dtstart", "no-tzoffsetto"])
def test_an_unreadable_vtimezone_does_not_hide_the_calendar_from_queries(bridge: Bridge, bea: httpx.Client,
                                                                         definition: str) -> None:
    answer = bea.put("/dav/bea/cal/odd.ics", content=HEAD + vtimezone(definition) + event("odd") + FOOT)
    assert answer.status_code in (201, 400), answer.text
    start = datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC) - timedelta(days=1)
    found = caldav_query_hrefs(bea, "/dav/bea/cal/", start, start + timedelta(days=3))
    assert "mine.ics" in found
    assert bea.get("/dav/bea/cal/").status_code == 200


def test_huge_vtimezones_are_neither_built_nor_kept(bridge: Bridge, bea: httpx.Client) -> None:
    rdates = ",".join(f"{1900 + i // 12:04d}{i % 12 + 1:02d}01T020000" for i in range(5000))
    before = zones._cached_zone.cache_info()
    for n in range(3):
        body = (f"BEGIN:STANDARD\r\nDTSTART:19000101T000000\r\nRDATE:{rdates}\r\nTZOFFSETFROM:+0100\r\n"
                f"TZOFFSETTO:+0{n + 1}00\r\nEND:STANDARD\r\n")
        text = HEAD + vtimezone(body, f"Huge {n}") + event(f"huge{n}", f"Huge {n}") + FOOT
        assert len(text) > zones.MAX_DEFINITION_BYTES
        assert bea.put(f"/dav/bea/cal/huge{n}.ics", content=text).status_code == 201
    after = zones._cached_zone.cache_info()
    assert (after.currsize, after.misses) == (before.currsize, before.misses)
    token = bridge.add_token("Praxis Berg")
    starts = {start for start, _ in busy(bridge, token, bridge.calendar_id("bea", "cal"))}
    # bea's own event at 09:00 in its +01 definition; the huge ones float, in the calendar's zone
    floating = datetime.combine(DAY, time(9), ZoneInfo("Europe/Berlin")).astimezone(UTC)
    assert starts == {f"{DAY:%Y-%m-%d}T08:00:00Z", f"{floating:%Y-%m-%dT%H:%M:%SZ}"}


def test_long_tzids_are_not_kept_in_memory(bridge: Bridge, bea: httpx.Client) -> None:
    before = zones._cached_named_zone.cache_info().currsize
    before_missing = objects._iana_vtimezone.cache_info().currsize
    for n in range(6):
        tzid = f"/{n}{'x' * 100_000}/Europe/Berlin"  # rule 4: a "globally unique" name ending in an IANA one
        answer = bea.put(f"/dav/bea/cal/long{n}.ics", content=HEAD + event(f"long{n}", tzid) + FOOT)
        assert answer.status_code == 201, answer.text
    assert zones._cached_named_zone.cache_info().currsize - before <= 3  # "Europe/Berlin", "Berlin", ...
    assert objects._iana_vtimezone.cache_info().currsize == before_missing  # the VTIMEZONE a PUT lacks
    token = bridge.add_token("Praxis Berg")
    starts = {start for start, _ in busy(bridge, token, bridge.calendar_id("bea", "cal"))}
    berlin = datetime.combine(DAY, time(9), ZoneInfo("Europe/Berlin")).astimezone(UTC)
    assert f"{berlin:%Y-%m-%dT%H:%M:%SZ}" in starts


PLUS14 = "BEGIN:STANDARD\r\nDTSTART:19700101T000000\r\nTZOFFSETFROM:+1400\r\nTZOFFSETTO:+1400\r\nEND:STANDARD\r\n"


@pytest.mark.parametrize("tzid,hour_utc", [
    ("Europe/Berlin", None),  # rule 1: zoneinfo's zone, whatever the VTIMEZONE says
    ("W. Europe Standard Time", None),  # rule 2: CLDR's zone, whatever the VTIMEZONE says
    ("/mozilla.org/20070129_1/Europe/Berlin", 19),  # rule 3 before 4: its own definition, +14:00
])
def test_radicales_own_filters_put_times_where_the_index_does(bridge: Bridge, bea: httpx.Client, tzid: str,
                                                              hour_utc: int | None) -> None:
    """A calendar-query with a prop-filter is filtered by Radicale (vobject); it took the resource's
    VTIMEZONE over the IANA or Windows name, 13 hours from where free/busy and the expand put it."""
    assert bea.put("/dav/bea/cal/plus14.ics", content=HEAD + vtimezone(PLUS14, tzid) + event("p", tzid) + FOOT
                   ).status_code == 201
    nine = datetime.combine(DAY, time(9), ZoneInfo("Europe/Berlin")).astimezone(UTC)
    start = nine if hour_utc is None else datetime.combine(DAY - timedelta(days=1), time(hour_utc), UTC)
    token = bridge.add_token("Praxis Berg")
    assert f"{start:%Y-%m-%dT%H:%M:%SZ}" in {s for s, _ in busy(bridge, token, bridge.calendar_id("bea", "cal"))}
    found = caldav_query_hrefs(bea, "/dav/bea/cal/", start - timedelta(minutes=30), start + timedelta(minutes=30))
    assert "plus14.ics" in found
