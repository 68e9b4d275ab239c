"""A careless client (or an attacker with a member's password) tries every route to overwrite, move or
delete a mirrored item: the external appointment's busy time must survive each of them.

The mirrored item is written in the setup through the store's connection writer, as the sync engine
writes it. Each attack is answered 403 with DAV:need-privileges, and afterwards the item's text, the
calendar's free/busy (``/api/v1/freebusy``) and another tenant's calendar are as before.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import icalendar
import pytest

from bridge.storage_plugin.importer import NotImportable, import_calendar
from bridge.store import calendars, items, users, writers
from bridge.store.index import facts_of
from tests.conftest import Bridge

CAL = "/dav/nora/cal/"
OTHER = "/dav/otto/cal/"
MIRRORED = "c1-5f2a9e.ics"
MIRRORED_UID = "ext-1@google.com"
DAY = {"start": "2026-12-07T00:00:00Z", "end": "2026-12-08T00:00:00Z"}
EXTERNAL_BUSY = {"start": "2026-12-07T08:00:00Z", "end": "2026-12-07T09:00:00Z"}


def _calendar(uid: str, body: str, component: str = "VEVENT") -> str:
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Careless Corp//Calendar 1.0//EN\r\n"
            f"BEGIN:{component}\r\nUID:{uid}\r\nDTSTAMP:20261124T080000Z\r\n{body}END:{component}\r\nEND:VCALENDAR\r\n")


EXTERNAL = _calendar(MIRRORED_UID, "DTSTART:20261207T080000Z\r\nDTEND:20261207T090000Z\r\nSUMMARY:Busy\r\n")
FREE_AGAIN = "DTSTART:20261207T080000Z\r\nDTEND:20261207T090000Z\r\nSUMMARY:Mine now\r\nTRANSP:TRANSPARENT\r\n"
BODIES = {
    # The gate declines tasks: Radicale used to store this over the mirrored event.
    "a VTODO": _calendar(MIRRORED_UID, "SUMMARY:Mine now\r\nDUE:20261207T090000Z\r\n", "VTODO"),
    # DTEND with DURATION:PT0S is one of the bodies the gate leaves to Radicale to repair.
    "a body Radicale repairs": _calendar(
        MIRRORED_UID, "DTSTART:20261207T080000Z\r\nDTEND:20261207T090000Z\r\nDURATION:PT0S\r\nSUMMARY:Mine\r\n"),
    # A DATE EXDATE on a DATE-TIME series: repaired by Radicale too.
    "a series with a DATE EXDATE": _calendar(
        MIRRORED_UID, "DTSTART:20261207T080000Z\r\nDTEND:20261207T090000Z\r\nRRULE:FREQ=DAILY;COUNT=3\r\n"
        "EXDATE;VALUE=DATE:20261208\r\nSUMMARY:Mine\r\n"),
    "a plain transparent event": _calendar(MIRRORED_UID, FREE_AGAIN),
    "an event with another UID": _calendar("mine-1", FREE_AGAIN),
    "something that is not iCalendar": "BEGIN:VCALENDAR\r\nthis is not\r\n",
}


@pytest.fixture
def salon(bridge: Bridge) -> Bridge:
    """nora's calendar with one mirrored appointment; otto of another tenant with one of his own."""
    bridge.add_user("Salon", "nora")
    bridge.add_calendar("nora", "cal", timezone="UTC")
    bridge.add_user("Other", "otto")
    bridge.add_calendar("otto", "cal")
    with bridge.store.write() as session:
        owner = users.user_by_login(session, "nora")
        assert owner is not None
        calendar = calendars.calendar_of(session, owner.id, "cal")
        assert calendar is not None
        described = facts_of(icalendar.Calendar.from_ical(EXTERNAL), ZoneInfo("UTC"), datetime.now(UTC))
        items.write(session, calendar, items.NewItem(
            href=MIRRORED, uid=MIRRORED_UID, etag=items.etag_of(EXTERNAL), text=EXTERNAL, facts=described.facts),
            writers.connection(1))
    with bridge.client("otto") as dav:
        assert dav.put(OTHER + "own.ics", content=_calendar("own-1", FREE_AGAIN)).status_code == 201
    return bridge


def _state(bridge: Bridge) -> tuple[str, list[dict[str, Any]], str]:
    """What the victims see: the mirrored item, nora's busy time, and otto's item."""
    with bridge.client("nora") as dav:
        text = dav.get(CAL + MIRRORED).text
    with bridge.api(bridge.add_token("Salon")) as engine:
        answer = engine.post("/freebusy", json={"calendars": [bridge.calendar_id("nora", "cal")], **DAY})
        assert answer.status_code == 200, answer.text
        busy = [{"start": p["start"], "end": p["end"]} for p in answer.json()["calendars"][0]["busy"]]
    with bridge.client("otto") as dav:
        other = dav.get(OTHER + "own.ics").text
    return text, busy, other


def _refused(answer: httpx.Response, href: str) -> None:
    assert answer.status_code == 403, (answer.status_code, answer.text)
    assert "need-privileges" in answer.text and href in answer.text


@pytest.mark.parametrize("body", list(BODIES), ids=list(BODIES))
@pytest.mark.parametrize("if_match", [None, "*"])
def test_no_put_body_replaces_a_mirrored_item(salon: Bridge, body: str, if_match: str | None) -> None:
    before = _state(salon)
    assert before[1] == [EXTERNAL_BUSY]
    headers = {"Content-Type": "text/calendar; charset=utf-8"} | ({"If-Match": if_match} if if_match else {})
    with salon.client("nora") as dav:
        answer = dav.put(CAL + MIRRORED, content=BODIES[body], headers=headers)
    if body == "something that is not iCalendar":
        assert answer.status_code in (400, 403), answer.text  # refused either way; nothing replaced
    else:
        _refused(answer, CAL + MIRRORED)
    assert _state(salon) == before


