"""Time-range matching and free/busy where RFC 4791 / RFC 5545 and stock Radicale 3.9 part ways.

Each case is PUT into calbridge and into a stock Radicale (filesystem storage, in process)
and asked the same calendar-query or free-busy-query. calbridge must give the RFC answer;
Radicale's answer is pinned too, so that docs/conformance.md (which lists both) stays true.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import icalendar
import pytest
from radicale import Application
from radicale import config as radicale_config

from tests.conftest import Bridge


@dataclass(frozen=True)
class Case:
    name: str
    events: str  # VEVENTs (and VTIMEZONEs) of one object resource
    start: str
    end: str
    ours: bool  # does calbridge's calendar-query match (the RFC answer)
    radicale: bool | int  # stock Radicale's answer: a match flag, or the HTTP status of a refused PUT
    timezone: str = "UTC"


def _event(body: str, uid: str = "case") -> str:
    return f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20261124T080000Z\r\n{body}END:VEVENT\r\n"


CASES = [
    Case("zero-length-at-window-start",
         _event("DTSTART:20261207T090000Z\r\nDTEND:20261207T090000Z\r\n"),
         "20261207T090000Z", "20261207T100000Z", ours=True, radicale=False),
    Case("start-only-at-window-start",
         _event("DTSTART:20261207T090000Z\r\n"),
         "20261207T090000Z", "20261207T100000Z", ours=True, radicale=True),
    Case("instance-starting-at-window-end",
         _event("DTSTART:20261207T100000Z\r\nDTEND:20261207T110000Z\r\nRRULE:FREQ=DAILY;COUNT=3\r\n"),
         "20261208T090000Z", "20261208T100000Z", ours=False, radicale=False),
    Case("several-rrules",
         _event("DTSTART:20261207T090000Z\r\nDTEND:20261207T100000Z\r\nRRULE:FREQ=WEEKLY;BYDAY=MO;COUNT=4\r\n"
                "RRULE:FREQ=WEEKLY;BYDAY=WE;COUNT=4\r\n"),
         "20261216T090000Z", "20261216T100000Z", ours=True, radicale=True),
    Case("thisandfuture-override",
         _event("DTSTART:20261207T090000Z\r\nDTEND:20261207T100000Z\r\nRRULE:FREQ=WEEKLY;COUNT=6\r\n") +
         _event("RECURRENCE-ID;RANGE=THISANDFUTURE:20261221T090000Z\r\nDTSTART:20261222T090000Z\r\n"
                "DTEND:20261222T100000Z\r\n"),
         "20261229T090000Z", "20261229T100000Z", ours=True, radicale=False),
    Case("only-overridden-instances",
         _event("RECURRENCE-ID:20261207T090000Z\r\nDTSTART:20261207T120000Z\r\nDTEND:20261207T130000Z\r\n") +
         _event("RECURRENCE-ID:20261214T090000Z\r\nDTSTART:20261214T120000Z\r\nDTEND:20261214T130000Z\r\n"),
         "20261214T120000Z", "20261214T123000Z", ours=True, radicale=400),
    Case("override-with-its-own-rrule",
         _event("DTSTART:20261207T090000Z\r\nDTEND:20261207T100000Z\r\nRRULE:FREQ=WEEKLY;COUNT=3\r\n") +
         _event("RECURRENCE-ID:20261214T090000Z\r\nDTSTART:20261215T090000Z\r\nDTEND:20261215T100000Z\r\n"
                "RRULE:FREQ=DAILY;COUNT=5\r\n"),
         "20261217T090000Z", "20261217T100000Z", ours=False, radicale=True),
    Case("rdate-period",
         _event("DTSTART:20261207T090000Z\r\nDTEND:20261207T100000Z\r\n"
                "RDATE;VALUE=PERIOD:20261209T140000Z/PT2H\r\n"),
         "20261209T150000Z", "20261209T153000Z", ours=True, radicale=400),
    Case("floating-in-calendar-timezone",
         _event("DTSTART:20261207T090000\r\nDTEND:20261207T093000\r\n"),
         "20261207T140000Z", "20261207T143000Z", ours=True, radicale=False, timezone="America/New_York"),
    Case("all-day-in-calendar-timezone",
         _event("DTSTART;VALUE=DATE:20261207\r\n"),
         "20261206T160000Z", "20261206T170000Z", ours=True, radicale=False, timezone="Asia/Tokyo"),
]


def _object(case: Case) -> str:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calbridge//rfc4791 cases//EN\r\n" + case.events +
            "END:VCALENDAR\r\n")


def _query(start: str, end: str) -> str:
    return ('<?xml version="1.0"?><C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
            '<D:prop><D:getetag/></D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
            f'<C:time-range start="{start}" end="{end}"/></C:comp-filter></C:comp-filter></C:filter>'
            '</C:calendar-query>')


def _mkcalendar(timezone: str) -> str:
    vtimezone = icalendar.Timezone.from_tzid(timezone).to_ical().decode() if timezone != "UTC" else ""
    zone = f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\n{vtimezone}END:VCALENDAR\r\n"
    return ('<?xml version="1.0"?><C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set>'
            f'<D:prop><C:calendar-timezone><![CDATA[{zone}]]></C:calendar-timezone></D:prop></D:set>'
            '</C:mkcalendar>')


@pytest.fixture
def radicale(tmp_path: Path) -> Iterator[httpx.Client]:
    """Stock Radicale 3.9 with its own filesystem storage, as any user may run it."""
    configuration = radicale_config.load()
    configuration.update({"storage": {"filesystem_folder": str(tmp_path / "radicale")},
                          "auth": {"type": "none"}, "rights": {"type": "owner_only"}}, "test", privileged=True)
    transport = httpx.WSGITransport(app=Application(configuration))  # type: ignore[arg-type]
    with httpx.Client(transport=transport, base_url="http://radicale", auth=("nora", "x")) as client:
        yield client


def _matches(client: httpx.Client, collection: str, case: Case) -> bool:
    answer = client.request("REPORT", collection, content=_query(case.start, case.end),
                            headers={"Depth": "1", "Content-Type": "application/xml"})
    assert answer.status_code == 207, answer.text
    return "case.ics" in answer.text


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_calendar_query_time_range(bridge: Bridge, radicale: httpx.Client, case: Case) -> None:
    bridge.add_user("Salon", "nora")
    bridge.add_calendar("nora", "cal", timezone=case.timezone)
    with bridge.client("nora") as ours:
        assert ours.put("/dav/nora/cal/case.ics", content=_object(case)).status_code == 201
        assert _matches(ours, "/dav/nora/cal/", case) is case.ours

    assert radicale.request("MKCALENDAR", "/nora/cal/", content=_mkcalendar(case.timezone)).status_code == 201
    stored = radicale.put("/nora/cal/case.ics", content=_object(case))
    if isinstance(case.radicale, bool):
        assert stored.status_code == 201
        assert _matches(radicale, "/nora/cal/", case) is case.radicale
    else:
        assert stored.status_code == case.radicale


FREE_BUSY = ('<?xml version="1.0"?><C:free-busy-query xmlns:C="urn:ietf:params:xml:ns:caldav">'
             '<C:time-range start="20261207T000000Z" end="20270105T000000Z"/></C:free-busy-query>')


def _busy_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("FREEBUSY")]


@pytest.mark.parametrize(("name", "expected"), [
    # DTSTART counts as the first instance of each COUNT-bounded rule (RFC 5545 3.3.10): 4 Mondays, 3 Wednesdays.
    ("several-rrules", ["FREEBUSY;FBTYPE=BUSY:20261207T090000Z/20261207T100000Z",
                        "FREEBUSY;FBTYPE=BUSY:20261209T090000Z/20261209T100000Z",
                        "FREEBUSY;FBTYPE=BUSY:20261214T090000Z/20261214T100000Z",
                        "FREEBUSY;FBTYPE=BUSY:20261216T090000Z/20261216T100000Z",
                        "FREEBUSY;FBTYPE=BUSY:20261221T090000Z/20261221T100000Z",
                        "FREEBUSY;FBTYPE=BUSY:20261223T090000Z/20261223T100000Z",
                        "FREEBUSY;FBTYPE=BUSY:20261228T090000Z/20261228T100000Z"]),
    ("thisandfuture-override", ["FREEBUSY;FBTYPE=BUSY:20261207T090000Z/20261207T100000Z",
                                "FREEBUSY;FBTYPE=BUSY:20261214T090000Z/20261214T100000Z",
                                "FREEBUSY;FBTYPE=BUSY:20261222T090000Z/20261222T100000Z",
                                "FREEBUSY;FBTYPE=BUSY:20261229T090000Z/20261229T100000Z"]),
    ("rdate-period", ["FREEBUSY;FBTYPE=BUSY:20261207T090000Z/20261207T100000Z",
                      "FREEBUSY;FBTYPE=BUSY:20261209T140000Z/20261209T160000Z"]),
], ids=["several-rrules", "thisandfuture-override", "rdate-period"])
def test_free_busy_query_is_answered_by_the_same_engine(bridge: Bridge, name: str, expected: list[str]) -> None:
    case = next(case for case in CASES if case.name == name)
    bridge.add_user("Salon", "nora")
    bridge.add_calendar("nora", "cal")
    with bridge.client("nora") as ours:
        assert ours.put("/dav/nora/cal/case.ics", content=_object(case)).status_code == 201
        answer = ours.request("REPORT", "/dav/nora/cal/", content=FREE_BUSY,
                              headers={"Depth": "1", "Content-Type": "application/xml"})
    assert answer.status_code == 200 and answer.headers["Content-Type"].startswith("text/calendar")
    assert _busy_lines(answer.text) == expected


def _expand_query(start: str, end: str) -> str:
    return ('<?xml version="1.0"?><C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
            f'<D:prop><D:getetag/><C:calendar-data><C:expand start="{start}" end="{end}"/></C:calendar-data>'
            '</D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
            f'<C:time-range start="{start}" end="{end}"/></C:comp-filter></C:comp-filter></C:filter>'
            '</C:calendar-query>')


def _starts(answer: httpx.Response) -> list[str]:
    assert answer.status_code == 207, answer.text
    return sorted(line.split(":", 1)[1] for line in answer.text.replace("&#13;", "").splitlines()
                  if line.startswith("DTSTART"))


@pytest.mark.parametrize(("name", "expected", "stock"), [
    ("thisandfuture-override", ["20261207T090000Z", "20261214T090000Z", "20261222T090000Z", "20261229T090000Z"],
     ["20261207T090000Z", "20261214T090000Z", "20261222T090000Z", "20261228T090000Z", "20270104T090000Z"]),
    ("several-rrules", ["20261207T090000Z", "20261209T090000Z", "20261214T090000Z", "20261216T090000Z",
                        "20261221T090000Z", "20261223T090000Z", "20261228T090000Z"],
     ["20261207T090000Z", "20261209T090000Z", "20261214T090000Z", "20261216T090000Z",
      "20261221T090000Z", "20261223T090000Z", "20261228T090000Z", "20261230T090000Z"]),
    ("floating-in-calendar-timezone", ["20261207T140000Z"], ["20261207T090000"]),
    ("rdate-period", ["20261207T090000Z", "20261209T140000Z"], None),
], ids=["thisandfuture-override", "several-rrules", "floating-in-calendar-timezone", "rdate-period"])
def test_expand_writes_the_instances_of_the_same_engine(bridge: Bridge, radicale: httpx.Client, name: str,
                                                        expected: list[str], stock: list[str] | None) -> None:
    case = next(case for case in CASES if case.name == name)
    bridge.add_user("Salon", "nora")
    bridge.add_calendar("nora", "cal", timezone=case.timezone)
    query = _expand_query("20261207T000000Z", "20270105T000000Z")
    headers = {"Depth": "1", "Content-Type": "application/xml"}
    with bridge.client("nora") as ours:
        assert ours.put("/dav/nora/cal/case.ics", content=_object(case)).status_code == 201
        answer = ours.request("REPORT", "/dav/nora/cal/", content=query, headers=headers)
    assert _starts(answer) == expected and "RRULE" not in answer.text and "RDATE" not in answer.text
    assert radicale.request("MKCALENDAR", "/nora/cal/", content=_mkcalendar(case.timezone)).status_code == 201
    stored = radicale.put("/nora/cal/case.ics", content=_object(case))
    if stock is None:
        assert stored.status_code == 400
    else:
        assert _starts(radicale.request("REPORT", "/nora/cal/", content=query, headers=headers)) == stock
