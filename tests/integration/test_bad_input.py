"""Bad input is refused with a reason, nothing of it is stored, and the server stays up."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from bridge.store.models import Change, Item
from tests.conftest import Bridge
from tests.ics import event

T0 = datetime(2026, 12, 1, 9, tzinfo=UTC)
CAL = "/dav/nora/cal/"


@pytest.fixture
def nora(bridge: Bridge) -> Bridge:
    bridge.add_user("Salon", "nora")
    bridge.add_calendar("nora", "cal")
    return bridge


def _stored(bridge: Bridge) -> tuple[int, int]:
    with bridge.store.read() as session:
        items = session.scalar(select(func.count()).select_from(Item)) or 0
        changes = session.scalar(select(func.count()).select_from(Change)) or 0
    return items, changes


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("this is not iCalendar", "invalid iCalendar data"),
        ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:x\r\nDTSTART:2026-12-01\r\nEND:VEVENT\r\n"
         "END:VCALENDAR\r\n", "invalid iCalendar data"),
        ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nDTSTART:20261201T090000Z\r\nEND:VEVENT\r\n"
         "END:VCALENDAR\r\n", "UID"),
        ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:a\r\nDTSTART:20261201T090000Z\r\nEND:VEVENT\r\n"
         "BEGIN:VEVENT\r\nUID:b\r\nDTSTART:20261201T090000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n", "UID"),
    ],
    ids=["garbage", "bad-date", "no-uid", "two-uids"],
)
def test_malformed_icalendar_gets_400_with_a_reason_and_nothing_is_stored(nora: Bridge, body: str,
                                                                          reason: str) -> None:
    with nora.client("nora") as http:
        answer = http.put(CAL + "bad.ics", content=body, headers={"Content-Type": "text/calendar"})
        assert answer.status_code == 400
        assert reason in answer.text
        assert http.get(CAL + "bad.ics").status_code == 404
    assert _stored(nora) == (0, 0)


def test_body_over_the_limit_gets_413(nora: Bridge) -> None:
    big = event("big@test", T0, T0 + timedelta(hours=1), "x" * (nora.settings.max_body_bytes + 10))
    with nora.client("nora") as http:
        assert http.put(CAL + "big.ics", content=big).status_code == 413

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted while it streams in
            data = big.encode()
            for start in range(0, len(data), 65536):
                yield data[start:start + 65536]

        assert http.put(CAL + "big.ics", content=chunks()).status_code == 413
        assert http.put(CAL + "ok.ics", content=event("ok@test", T0, T0 + timedelta(hours=1))).status_code == 201
    assert _stored(nora)[0] == 1


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<D:propfind xmlns:D="DAV:"><D:prop><D:displayname>&lol3;</D:displayname></D:prop></D:propfind>"""
EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><D:displayname>&xxe;</D:displayname></D:prop></D:set>
</D:propertyupdate>"""


@pytest.mark.parametrize(("method", "body"), [("PROPFIND", BILLION_LAUGHS), ("PROPPATCH", EXTERNAL_ENTITY),
                                              ("REPORT", BILLION_LAUGHS)])
def test_xml_with_entity_declarations_is_refused_unexpanded(nora: Bridge, method: str, body: str) -> None:
    with nora.client("nora") as http:
        answer = http.request(method, CAL, content=body, headers={"Depth": "0"})
        assert answer.status_code == 400
        assert "entity" in answer.text
        assert "root:" not in answer.text and "lollol" not in answer.text
        names = http.request("PROPFIND", CAL, headers={"Depth": "0"},
                             content='<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:displayname/>'
                                     "</D:prop></D:propfind>")
        assert "root:" not in names.text


def test_malformed_xml_gets_400(nora: Bridge) -> None:
    with nora.client("nora") as http:
        answer = http.request("PROPFIND", CAL, content="<D:propfind xmlns:D='DAV:'><unclosed>")
        assert answer.status_code == 400
        assert "malformed XML" in answer.text


def test_unknown_collection_and_item_get_404(nora: Bridge) -> None:
    with nora.client("nora") as http:
        assert http.request("PROPFIND", "/dav/nora/nothing/", headers={"Depth": "0"}).status_code == 404
        assert http.get(CAL + "missing.ics").status_code == 404
        assert http.request("REPORT", "/dav/nora/nothing/", headers={"Depth": "1"},
                            content='<?xml version="1.0"?><C:calendar-query xmlns:C="urn:ietf:params:xml:ns:caldav"'
                                    ' xmlns:D="DAV:"><D:prop><D:getetag/></D:prop></C:calendar-query>'
                            ).status_code == 404


MKCOL_PLAIN = '<?xml version="1.0"?><D:mkcol xmlns:D="DAV:"><D:set><D:prop><D:resourcetype><D:collection/>' \
    "</D:resourcetype></D:prop></D:set></D:mkcol>"


def test_a_principal_cannot_be_turned_into_a_calendar_nor_a_plain_collection_made(nora: Bridge) -> None:
    with nora.client("nora") as http:
        assert http.request("MKCALENDAR", "/dav/nora/").status_code in (403, 405, 409)
        assert http.request("MKCOL", "/dav/nora/plain/", content=MKCOL_PLAIN).status_code in (400, 403)
        assert http.request("PROPFIND", "/dav/nora/plain/", headers={"Depth": "0"}).status_code == 404
        assert http.request("PROPPATCH", "/dav/nora/", content=(
            '<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><D:resourcetype><D:collection/>'
            '<C:calendar xmlns:C="urn:ietf:params:xml:ns:caldav"/></D:resourcetype></D:prop></D:set>'
            "</D:propertyupdate>")).status_code in (403, 405, 409)
        assert http.request("PROPFIND", "/dav/nora/", headers={"Depth": "0"}).status_code == 207
    assert _stored(nora) == (0, 0)
