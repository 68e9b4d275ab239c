"""Red team: a careless client overwrites or deletes what the gate guards.

The gate read Basic credentials more strictly than Radicale (which takes "Basic" glued to the
base64, a tab, stray characters base64 skips, and ISO-8859-1): with such a header every guard of
the gate declined while Radicale logged the user in, and a mirrored item was deleted (200) or
overwritten (204) and became the client's; the provisioned calendar was saved only as a 500.
A PUT the item writer declines (a task, a UTF-16 body) overwrote a mirrored event with the plain
header, and an item path spelled with "//" passed the mirrored guard. The storage plugin had no
backstop for mirrored items: now it refuses them as it refuses protected calendars.
"""

from __future__ import annotations

import base64

import httpx
import pytest
from sqlalchemy import select, update

from bridge.passwords import hash_password
from bridge.store import users
from bridge.store.models import Item
from tests.conftest import PASSWORD, Bridge

CAL = "/dav/weber/praxis/"
EVENT = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//sync//EN\r\nBEGIN:VEVENT\r\nUID:{uid}\r\n"
         "DTSTAMP:20260101T000000Z\r\nDTSTART:20270101T090000Z\r\nDTEND:20270101T100000Z\r\nSUMMARY:{summary}\r\n"
         "END:VEVENT\r\nEND:VCALENDAR\r\n")
TASK = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//careless//EN\r\nBEGIN:VTODO\r\nUID:m\r\n"
        "DTSTAMP:20260101T000000Z\r\nSUMMARY:Mine\r\nEND:VTODO\r\nEND:VCALENDAR\r\n")
GOOD = base64.b64encode(f"weber:{PASSWORD}".encode()).decode()
ODD_CREDENTIALS = {
    "stray character": "Basic " + GOOD[:4] + "!" + GOOD[4:],
    "no space": "Basic" + GOOD,
    "tab": "Basic\t" + GOOD,
}


@pytest.fixture
def weber(bridge: Bridge) -> httpx.Client:
    """weber's provisioned calendar praxis with one event m mirrored from a connection."""
    bridge.add_user("Praxis", "weber")
    bridge.add_calendar("weber", "praxis")
    client = bridge.client("weber")
    answer = client.put(CAL + "m.ics", content=EVENT.format(uid="m", summary="Sync"),
                        headers={"Content-Type": "text/calendar"})
    assert answer.status_code == 201, answer.text
    with bridge.store.write() as session:
        session.execute(update(Item).values(origin="connection:1"))
    return client


def mirrored_as_it_was(bridge: Bridge, weber: httpx.Client) -> bool:
    with bridge.store.read() as session:
        origins = list(session.execute(select(Item.href, Item.origin)))
    return origins == [("m.ics", "connection:1")] and "SUMMARY:Sync" in weber.get(CAL + "m.ics").text


@pytest.mark.parametrize("spelling", list(ODD_CREDENTIALS))
def test_credentials_radicale_accepts_meet_the_gate_too(bridge: Bridge, weber: httpx.Client, spelling: str) -> None:
    headers = {"Authorization": ODD_CREDENTIALS[spelling]}
    with httpx.Client(base_url=bridge.url, timeout=30, headers=headers) as odd:
        assert odd.request("PROPFIND", CAL, headers={"Depth": "0"}).status_code == 207  # Radicale logs them in
        deleted = odd.delete(CAL + "m.ics")
        assert deleted.status_code == 403 and "need-privileges" in deleted.text
        overwritten = odd.put(CAL + "m.ics", content=EVENT.format(uid="m", summary="Mine"),
                              headers={"Content-Type": "text/calendar"})
        assert overwritten.status_code == 403
        wiped = odd.delete(CAL)
        assert wiped.status_code == 403 and "<D:unbind />" in wiped.text
    assert mirrored_as_it_was(bridge, weber)


def test_latin1_credentials_radicale_accepts_meet_the_gate_too(bridge: Bridge, weber: httpx.Client) -> None:
    with bridge.store.write() as session:
        users.create_user(session, users.tenant_by_name(session, "Praxis"), login="joerg", email="j@example.org",
                          password_hash=hash_password("Kennwört"))
    bridge.add_calendar("joerg", "eigen")
    latin1 = base64.b64encode("joerg:Kennwört".encode("iso8859-1")).decode()
    with httpx.Client(base_url=bridge.url, timeout=30, headers={"Authorization": "Basic " + latin1}) as odd:
        assert odd.request("PROPFIND", "/dav/joerg/eigen/", headers={"Depth": "0"}).status_code == 207
        wiped = odd.delete("/dav/joerg/eigen/")
        assert wiped.status_code == 403 and "need-privileges" in wiped.text


@pytest.mark.parametrize("body,content_type", [
    (TASK.encode(), "text/calendar"),
    (EVENT.format(uid="m", summary="Mine").encode("utf-16"), "text/calendar; charset=utf-16"),
])
def test_a_put_the_item_writer_declines_does_not_overwrite_a_mirrored_item(
        bridge: Bridge, weber: httpx.Client, body: bytes, content_type: str) -> None:
    answer = weber.put(CAL + "m.ics", content=body, headers={"Content-Type": content_type})
    assert answer.status_code == 403, answer.text
    assert mirrored_as_it_was(bridge, weber)


@pytest.mark.parametrize("path", ["/dav/weber//praxis/m.ics", "/dav/weber/./praxis/m.ics",
                                  "/dav/weber/x/../praxis/m.ics"])
def test_odd_spellings_of_a_mirrored_item_are_refused(bridge: Bridge, weber: httpx.Client, path: str) -> None:
    assert weber.delete(path).status_code == 403
    assert weber.put(path, content=EVENT.format(uid="m", summary="Mine"),
                     headers={"Content-Type": "text/calendar"}).status_code == 403
    assert mirrored_as_it_was(bridge, weber)
