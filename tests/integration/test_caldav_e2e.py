"""End to end through the python-caldav client (and raw HTTP where the protocol detail matters),
on SQLite and on PostgreSQL."""

from __future__ import annotations

import base64
import socket
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import unquote

import caldav
import httpx
import pytest
from caldav.elements import dav, ical

from tests.conftest import PASSWORD, Bridge
from tests.ics import event

FIXTURES = Path(__file__).parent.parent / "fixtures"
SERIES = (FIXTURES / "weekly_override_exdate_issue3.ics").read_text()
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def alice(bridge: Bridge) -> Bridge:
    bridge.add_user("Praxis Nord", "alice")
    return bridge


@pytest.fixture
def principal(alice: Bridge) -> caldav.Principal:
    client = caldav.DAVClient(url=f"{alice.url}/dav/", username="alice", password=PASSWORD)
    return client.principal()


@pytest.fixture
def calendar(principal: caldav.Principal) -> caldav.Calendar:
    return principal.make_calendar(name="Behandlungen", cal_id="treatments")


def test_mkcalendar_is_listed_with_its_name(principal: caldav.Principal, calendar: caldav.Calendar) -> None:
    listed = principal.calendars()
    assert [str(c.url).rstrip("/").rsplit("/", 1)[-1] for c in listed] == ["treatments"]
    assert listed[0].get_display_name() == "Behandlungen"


def test_put_get_delete_round_trip(calendar: caldav.Calendar) -> None:
    saved = calendar.save_event(event("rt-1@test", T0, T0 + timedelta(hours=1), "Check-up"))
    fetched = calendar.event_by_uid("rt-1@test")
    assert fetched.icalendar_component["SUMMARY"] == "Check-up"
    saved.delete()
    with pytest.raises(caldav.lib.error.NotFoundError):
        calendar.event_by_uid("rt-1@test")


def _http(alice: Bridge) -> httpx.Client:
    return alice.client("alice")


def test_if_match_and_if_none_match_preconditions(alice: Bridge, calendar: caldav.Calendar) -> None:
    url = "/dav/alice/treatments/pre.ics"
    body = event("pre@test", T0, T0 + timedelta(hours=1))
    with _http(alice) as http:
        created = http.put(url, content=body, headers={"If-None-Match": "*", "Content-Type": "text/calendar"})
        assert created.status_code == 201
        etag = created.headers["etag"]
        again = http.put(url, content=body, headers={"If-None-Match": "*", "Content-Type": "text/calendar"})
        assert again.status_code == 412
        stale = http.put(url, content=body.replace("Appointment", "Moved"),
                         headers={"If-Match": '"not-the-etag"', "Content-Type": "text/calendar"})
        assert stale.status_code == 412
        fresh = http.put(url, content=body.replace("Appointment", "Moved"),
                         headers={"If-Match": etag, "Content-Type": "text/calendar"})
        assert fresh.status_code == 204
        assert fresh.headers["etag"] != etag
        assert http.delete(url, headers={"If-Match": etag}).status_code == 412
        assert "Moved" in http.get(url).text


def test_same_uid_under_a_second_href_is_refused(alice: Bridge, calendar: caldav.Calendar) -> None:
    body = event("dup@test", T0, T0 + timedelta(hours=1))
    with _http(alice) as http:
        assert http.put("/dav/alice/treatments/a.ics", content=body).status_code == 201
        second = http.put("/dav/alice/treatments/b.ics", content=body)
        assert second.status_code == 409
        assert "no-uid-conflict" in second.text
        assert http.get("/dav/alice/treatments/b.ics").status_code == 404


def _uids(found: list[caldav.CalendarObjectResource]) -> list[str]:
    return [str(obj.icalendar_component["UID"]) for obj in found]


def test_time_range_over_weekly_series_with_override_and_exdate(calendar: caldav.Calendar) -> None:
    calendar.save_event(SERIES)
    berlin_day = [(datetime(2026, 12, d, 0, 0, tzinfo=UTC), datetime(2026, 12, d, 23, 0, tzinfo=UTC))
                  for d in (7, 14, 16, 21, 28)]
    hits = {start.day: _uids(calendar.search(start=start, end=end, event=True)) for start, end in berlin_day}
    assert hits == {
        7: ["weekly-standup@calbridge.test"],
        14: [],  # that instance was moved to the 16th
        16: ["weekly-standup@calbridge.test"],
        21: [],  # EXDATE
        28: ["weekly-standup@calbridge.test"],
    }


