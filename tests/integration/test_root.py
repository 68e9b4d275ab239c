"""The bare host: a browser lands on the admin page, a CalDAV client given only the host finds its principal."""

from __future__ import annotations

import caldav

from tests.conftest import PASSWORD, Bridge


def test_a_browser_at_the_host_goes_to_the_admin_page(bridge: Bridge) -> None:
    with bridge.client("nobody") as client:
        answer = client.get("/", follow_redirects=False)
    assert answer.status_code == 302 and answer.headers["location"] == "/admin/"


def test_a_caldav_client_given_only_the_host_finds_its_principal_and_calendars(bridge: Bridge) -> None:
    bridge.add_user("Praxis", "weber")
    bridge.add_calendar("weber", "praxis")
    with bridge.client("weber") as client:
        moved = client.request("PROPFIND", "/", headers={"Depth": "0"}, follow_redirects=False)
    assert moved.status_code == 301 and moved.headers["location"] == "/dav/"
    with caldav.DAVClient(url=bridge.url + "/", username="weber", password=PASSWORD) as dav:
        principal = dav.principal()
        assert str(principal.url).endswith("/dav/weber/")
        assert [str(c.url).rstrip("/").rsplit("/", 1)[-1] for c in principal.calendars()] == ["praxis"]
