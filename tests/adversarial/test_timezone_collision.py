"""One tenant's VTIMEZONE never shifts another tenant's times.

The attack: tenant A (or merely a feed that reuses an Outlook zone name) PUTs an event whose
VTIMEZONE "Customized Time Zone" says +14:00; tenant B's own event names a zone of the same name
that says +01:00. icalendar used to keep the first definition of a name for the whole process,
so B's 09:00 answered as 19:00Z the day before and the booking engine offered B's busy hour.
"""

from __future__ import annotations

import concurrent.futures
import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest

from tests.conftest import Bridge
from tests.servers import ics_feed_server

ZONE = "Customized Time Zone"
DAY = (datetime.now(UTC) + timedelta(days=8)).date()


def vcalendar(uid: str, offset: str, day: date = DAY, hour: int = 9, tzid: str = ZONE) -> str:
    """An event at ``hour`` o'clock local time, in a VTIMEZONE of name ``tzid`` fixed at ``offset``."""
    stamp = day.strftime("%Y%m%d")
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//attacker//EN\r\n"
        f"BEGIN:VTIMEZONE\r\nTZID:{tzid}\r\nBEGIN:STANDARD\r\nDTSTART:19700101T000000\r\n"
        f"TZOFFSETFROM:{offset}\r\nTZOFFSETTO:{offset}\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"
        f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20261201T000000Z\r\n"
        f"DTSTART;TZID={tzid}:{stamp}T{hour:02d}0000\r\nDTEND;TZID={tzid}:{stamp}T{hour + 1:02d}0000\r\n"
        "SUMMARY:Termin\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
    )


def utc_hour(day: date, hour: int) -> str:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def busy(bridge: Bridge, token: str, calendar_id: int, day: date = DAY, days: int = 1) -> list[tuple[str, str]]:
    """The calendar's busy periods from /api/v1/freebusy, as the booking engine reads them."""
    start = datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(days=1)
    with bridge.api(token) as api:
        answer = api.post("/freebusy", json={"calendars": [calendar_id], "start": start.isoformat(),
                                             "end": (start + timedelta(days=days + 2)).isoformat()})
    assert answer.status_code == 200, answer.text
    return [(b["start"], b["end"]) for b in answer.json()["calendars"][0]["busy"]]


def caldav_freebusy(client: httpx.Client, url: str, day: date = DAY) -> str:
    """The calendar's free-busy-query answer (RFC 4791, 7.10) as text."""
    start = (datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(days=1)).strftime("%Y%m%dT%H%M%SZ")
    end = (datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=2)).strftime("%Y%m%dT%H%M%SZ")
    body = ('<?xml version="1.0" encoding="utf-8"?><C:free-busy-query xmlns:C="urn:ietf:params:xml:ns:caldav">'
            f'<C:time-range start="{start}" end="{end}"/></C:free-busy-query>')
    answer = client.request("REPORT", url, content=body, headers={"Depth": "1", "Content-Type": "application/xml"})
    assert answer.status_code == 200, answer.text
    return answer.text


def caldav_query_hrefs(client: httpx.Client, url: str, start: datetime, end: datetime) -> list[str]:
    """A calendar-query with a prop-filter beside the time range: Radicale's own filter (vobject) judges it."""
    body = ('<?xml version="1.0" encoding="utf-8"?>'
            '<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/></D:prop>'
            '<C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
            f'<C:time-range start="{start:%Y%m%dT%H%M%SZ}" end="{end:%Y%m%dT%H%M%SZ}"/>'
            '<C:prop-filter name="SUMMARY"/></C:comp-filter></C:comp-filter></C:filter></C:calendar-query>')
    answer = client.request("REPORT", url, content=body, headers={"Depth": "1", "Content-Type": "application/xml"})
    assert answer.status_code == 207, answer.text
    return [href.split("/")[-1] for href in re.findall(r"<(?:\w+:)?href>([^<]+)</(?:\w+:)?href>", answer.text)]


def two_tenants(bridge: Bridge) -> dict[str, Any]:
    bridge.add_user("Mallory GmbH", "mallory")
    bridge.add_user("Praxis Berg", "bea")
    return {
        "attacker": bridge.add_calendar("mallory", "cal"),
        "victim": bridge.add_calendar("bea", "cal"),
        "victim_id": bridge.calendar_id("bea", "cal"),
        "victim_token": bridge.add_token("Praxis Berg"),
    }