def test_expand_returns_each_instance_once(calendar: caldav.Calendar) -> None:
    calendar.save_event(SERIES)
    found = calendar.search(start=datetime(2026, 12, 1, tzinfo=UTC), end=datetime(2027, 2, 1, tzinfo=UTC),
                            event=True, expand=True, server_expand=True)
    starts = sorted(obj.icalendar_component["DTSTART"].dt.astimezone(UTC) for obj in found)
    assert [s.strftime("%m-%d %H:%M") for s in starts] == [
        "12-07 08:00", "12-16 13:00", "12-28 08:00", "01-04 08:00", "01-11 08:00"]


def test_calendar_multiget_returns_requested_items(calendar: caldav.Calendar) -> None:
    saved = [calendar.save_event(event(f"mg-{i}@test", T0 + timedelta(days=i), T0 + timedelta(days=i, hours=1)))
             for i in range(3)]
    got = calendar.calendar_multiget([saved[0].url, saved[2].url])
    assert sorted(_uids(got)) == ["mg-0@test", "mg-2@test"]


def _sync(http: httpx.Client, token: str) -> httpx.Response:
    body = ('<?xml version="1.0" encoding="utf-8"?><D:sync-collection xmlns:D="DAV:">'
            f"<D:sync-token>{token}</D:sync-token><D:sync-level>1</D:sync-level>"
            "<D:prop><D:getetag/></D:prop></D:sync-collection>")
    return http.request("REPORT", "/dav/alice/treatments/", content=body, headers={"Depth": "1"})


def test_sync_collection_initial_delta_deletion_and_invalid_token(calendar: caldav.Calendar) -> None:
    keep = calendar.save_event(event("s-keep@test", T0, T0 + timedelta(hours=1)))
    gone = calendar.save_event(event("s-gone@test", T0, T0 + timedelta(hours=1)))
    initial = calendar.objects_by_sync_token(load_objects=True)
    assert sorted(_uids(list(initial))) == ["s-gone@test", "s-keep@test"]
    token = initial.sync_token

    gone.delete()
    calendar.save_event(event("s-new@test", T0, T0 + timedelta(hours=2)))
    delta = calendar.objects_by_sync_token(sync_token=token, load_objects=False)
    changed = sorted(unquote(str(obj.url).rsplit("/", 1)[-1]) for obj in delta)
    assert changed == ["s-gone@test.ics", "s-new@test.ics"]
    assert delta.sync_token != token
    assert keep.url not in [obj.url for obj in delta]


def test_sync_reports_deletions_as_404_and_bad_tokens_as_valid_sync_token(alice: Bridge,
                                                                          calendar: caldav.Calendar) -> None:
    calendar.save_event(event("d-1@test", T0, T0 + timedelta(hours=1)))
    with _http(alice) as http:
        first = _sync(http, "")
        token = first.text.split("<sync-token>")[1].split("</sync-token>")[0]
        assert http.delete("/dav/alice/treatments/d-1@test.ics").status_code == 200
        delta = _sync(http, token)
        assert delta.status_code == 207
        assert "d-1%40test.ics</href><status>HTTP/1.1 404" in delta.text
        for bad in ("http://calbridge.org/ns/sync/nonsense", token + "9", "urn:x"):
            refused = _sync(http, bad)
            assert refused.status_code == 403
            assert "valid-sync-token" in refused.text


def test_ctag_changes_on_every_write(alice: Bridge, calendar: caldav.Calendar) -> None:
    def ctag() -> str:
        body = ('<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/">'
                "<D:prop><CS:getctag/></D:prop></D:propfind>")
        with _http(alice) as http:
            answer = http.request("PROPFIND", "/dav/alice/treatments/", content=body, headers={"Depth": "0"})
        return answer.text.split("getctag>")[1].split("<")[0]

    seen = [ctag()]
    saved = calendar.save_event(event("c-1@test", T0, T0 + timedelta(hours=1)))
    seen.append(ctag())
    saved.icalendar_component["SUMMARY"] = "changed"
    saved.save()
    seen.append(ctag())
    saved.delete()
    seen.append(ctag())
    assert len(set(seen)) == 4


def test_proppatch_displayname_and_colour(calendar: caldav.Calendar) -> None:
    calendar.set_properties([dav.DisplayName("Sprechstunde"), ical.CalendarColor("#FF8800")])
    props = calendar.get_properties([dav.DisplayName(), ical.CalendarColor()])
    assert props["{DAV:}displayname"] == "Sprechstunde"
    assert props["{http://apple.com/ns/ical/}calendar-color"] == "#FF8800"


