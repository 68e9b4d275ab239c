"""PUT of a calendar object as the /dav gate answers it: stored as sent, with Radicale's
preconditions and status codes, and valid iCalendar that Radicale's parser refuses accepted."""

from __future__ import annotations

from sqlalchemy import update

from bridge.store.models import Item
from tests.conftest import Bridge

CAL = "/dav/nora/cal/"
TZ_BLOCK = ("BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\n"
            "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\n"
            "BEGIN:DAYLIGHT\r\nDTSTART:19700329T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\n"
            "TZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n")


def _object(uid: str, body: str, timezone: str = TZ_BLOCK) -> str:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Example Corp//Calendar 1.0//EN\r\n" + timezone +
            f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20261124T080000Z\r\n{body}END:VEVENT\r\nEND:VCALENDAR\r\n")


ZONED = "DTSTART;TZID=Europe/Berlin:20261207T090000\r\nDTEND;TZID=Europe/Berlin:20261207T100000\r\nSUMMARY:Cut\r\n"


def _nora(bridge: Bridge) -> Bridge:
    bridge.add_user("Salon", "nora")
    bridge.add_calendar("nora", "cal")
    return bridge


def test_a_put_is_stored_as_sent_and_preconditions_hold(bridge: Bridge) -> None:
    _nora(bridge)
    text = _object("cut-1", ZONED)
    with bridge.client("nora") as dav:
        created = dav.put(CAL + "cut.ics", content=text, headers={"Content-Type": "text/calendar"})
        assert created.status_code == 201 and created.headers["ETag"].startswith('"')
        fetched = dav.get(CAL + "cut.ics")
        assert fetched.text == text and fetched.headers["ETag"] == created.headers["ETag"]
        assert dav.put(CAL + "cut.ics", content=text, headers={"If-None-Match": "*"}).status_code == 412
        assert dav.put(CAL + "cut.ics", content=text, headers={"If-Match": '"stale"'}).status_code == 412
        changed = _object("cut-1", ZONED.replace("Cut", "Colour"))
        replaced = dav.put(CAL + "cut.ics", content=changed, headers={"If-Match": created.headers["ETag"]})
        assert replaced.status_code == 204 and replaced.headers["ETag"] != created.headers["ETag"]
        assert dav.put(CAL + "new.ics", content=text, headers={"If-Match": "*"}).status_code == 412


def test_the_same_uid_at_another_href_is_a_no_uid_conflict(bridge: Bridge) -> None:
    _nora(bridge)
    with bridge.client("nora") as dav:
        assert dav.put(CAL + "a.ics", content=_object("same", ZONED)).status_code == 201
        conflict = dav.put(CAL + "b.ics", content=_object("same", ZONED))
        assert conflict.status_code == 409 and "no-uid-conflict" in conflict.text
        other_uid = dav.put(CAL + "a.ics", content=_object("different", ZONED))
        assert other_uid.status_code == 409
        assert dav.get(CAL + "b.ics").status_code == 404


def test_a_missing_vtimezone_is_added_from_the_iana_zone(bridge: Bridge) -> None:
    _nora(bridge)
    with bridge.client("nora") as dav:
        assert dav.put(CAL + "bare.ics", content=_object("bare", ZONED, timezone="")).status_code == 201
        text = dav.get(CAL + "bare.ics").text
    assert "BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin" in text
    assert text.index("BEGIN:VTIMEZONE") < text.index("BEGIN:VEVENT")


def test_rdate_periods_are_accepted_and_found_by_a_time_range_query(bridge: Bridge) -> None:
    """RFC 5545 §3.8.5.2 allows RDATE;VALUE=PERIOD; stock Radicale 3.9 answers 400."""
    _nora(bridge)
    body = ("DTSTART:20261207T090000Z\r\nDTEND:20261207T100000Z\r\n"
            "RDATE;VALUE=PERIOD:20261209T140000Z/PT2H\r\nSUMMARY:Extra\r\n")
    query = ('<?xml version="1.0"?><C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
             '<D:prop><D:getetag/></D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT">'
             '<C:time-range start="20261209T150000Z" end="20261209T153000Z"/></C:comp-filter></C:comp-filter>'
             '</C:filter></C:calendar-query>')
    with bridge.client("nora") as dav:
        assert dav.put(CAL + "period.ics", content=_object("period", body, timezone="")).status_code == 201
        found = dav.request("REPORT", CAL, content=query, headers={"Depth": "1", "Content-Type": "application/xml"})
    assert found.status_code == 207 and "period.ics" in found.text


