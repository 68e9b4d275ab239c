"""Nothing of another tenant can be seen or written on any /dav path; inside a tenant a member
reaches only their own calendars and an admin all of them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from bridge.store.models import Calendar, Item
from tests.conftest import Bridge
from tests.ics import event

T0 = datetime(2026, 12, 1, 9, tzinfo=UTC)
PROPFIND = '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>'
REPORT = ('<?xml version="1.0"?><C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">'
          '<D:prop><C:calendar-data/></D:prop><C:filter><C:comp-filter name="VCALENDAR"/></C:filter>'
          "</C:calendar-query>")
PROPPATCH = ('<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:"><D:set><D:prop>'
             "<D:displayname>pwned</D:displayname></D:prop></D:set></D:propertyupdate>")
MKCALENDAR = '<?xml version="1.0"?><C:mkcalendar xmlns:C="urn:ietf:params:xml:ns:caldav"/>'


@pytest.fixture
def tenants(bridge: Bridge) -> Bridge:
    """Tenant A: admin anna, member mia, each with a calendar; tenant B: member bob, admin bea."""
    for tenant, login, role in (("A", "anna", "admin"), ("A", "mia", "member"),
                                ("B", "bob", "member"), ("B", "bea", "admin")):
        bridge.add_user(tenant, login, role)
        bridge.add_calendar(login, "cal")
    for login in ("anna", "mia", "bob"):
        with bridge.client(login) as http:
            assert http.put(f"/dav/{login}/cal/secret.ics",
                            content=event(f"{login}-secret@test", T0, T0 + timedelta(hours=1),
                                          f"{login}'s secret")).status_code == 201
    return bridge


def _state(bridge: Bridge) -> list[tuple[str, int, str]]:
    with bridge.store.read() as session:
        calendars = session.execute(select(Calendar.slug, Calendar.change_counter, Calendar.props)
                                    .order_by(Calendar.id)).all()
        items = session.scalar(select(func.count()).select_from(Item))
    return [(slug, counter, props) for slug, counter, props in calendars] + [("items", items or 0, "")]


def _attempts(victim: str) -> list[tuple[str, str, dict[str, str], str]]:
    """(method, path, headers, body) for every way into the victim's calendar."""
    cal = f"/dav/{victim}/cal/"
    return [
        ("PROPFIND", f"/dav/{victim}/", {"Depth": "1"}, PROPFIND),
        ("PROPFIND", cal, {"Depth": "1"}, PROPFIND),
        ("REPORT", cal, {"Depth": "1"}, REPORT),
        ("GET", cal + "secret.ics", {}, ""),
        ("GET", cal, {}, ""),
        ("PUT", cal + "new.ics", {"Content-Type": "text/calendar"}, event("x@test", T0, T0 + timedelta(hours=1))),
        ("PUT", cal + "secret.ics", {"Content-Type": "text/calendar"},
         event(f"{victim}-secret@test", T0, T0 + timedelta(hours=2), "overwritten")),
        ("DELETE", cal + "secret.ics", {}, ""),
        ("DELETE", cal, {}, ""),
        ("PROPPATCH", cal, {}, PROPPATCH),
        ("MKCALENDAR", f"/dav/{victim}/new/", {}, MKCALENDAR),
        ("MOVE", cal + "secret.ics", {"Destination": "/dav/{attacker}/cal/stolen.ics"}, ""),
    ]


@pytest.mark.parametrize(("attacker", "victim"), [("bob", "mia"), ("bea", "anna"), ("bea", "mia"),
                                                  ("mia", "anna"), ("mia", "bob"), ("anna", "bob")])
def test_every_method_on_a_foreign_calendar_is_refused(tenants: Bridge, attacker: str, victim: str) -> None:
    before = _state(tenants)
    with tenants.client(attacker) as http:
        for method, path, headers, body in _attempts(victim):
            headers = {key: value.format(attacker=attacker) for key, value in headers.items()}
            answer = http.request(method, path, headers=headers, content=body)
            assert answer.status_code in (403, 404), (method, path, answer.status_code)
            assert "secret" not in answer.text, (method, path)
        # a move from one's own calendar into the victim's is refused too
        moved = http.request("MOVE", f"/dav/{attacker}/cal/secret.ics",
                             headers={"Destination": f"/dav/{victim}/cal/planted.ics"})
        assert moved.status_code in (403, 404)
    assert _state(tenants) == before


def test_root_lists_only_what_the_user_may_see(tenants: Bridge) -> None:
    def listed(login: str) -> set[str]:
        with tenants.client(login) as http:
            answer = http.request("PROPFIND", "/dav/", headers={"Depth": "1"}, content=PROPFIND)
        assert answer.status_code == 207
        return {name for name in ("anna", "mia", "bob", "bea") if f"/dav/{name}/" in answer.text}

    assert listed("mia") == {"mia"}
    assert listed("anna") == {"anna", "mia"}
    assert listed("bea") == {"bob", "bea"}


def test_tenant_admin_reads_and_writes_every_calendar_of_the_tenant(tenants: Bridge) -> None:
    with tenants.client("anna") as http:
        assert "mia's secret" in http.get("/dav/mia/cal/secret.ics").text
        listing = http.request("PROPFIND", "/dav/mia/", headers={"Depth": "1"}, content=PROPFIND)
        assert "/dav/mia/cal/" in listing.text
        assert http.put("/dav/mia/cal/booked.ics",
                        content=event("booked@test", T0, T0 + timedelta(hours=1))).status_code == 201


def test_wrong_password_and_anonymous_get_401(tenants: Bridge) -> None:
    with tenants.client("mia", "wrong password") as http:
        assert http.get("/dav/mia/cal/secret.ics").status_code == 401
    with tenants.client("nobody") as http:
        assert http.get("/dav/mia/cal/secret.ics").status_code == 401
    import httpx

    with httpx.Client(base_url=tenants.url) as http:
        assert http.request("PROPFIND", "/dav/mia/cal/", headers={"Depth": "1"}).status_code == 401