def test_well_known_redirects_to_dav_and_healthz_reports_ok(alice: Bridge) -> None:
    with httpx.Client(base_url=alice.url) as http:
        redirect = http.get("/.well-known/caldav")
        assert redirect.status_code == 301 and redirect.headers["location"] == "/dav/"
        assert http.get("/healthz").json() == {"status": "ok"}


def test_move_between_own_calendars_shows_in_both_sync_reports(alice: Bridge, principal: caldav.Principal) -> None:
    principal.make_calendar(name="A", cal_id="a")
    principal.make_calendar(name="B", cal_id="b")
    with _http(alice) as http:
        assert http.put("/dav/alice/a/m.ics", content=event("m@test", T0, T0 + timedelta(hours=1))).status_code == 201
        tokens = {}
        for cal in ("a", "b"):
            answer = http.request("REPORT", f"/dav/alice/{cal}/", headers={"Depth": "1"}, content=(
                '<?xml version="1.0"?><D:sync-collection xmlns:D="DAV:"><D:sync-token/><D:sync-level>1'
                "</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>"))
            tokens[cal] = answer.text.split("<sync-token>")[1].split("</sync-token>")[0]
        moved = http.request("MOVE", "/dav/alice/a/m.ics", headers={"Destination": f"{alice.url}/dav/alice/b/n.ics"})
        assert moved.status_code == 201
        assert http.get("/dav/alice/a/m.ics").status_code == 404
        assert "m@test" in http.get("/dav/alice/b/n.ics").text
        for cal, href, status in (("a", "m.ics", "404"), ("b", "n.ics", "200")):
            answer = http.request("REPORT", f"/dav/alice/{cal}/", headers={"Depth": "1"}, content=(
                f'<?xml version="1.0"?><D:sync-collection xmlns:D="DAV:"><D:sync-token>{tokens[cal]}'
                "</D:sync-token><D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>"))
            assert f"/dav/alice/{cal}/{href}" in answer.text and f"HTTP/1.1 {status}" in answer.text


def test_deleting_a_calendar_removes_it_and_its_items(alice: Bridge, calendar: caldav.Calendar,
                                                      principal: caldav.Principal) -> None:
    calendar.save_event(event("del@test", T0, T0 + timedelta(hours=1)))
    calendar.delete()
    assert principal.calendars() == []
    again = principal.make_calendar(name="Behandlungen", cal_id="treatments")
    assert again.events() == []


def test_response_header_names_keep_radicales_spelling(alice: Bridge, calendar: caldav.Calendar) -> None:
    """Header names are case-insensitive, but some clients (and proxies) match the bytes."""
    calendar.save_event(event("hdr@test", T0, T0 + timedelta(hours=1)))
    host, port = alice.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port))) as sock:
        auth = "Basic " + base64.b64encode(f"alice:{PASSWORD}".encode()).decode()
        sock.sendall(f"GET /dav/alice/treatments/hdr@test.ics HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\n"
                     "Connection: close\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(4096)
    assert b"\r\nContent-Type: text/calendar" in head and b"\r\nETag: " in head


VIENNA = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VTIMEZONE\r\nTZID:Europe/Vienna\r\n"
          "BEGIN:STANDARD\r\nDTSTART:19701025T030000\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\n"
          "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\nEND:VCALENDAR\r\n")


def test_mkcalendar_time_zone_reads_floating_times(alice: Bridge) -> None:
    body = ('<?xml version="1.0"?><C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set>'
            f"<D:prop><C:calendar-timezone>{VIENNA}</C:calendar-timezone></D:prop></D:set></C:mkcalendar>")
    floating = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VEVENT\r\nUID:float@test\r\n"
                "DTSTAMP:20261124T080000Z\r\nDTSTART:20260115T100000\r\nDTEND:20260115T110000\r\n"
                "END:VEVENT\r\nEND:VCALENDAR\r\n")
    with _http(alice) as http:
        assert http.request("MKCALENDAR", "/dav/alice/wien/", content=body).status_code == 201
        assert http.put("/dav/alice/wien/float.ics", content=floating).status_code == 201
    from sqlalchemy import select

    from bridge.store.models import Calendar, Item

    with alice.store.read() as session:
        assert session.scalar(select(Calendar.timezone).where(Calendar.slug == "wien")) == "Europe/Vienna"
        assert session.scalar(select(Item.dtstart)) == datetime(2026, 1, 15, 9, 0, tzinfo=UTC)
