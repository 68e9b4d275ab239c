"""Red team: what the change feed says when a client deletes a calendar it made itself.

A calendar made with MKCALENDAR stays the client's to delete (it holds no bookings or
connections), but the delete took the calendar's row and its change log with it: the booking
engine, which had read the events of it from GET /api/v1/changes, never heard they were gone and
kept them as busy. Now such a DELETE ends the calendar as bridge.removal does: each item's
deletion is in the feed, and the calendar's name is free again.
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.adversarial.test_redteam_dav_methods import EVENT
from tests.conftest import Bridge


def changes(api: httpx.Client, since: str | None = None) -> dict[str, Any]:
    answer = api.get("/changes", params={"since": since} if since else {})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def test_the_feed_reports_the_events_of_a_calendar_the_client_deleted(bridge: Bridge) -> None:
    bridge.add_user("Praxis", "weber")
    with bridge.client("weber") as weber, bridge.api(bridge.add_token("Praxis", scope="admin")) as engine:
        assert weber.request("MKCALENDAR", "/dav/weber/c1/").status_code == 201
        assert weber.put("/dav/weber/c1/e.ics", content=EVENT).status_code == 201
        seen = changes(engine)
        assert [(c["href"], c["deleted"]) for c in seen["changes"]] == [("/dav/weber/c1/e.ics", False)]
        assert weber.delete("/dav/weber/c1/").status_code in (200, 204)
        after = changes(engine, seen["next"])
        assert [(c["href"], c["deleted"]) for c in after["changes"]] == [("/dav/weber/c1/e.ics", True)]
        assert weber.get("/dav/weber/c1/e.ics").status_code == 404
        assert engine.get("/calendars").json()["calendars"] == []
        # the name is free again, and a new calendar under it starts empty
        assert weber.request("MKCALENDAR", "/dav/weber/c1/").status_code == 201
        assert weber.get("/dav/weber/c1/e.ics").status_code == 404
        assert weber.put("/dav/weber/c1/e.ics", content=EVENT).status_code == 201
        again = changes(engine, after["next"])
        assert [(c["href"], c["deleted"]) for c in again["changes"]] == [("/dav/weber/c1/e.ics", False)]