def _move_away(dav: httpx.Client) -> httpx.Response:
    return dav.request("MOVE", CAL + MIRRORED, headers={"Destination": CAL + "mine.ics"})


def _move_to_own_calendar(dav: httpx.Client) -> httpx.Response:
    return dav.request("MOVE", CAL + MIRRORED, headers={"Destination": "/dav/nora/private/" + MIRRORED})


def _move_onto(dav: httpx.Client) -> httpx.Response:
    assert dav.put(CAL + "mine.ics", content=_calendar("mine-1", FREE_AGAIN)).status_code == 201
    return dav.request("MOVE", CAL + "mine.ics", headers={"Destination": CAL + MIRRORED, "Overwrite": "T"})


def _move_onto_same_uid(dav: httpx.Client) -> httpx.Response:
    # The same UID in another of nora's calendars, so Radicale's own UID check lets the MOVE through.
    assert dav.put("/dav/nora/private/copy.ics", content=_calendar(MIRRORED_UID, FREE_AGAIN)).status_code == 201
    return dav.request("MOVE", "/dav/nora/private/copy.ics", headers={"Destination": CAL + MIRRORED,
                                                                      "Overwrite": "T"})


def _delete(dav: httpx.Client) -> httpx.Response:
    return dav.delete(CAL + MIRRORED)


def _delete_with_etag(dav: httpx.Client) -> httpx.Response:
    return dav.delete(CAL + MIRRORED, headers={"If-Match": items.etag_of(EXTERNAL)})


ROUTES: dict[str, Callable[[httpx.Client], httpx.Response]] = {
    "DELETE": _delete, "DELETE with the right If-Match": _delete_with_etag, "MOVE away": _move_away,
    "MOVE to another of the owner's calendars": _move_to_own_calendar, "MOVE onto it": _move_onto,
    "MOVE onto it with the same UID": _move_onto_same_uid,
}


@pytest.mark.parametrize("route", list(ROUTES), ids=list(ROUTES))
def test_no_delete_or_move_touches_a_mirrored_item(salon: Bridge, route: str) -> None:
    salon.add_calendar("nora", "private", timezone="UTC")
    before = _state(salon)
    with salon.client("nora") as dav:
        _refused(ROUTES[route](dav), CAL + MIRRORED)
        assert dav.get(CAL + "mine.ics").status_code == 404 or route.startswith("MOVE onto")
    assert _state(salon) == before


def test_the_tenants_admin_is_refused_as_well(salon: Bridge) -> None:
    salon.add_user("Salon", "boss", role="admin")
    before = _state(salon)
    with salon.client("boss") as dav:
        _refused(dav.put(CAL + MIRRORED, content=BODIES["a VTODO"]), CAL + MIRRORED)
        _refused(dav.delete(CAL + MIRRORED), CAL + MIRRORED)
    assert _state(salon) == before


def test_another_tenant_cannot_even_learn_of_it(salon: Bridge) -> None:
    before = _state(salon)
    with salon.client("otto") as dav:
        for answer in (dav.put(CAL + MIRRORED, content=BODIES["a VTODO"]), dav.delete(CAL + MIRRORED),
                       dav.request("MOVE", CAL + MIRRORED, headers={"Destination": OTHER + "stolen.ics"})):
            assert answer.status_code in (403, 404) and "need-privileges" not in answer.text
    assert _state(salon) == before


def test_an_import_does_not_replace_a_mirrored_item_by_its_uid(salon: Bridge) -> None:
    before = _state(salon)
    export = _calendar(MIRRORED_UID, FREE_AGAIN).replace(
        "END:VCALENDAR", "BEGIN:VEVENT\r\nUID:new-1\r\nDTSTAMP:20261124T080000Z\r\nDTSTART:20261207T120000Z\r\n"
        "DTEND:20261207T130000Z\r\nSUMMARY:Imported\r\nEND:VEVENT\r\nEND:VCALENDAR")
    with pytest.raises(NotImportable, match="connected calendar"):
        import_calendar(salon.store, salon.settings, "nora", "cal", export)
    assert _state(salon) == before  # the whole file is refused: nothing of it is stored
    with salon.client("nora") as dav:
        assert dav.get(CAL + "new-1.ics").status_code == 404


def test_a_whole_calendar_put_does_not_wipe_a_mirrored_item(salon: Bridge) -> None:
    before = _state(salon)
    with salon.client("nora") as dav:
        answer = dav.put(CAL, content=_calendar("mine-1", FREE_AGAIN))
        assert answer.status_code == 403 and "need-privileges" in answer.text, answer.text
        assert dav.get(CAL + "mine-1.ics").status_code == 404
    assert _state(salon) == before


def test_a_whole_calendar_put_still_replaces_a_calendar_of_client_items(salon: Bridge) -> None:
    """A calendar the app made itself (MKCALENDAR), holding only its own events, stays the app's to replace."""
    with salon.client("nora") as dav:
        assert dav.request("MKCALENDAR", "/dav/nora/private/").status_code == 201
        assert dav.put("/dav/nora/private/old.ics", content=_calendar("old-1", FREE_AGAIN)).status_code == 201
        assert dav.put("/dav/nora/private/", content=_calendar("mine-1", FREE_AGAIN)).status_code in (200, 201, 204)
        assert dav.get("/dav/nora/private/old.ics").status_code == 404
        assert dav.get("/dav/nora/private/mine-1.ics").status_code == 200
