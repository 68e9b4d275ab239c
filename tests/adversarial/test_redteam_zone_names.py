"""Red team: a TZID that names a folder of the tz database.

``zoneinfo.ZoneInfo("Europe")`` raises IsADirectoryError, not ZoneInfoNotFoundError, when the zones
come from the tzdata package; every lookup of a client's or a feed's zone name catches only the
latter. ``DTSTART;TZID=Europe:...`` answered a PUT with 500, and so did a MKCALENDAR whose
calendar-timezone names "Etc" and the API's new calendar in time zone "Europe".
"""

from __future__ import annotations

import httpx
import pytest

from tests.adversarial.test_redteam_timezones import FOOT, HEAD, event
from tests.conftest import Bridge

FOLDERS = ["Europe", "Etc", "America/Argentina", "__pycache__"]


@pytest.fixture
def bea(bridge: Bridge) -> httpx.Client:
    bridge.add_user("Praxis Berg", "bea")
    bridge.add_calendar("bea", "cal")
    return bridge.client("bea")


@pytest.mark.parametrize("tzid", FOLDERS)
def test_a_put_naming_a_zone_folder_is_not_a_500(bea: httpx.Client, tzid: str) -> None:
    answer = bea.put("/dav/bea/cal/a.ics", content=HEAD + event("a", tzid) + FOOT)
    assert answer.status_code in (201, 400), answer.text
    assert bea.get("/dav/bea/cal/").status_code == 200


@pytest.mark.parametrize("tzid", FOLDERS)
def test_a_mkcalendar_with_a_zone_folder_is_not_a_500(bea: httpx.Client, tzid: str) -> None:
    body = ('<?xml version="1.0"?><C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:set><D:prop>'
            f'<C:calendar-timezone>BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VTIMEZONE\r\nTZID:{tzid}\r\n'
            'BEGIN:STANDARD\r\nDTSTART:19700101T000000\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\n'
            'END:VTIMEZONE\r\nEND:VCALENDAR\r\n</C:calendar-timezone></D:prop></D:set></C:mkcalendar>')
    answer = bea.request("MKCALENDAR", "/dav/bea/new/", content=body)
    assert answer.status_code == 201, answer.text


@pytest.mark.parametrize("tzid", FOLDERS)
def test_the_api_refuses_a_zone_folder_as_a_calendars_zone(bridge: Bridge, bea: httpx.Client, tzid: str) -> None:
    with bridge.api(bridge.add_token("Praxis Berg", scope="admin")) as api:
        answer = api.post("/calendars", json={"owner": "bea", "slug": "neu", "timezone": tzid})
    assert answer.status_code == 422, answer.text
