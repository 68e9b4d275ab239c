"""Red team: the routes around the collection guard that held, kept as a regression.

Every spelling and method a careless or hostile client might use to end weber's provisioned
calendar, or to reach into another tenant's: each must be refused, and weber's event and nora's
must still be there afterwards.
"""

from __future__ import annotations

import pytest

from tests.adversarial.test_redteam_dav_methods import EMPTY, EVENT, raw
from tests.conftest import Bridge

P = "/dav/weber/praxis/"
ROUTES = [
    ("MOVE", P, ("Destination: /dav/weber/moved/",)),
    ("MOVE", P + "keep.ics", ("Destination: /dav/weber/praxis/", "Overwrite: T")),
    ("MOVE", P + "keep.ics", ("Destination: /dav/nora/salon/x.ics",)),
    ("MOVE", "/dav/nora/salon/n.ics", ("Destination: /dav/weber/praxis/n.ics",)),
    ("COPY", P + "keep.ics", ("Destination: /dav/weber/praxis/copy.ics",)),
    ("POST", P, ("X-HTTP-Method-Override: DELETE",)),
    ("MKCOL", P, ()),
    ("MKCALENDAR", P, ()),
    ("DELETE", "/dav/weber/", ()),
    ("DELETE", "/dav/weber/praxis", ()),
    ("DELETE", "/dav/weber/praxis/.", ()),
    ("DELETE", "/dav/weber/praxis%2F", ()),
    ("DELETE", "/dav/%77eber/praxis/", ()),
    ("DELETE", "/dav/weber/praxis/keep.ics/..", ()),
    ("DELETE", "/dav/../dav/weber/praxis/", ()),
    ("DELETE", "/dav/./weber/praxis/", ()),
    ("DELETE", "/dav//weber//praxis//", ()),
    ("DELETE", "/dav/weber/praxis/;x", ()),
    ("DELETE", "/dav/weber/praxis/?x=1", ()),
    ("DELETE", "/DAV/weber/praxis/", ()),
    ("DELETE", "http://elsewhere/dav/weber/praxis/", ()),
    ("DELETE", "/dav/nora/salon/", ()),
    ("PUT", "/dav/weber/praxis", ("Content-Type: text/calendar",)),
    ("PUT", "/dav/weber/praxis/.", ("Content-Type: text/calendar",)),
    ("PUT", "/dav/weber/praxis/..", ("Content-Type: text/calendar",)),
    ("PUT", "/dav/nora/salon/", ("Content-Type: text/calendar",)),
    ("PUT", P, ("Content-Type: text/calendar", "X-HTTP-Method-Override: PATCH")),
]


@pytest.fixture
def two_tenants(bridge: Bridge) -> Bridge:
    bridge.add_user("Praxis", "weber")
    bridge.add_calendar("weber", "praxis")
    bridge.add_user("Salon", "nora")
    bridge.add_calendar("nora", "salon")
    with bridge.client("weber") as weber, bridge.client("nora") as nora:
        assert weber.put(P + "keep.ics", content=EVENT).status_code == 201
        assert nora.put("/dav/nora/salon/n.ics", content=EVENT.replace("UID:keep", "UID:n")).status_code == 201
    return bridge


@pytest.mark.parametrize("method,path,headers", ROUTES, ids=[f"{m} {p} {' '.join(h)}" for m, p, h in ROUTES])
def test_no_route_ends_the_calendar_or_reaches_another_tenant(two_tenants: Bridge, method: str, path: str,
                                                             headers: tuple[str, ...]) -> None:
    body = EMPTY.encode() if method == "PUT" else b""
    status, _ = raw(two_tenants, method, path, "weber", body, *headers)
    assert status in (400, 403, 404, 405, 409), status
    with two_tenants.client("weber") as weber, two_tenants.client("nora") as nora:
        assert "SUMMARY:keep" in weber.get(P + "keep.ics").text
        assert nora.get("/dav/nora/salon/n.ics").status_code == 200
        assert weber.get(P + "copy.ics").status_code == 404