@pytest.mark.parametrize("attacker_first", [True, False], ids=["attacker-first", "victim-first"])
def test_a_same_named_zone_of_another_tenant_does_not_shift_my_times(bridge: Bridge, attacker_first: bool) -> None:
    setup = two_tenants(bridge)
    puts = [(bridge.client("mallory"), setup["attacker"] + "evil.ics", vcalendar("evil", "+1400")),
            (bridge.client("bea"), setup["victim"] + "mine.ics", vcalendar("mine", "+0100"))]
    for client, url, body in puts if attacker_first else reversed(puts):
        with client:
            assert client.put(url, content=body, headers={"Content-Type": "text/calendar"}).status_code == 201

    with bridge.client("mallory") as mallory:  # makes Radicale's own filter (vobject) read his zone first
        window = datetime(DAY.year, DAY.month, DAY.day, tzinfo=UTC) - timedelta(days=1)
        assert caldav_query_hrefs(mallory, setup["attacker"], window, window + timedelta(days=2)) == ["evil.ics"]

    # the victim's 09:00 at +01:00 is 08:00Z, in the JSON API and in CalDAV alike
    assert busy(bridge, setup["victim_token"], setup["victim_id"]) == [(utc_hour(DAY, 8), utc_hour(DAY, 9))]
    with bridge.client("bea") as bea:
        answer = caldav_freebusy(bea, setup["victim"])
    assert f"FREEBUSY;FBTYPE=BUSY:{DAY:%Y%m%d}T080000Z/{DAY:%Y%m%d}T090000Z" in answer.replace("\r\n ", "")
    with bridge.client("bea") as bea:
        stored = bea.get(setup["victim"] + "mine.ics")
        eight = datetime(DAY.year, DAY.month, DAY.day, 8, tzinfo=UTC)
        found = caldav_query_hrefs(bea, setup["victim"], eight, eight + timedelta(minutes=30))
    assert stored.status_code == 200 and "TZOFFSETTO:+0100" in stored.text  # her definition, not his
    assert found == ["mine.ics"]


def test_parallel_writers_with_clashing_zones_each_keep_their_own(bridge: Bridge) -> None:
    """Twelve PUTs at once from both tenants, each defining the same TZID its own way."""
    setup = two_tenants(bridge)
    days = [DAY + timedelta(days=n) for n in range(6)]

    def put(who: str, n: int) -> int:
        offset, url = ("+1400", setup["attacker"]) if who == "mallory" else ("+0100", setup["victim"])
        with bridge.client(who) as client:
            return client.put(f"{url}{who}-{n}.ics", content=vcalendar(f"{who}-{n}", offset, days[n]),
                              headers={"Content-Type": "text/calendar"}).status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=6) as pool:
        answers = list(pool.map(lambda job: put(*job), [(w, n) for n in range(6) for w in ("mallory", "bea")]))
    assert answers == [201] * 12
    assert busy(bridge, setup["victim_token"], setup["victim_id"], days=6) == [
        (utc_hour(day, 8), utc_hour(day, 9)) for day in days
    ]


def feed(uid: str, offset: str) -> str:
    return vcalendar(uid, offset, tzid="Customized Time Zone")


@pytest.mark.parametrize("order", [("a", "b"), ("b", "a")], ids=["a-then-b", "b-then-a"])
def test_two_feeds_with_the_same_custom_zone_each_answer_their_own_offset(bridge: Bridge,
                                                                           order: tuple[str, str]) -> None:
    """Two tenants' ICS feeds reuse an Outlook zone name with different offsets (no attacker needed)."""
    offsets = {"a": ("+1400", "Studio A", "ana"), "b": ("+0100", "Studio B", "ben")}
    tenants: dict[str, dict[str, Any]] = {}
    with ics_feed_server(feed("a-1", "+1400")) as feed_a, ics_feed_server(feed("b-1", "+0100")) as feed_b:
        for key, served in (("a", feed_a), ("b", feed_b)):
            _, tenant, login = offsets[key]
            bridge.add_user(tenant, login)
            bridge.add_calendar(login, "cal")
            calendar_id = bridge.calendar_id(login, "cal")
            admin = bridge.add_token(tenant, scope="admin")
            with bridge.api(admin) as api:
                added = api.post("/connections", json={"calendar": calendar_id, "provider": "ics", "url": served.url})
            assert added.status_code == 201, added.text
            tenants[key] = {"calendar": calendar_id, "admin": admin, "connection": added.json()["id"]}
        for key in order:
            with bridge.api(tenants[key]["admin"]) as api:
                run = api.post(f"/connections/{tenants[key]['connection']}/sync")
            assert run.status_code == 200 and run.json()["status"] == "ok", run.text

    # +14:00 at 09:00 is 19:00Z the day before; +01:00 at 09:00 is 08:00Z
    before = DAY - timedelta(days=1)
    assert busy(bridge, tenants["a"]["admin"], tenants["a"]["calendar"]) == [(utc_hour(before, 19),
                                                                             utc_hour(before, 20))]
    assert busy(bridge, tenants["b"]["admin"], tenants["b"]["calendar"]) == [(utc_hour(DAY, 8), utc_hour(DAY, 9))]
