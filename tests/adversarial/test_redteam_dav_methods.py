"""Red team: routes around the /dav gate that Radicale still takes.

Radicale upper-cases the request method (``environ["REQUEST_METHOD"].upper()``) and h11 passes
``delete`` through as it came, so every check of the gate that compared the method as sent was
skipped for ``delete``, ``Delete``, ``put``, ``propfind``: the provisioned calendar was saved
only by the storage plugin's backstop, as a 500; a PROPFIND with a DTD was parsed by Radicale.
And a PROPPATCH that removes DAV:resourcetype turned the calendar the booking engine books into
into a plain collection: it vanished from every client's calendar list (RFC 4918, 15.9: the
resource type is decided by the request that makes the resource, not by PROPPATCH).
"""

from __future__ import annotations

import base64
import socket
from urllib.parse import urlsplit
from xml.etree import ElementTree

import httpx
import pytest

from tests.conftest import PASSWORD, Bridge

EVENT = ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//careless//EN\r\nBEGIN:VEVENT\r\nUID:keep\r\n"
         "DTSTAMP:20260101T000000Z\r\nDTSTART:20270101T090000Z\r\nDTEND:20270101T100000Z\r\nSUMMARY:keep\r\n"
         "END:VEVENT\r\nEND:VCALENDAR\r\n")
CALDAV = "{urn:ietf:params:xml:ns:caldav}"
EMPTY = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//careless//EN\r\nEND:VCALENDAR\r\n"
LISTING = ('<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/></D:prop></D:propfind>')
DTD = (b'<?xml version="1.0"?><!DOCTYPE D:propfind [<!ENTITY a "aaaaaaaaaa">]>'
       b'<D:propfind xmlns:D="DAV:"><D:prop><D:displayname>&a;</D:displayname></D:prop></D:propfind>')


def raw(bridge: Bridge, method: str, path: str, login: str, body: bytes = b"", *headers: str) -> tuple[int, str]:
    """A request with the method exactly as given (httpx upper-cases it)."""
    address = urlsplit(bridge.url)
    credentials = base64.b64encode(f"{login}:{PASSWORD}".encode()).decode()
    head = [f"{method} {path} HTTP/1.1", f"Host: {address.netloc}", f"Authorization: Basic {credentials}",
            f"Content-Length: {len(body)}", "Connection: close", *headers]
    with socket.create_connection((address.hostname or "127.0.0.1", address.port or 80), timeout=30) as sock:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status_line, _, rest = answer.decode(errors="replace").partition("\r\n")
    return int(status_line.split()[1]), rest


@pytest.fixture
def weber(bridge: Bridge) -> httpx.Client:
    bridge.add_user("Praxis", "weber")
    bridge.add_calendar("weber", "praxis")
    client = bridge.client("weber")
    answer = client.put("/dav/weber/praxis/keep.ics", content=EVENT, headers={"Content-Type": "text/calendar"})
    assert answer.status_code == 201, answer.text
    return client


def calendars_listed(client: httpx.Client) -> set[str]:
    answer = client.request("PROPFIND", "/dav/weber/", content=LISTING, headers={"Depth": "1"})
    assert answer.status_code == 207
    return {href for href, kind in _responses(answer.text) if "calendar" in kind}


def _responses(text: str) -> list[tuple[str, str]]:
    root = ElementTree.fromstring(text)
    found = []
    for response in root.iter("{DAV:}response"):
        href = response.findtext("{DAV:}href") or ""
        kinds = " ".join(child.tag for child in response.iter() if child.tag.startswith(CALDAV))
        found.append((href, kinds))
    return found


@pytest.mark.parametrize("method", ["delete", "Delete", "dELETE"])
def test_a_lower_case_delete_is_refused_like_delete(bridge: Bridge, weber: httpx.Client, method: str) -> None:
    status, rest = raw(bridge, method, "/dav/weber/praxis/", "weber")
    assert status == 403, rest
    assert "need-privileges" in rest
    assert weber.get("/dav/weber/praxis/keep.ics").status_code == 200
    assert "/dav/weber/praxis/" in calendars_listed(weber)


def test_a_lower_case_put_of_a_whole_calendar_is_refused_like_put(bridge: Bridge, weber: httpx.Client) -> None:
    status, rest = raw(bridge, "put", "/dav/weber/praxis/", "weber", EMPTY.encode(), "Content-Type: text/calendar")
    assert status == 403, rest
    assert weber.get("/dav/weber/praxis/keep.ics").status_code == 200


def test_a_lower_case_propfind_with_a_dtd_is_refused_like_propfind(bridge: Bridge, weber: httpx.Client) -> None:
    status, rest = raw(bridge, "propfind", "/dav/weber/praxis/", "weber", DTD, "Depth: 0")
    assert status == 400, rest
    assert "document type" in rest


@pytest.mark.parametrize("update", [
    '<D:remove><D:prop><D:resourcetype/></D:prop></D:remove>',
    '<D:set><D:prop><D:resourcetype><D:collection/></D:resourcetype></D:prop></D:set>',
    '<D:set><D:prop><D:resourcetype><CR:addressbook xmlns:CR="urn:ietf:params:xml:ns:carddav"/>'
    '</D:resourcetype></D:prop></D:set>',
])
def test_a_proppatch_of_the_resource_type_leaves_the_calendar_a_calendar(bridge: Bridge, weber: httpx.Client,
                                                                           update: str) -> None:
    body = f'<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:">{update}</D:propertyupdate>'
    answer = weber.request("PROPPATCH", "/dav/weber/praxis/", content=body)
    assert answer.status_code < 500
    assert "/dav/weber/praxis/" in calendars_listed(weber)
    assert weber.get("/dav/weber/praxis/keep.ics").status_code == 200
    again = weber.put("/dav/weber/praxis/new.ics", content=EVENT.replace("UID:keep", "UID:new"),
                      headers={"Content-Type": "text/calendar"})
    assert again.status_code == 201, again.text


def test_a_proppatch_of_the_display_name_still_works(weber: httpx.Client) -> None:
    body = ('<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><D:displayname>Praxis Weber'
            '</D:displayname></D:prop></D:set></D:propertyupdate>')
    answer = weber.request("PROPPATCH", "/dav/weber/praxis/", content=body)
    assert answer.status_code == 207, answer.text
    assert "/dav/weber/praxis/" in calendars_listed(weber)