def test_a_mirrored_item_is_read_only_for_clients(bridge: Bridge) -> None:
    _nora(bridge)
    with bridge.client("nora") as dav:
        assert dav.put(CAL + "m.ics", content=_object("m", ZONED)).status_code == 201
    with bridge.store.write() as session:
        session.execute(update(Item).values(origin="connection:1"))
    with bridge.client("nora") as dav:
        refused = dav.put(CAL + "m.ics", content=_object("m", ZONED.replace("Cut", "Mine")))
        assert refused.status_code == 403 and "need-privileges" in refused.text
        assert "SUMMARY:Cut" in dav.get(CAL + "m.ics").text
        deleted = dav.delete(CAL + "m.ics")
        assert deleted.status_code == 403 and "<D:unbind />" in deleted.text
        moved = dav.request("MOVE", CAL + "m.ics", headers={"Destination": CAL + "elsewhere.ics"})
        assert moved.status_code == 403
        assert dav.put(CAL + "c.ics", content=_object("c", ZONED)).status_code == 201
        overwrite = dav.request("MOVE", CAL + "c.ics", headers={"Destination": CAL + "m.ics", "Overwrite": "T"})
        assert overwrite.status_code == 403 and "m.ics" in overwrite.text
        assert "SUMMARY:Cut" in dav.get(CAL + "m.ics").text
        assert dav.delete(CAL + "c.ics").status_code in (200, 204)


def test_unauthenticated_and_foreign_puts_still_get_radicales_answers(bridge: Bridge) -> None:
    _nora(bridge)
    bridge.add_user("Other", "otto")
    with bridge.client("nora", "wrong password") as dav:
        assert dav.put(CAL + "x.ics", content=_object("x", ZONED)).status_code == 401
    with bridge.client("otto") as dav:
        assert dav.put(CAL + "x.ics", content=_object("x", ZONED)).status_code == 403
    with bridge.client("nora") as dav:
        assert dav.get(CAL + "x.ics").status_code == 404


def test_tasks_are_left_to_radicale_and_stored(bridge: Bridge) -> None:
    _nora(bridge)
    todo = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nBEGIN:VTODO\r\nUID:todo-1\r\n"
            "DTSTAMP:20261124T080000Z\r\nDUE:20261208T170000Z\r\nSUMMARY:Order dye\r\nEND:VTODO\r\nEND:VCALENDAR\r\n")
    with bridge.client("nora") as dav:
        assert dav.put(CAL + "todo.ics", content=todo).status_code == 201
        assert "SUMMARY:Order dye" in dav.get(CAL + "todo.ics").text


def _busy(bridge: Bridge, start: str, end: str) -> list[tuple[str, str]]:
    with bridge.api(bridge.add_token("Salon")) as api:
        answer = api.post("/freebusy", json={"calendars": [bridge.calendar_id("nora", "cal")],
                                             "start": start, "end": end})
    assert answer.status_code == 200, answer.text
    return [(b["start"], b["end"]) for b in answer.json()["calendars"][0]["busy"]]


def test_an_until_before_dtstart_is_accepted_and_is_dtstart_alone(bridge: Bridge) -> None:
    """RFC 5545 allows it (Outlook writes it for a series cut before it began): one instance, not a refusal."""
    _nora(bridge)
    body = ZONED + "RRULE:FREQ=DAILY;UNTIL=20261201T000000Z\r\n"
    with bridge.client("nora") as dav:
        assert dav.put(CAL + "cut.ics", content=_object("cut-1", body)).status_code == 201
    assert _busy(bridge, "2026-11-01T00:00:00Z", "2026-12-31T00:00:00Z") == [
        ("2026-12-07T08:00:00Z", "2026-12-07T09:00:00Z")]


def test_several_rrules_in_one_event_are_the_union_of_their_instances(bridge: Bridge) -> None:
    _nora(bridge)
    body = ZONED + "RRULE:FREQ=WEEKLY;COUNT=2\r\nRRULE:FREQ=DAILY;COUNT=2;BYHOUR=15\r\n"
    with bridge.client("nora") as dav:
        assert dav.put(CAL + "cut.ics", content=_object("cut-1", body)).status_code == 201
    assert _busy(bridge, "2026-12-01T00:00:00Z", "2026-12-31T00:00:00Z") == [
        ("2026-12-07T08:00:00Z", "2026-12-07T09:00:00Z"), ("2026-12-07T14:00:00Z", "2026-12-07T15:00:00Z"),
        ("2026-12-14T08:00:00Z", "2026-12-14T09:00:00Z")]
