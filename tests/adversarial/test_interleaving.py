"""Hypothesis interleaves CalDAV writes, API bookings and sync runs on one calendar; nothing drifts.

Each example is a practice's calendar with a two-way connection to a real second Radicale. A
random sequence of steps runs against the live server: the booking engine books, moves and
cancels through /api/v1; a calendar app writes and deletes its own events and moves or deletes
booking events over /dav; the practitioner moves or deletes a booking in the external calendar;
the connection syncs now and then. A model follows what each step
should have done. After a final sync:

- every booking reads (API) as the model says, and its calendar item exists exactly when it is
  confirmed, at the booking's times;
- every event the app wrote is there as written, every one it deleted is gone;
- a booking moved or deleted in the external calendar (and not changed here since) follows there;
- the change feed lists every booking in commit order, each at its final status;
- the external calendar holds exactly the confirmed bookings (at their times) and the app's events.

CI tries ``CALBRIDGE_INTERLEAVING_EXAMPLES`` examples (25 by default, about 15 s per database);
set it higher for a deeper run.
"""

from __future__ import annotations

import itertools
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.ical.zones import parse_calendar
from tests.conftest import Bridge
from tests.servers import RADICALE_PASSWORD, RADICALE_USER, DavServer

SLOTS = 6
EXAMPLES = int(os.environ.get("CALBRIDGE_INTERLEAVING_EXAMPLES", "25"))
FIRST = (datetime.now(UTC) + timedelta(days=3)).replace(hour=8, minute=0, second=0, microsecond=0)
PROPFIND = '<?xml version="1.0"?><d:propfind xmlns:d="DAV:"><d:prop><d:getetag/></d:prop></d:propfind>'
_examples = itertools.count()


def slot(n: int) -> tuple[datetime, datetime]:
    start = FIRST + timedelta(days=n // 3, hours=2 * (n % 3))
    return start, start + timedelta(minutes=45)


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def client_event(uid: str, n: int, summary: str) -> str:
    start, end = slot(n)
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//app//EN\r\nBEGIN:VEVENT\r\n"
            f"UID:{uid}\r\nDTSTAMP:20261201T000000Z\r\nDTSTART:{stamp(start)}\r\nDTEND:{stamp(end)}\r\n"
            f"SUMMARY:{summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")


def moved(text: str, n: int) -> str:
    """The booking's event as a calendar app writes it back after dragging it to slot ``n``."""
    start, end = slot(n)
    zones, event = text.split("BEGIN:VEVENT", 1)
    event = re.sub(r"\nDTSTART[^\r\n]*", f"\nDTSTART:{stamp(start)}", event, count=1)
    event = re.sub(r"\nDTEND[^\r\n]*", f"\nDTEND:{stamp(end)}", event, count=1)
    return zones + "BEGIN:VEVENT" + re.sub(r"\nDURATION[^\r\n]*\r\n", "\n", event, count=1)


@dataclass
class Model:
    bookings: dict[str, dict[str, Any]] = field(default_factory=dict)  # id -> status, slot
    events: dict[str, tuple[int, str]] = field(default_factory=dict)  # href -> slot, summary
    pushed: set[str] = field(default_factory=set)  # bookings the last sync left in the external calendar
    dirty: set[str] = field(default_factory=set)  # bookings changed here since the last sync
    remote: dict[str, tuple[str, int]] = field(default_factory=dict)  # booking -> change made there, not synced

    def busy(self, n: int, ignore: str | None = None) -> bool:
        mine = [b["slot"] for i, b in self.bookings.items() if b["status"] == "confirmed" and i != ignore]
        return n in mine or any(s == n for s, _ in self.events.values())

    def confirmed(self) -> list[str]:
        return sorted(i for i, b in self.bookings.items() if b["status"] == "confirmed")


step = st.one_of(
    st.tuples(st.just("book"), st.integers(0, SLOTS - 1)),
    st.tuples(st.just("api_move"), st.integers(0, 5), st.integers(0, SLOTS - 1)),
    st.tuples(st.just("api_cancel"), st.integers(0, 5)),
    st.tuples(st.just("dav_move"), st.integers(0, 5), st.integers(0, SLOTS - 1)),
    st.tuples(st.just("dav_delete"), st.integers(0, 5)),
    st.tuples(st.just("app_put"), st.integers(0, 3), st.integers(0, SLOTS - 1)),
    st.tuples(st.just("app_delete"), st.integers(0, 3)),
    st.tuples(st.just("remote_move"), st.integers(0, 5), st.integers(0, SLOTS - 1)),
    st.tuples(st.just("remote_delete"), st.integers(0, 5)),
    st.tuples(st.just("sync")),
)


class Practice:
    """One example's world: a fresh tenant, calendar, tokens and connection on the shared server."""

    def __init__(self, bridge: Bridge, remote: DavServer) -> None:
        n = next(_examples)
        self.login, tenant = f"p{n}", f"Praxis {n}"
        bridge.add_user(tenant, self.login)
        self.collection = bridge.add_calendar(self.login, "cal")
        self.calendar_id = bridge.calendar_id(self.login, "cal")
        self.engine = bridge.api(bridge.add_token(tenant, scope="admin"))
        self.dav = bridge.client(self.login)
        self.remote, self.remote_calendar = remote, remote.new_calendar()
        added = self.engine.post("/connections", json={
            "calendar": self.calendar_id, "provider": "caldav", "url": remote.url, "username": RADICALE_USER,
            "password": RADICALE_PASSWORD, "remote_calendar": self.remote_calendar, "direction": "both"})
        assert added.status_code == 201, added.text
        self.connection = added.json()["id"]
        self.model = Model()
        self.order: list[str] = []  # booking ids in creation order

    def close(self) -> None:
        self.engine.close()
        self.dav.close()

    def booking(self, k: int) -> str | None:
        return self.order[k % len(self.order)] if self.order else None

    def run(self, action: tuple[Any, ...]) -> None:
        getattr(self, action[0])(*action[1:])

    # -- the booking engine ------------------------------------------------------------------

    def book(self, n: int) -> None:
        start, end = slot(n)
        answer = self.engine.post("/bookings", headers={"Idempotency-Key": f"k{len(self.order)}-{n}"}, json={
            "calendar": self.calendar_id, "start": start.isoformat(), "end": end.isoformat(),
            "customer": {"name": "Kundin", "email": "kundin@example.org", "language": "de"}})
        if self.model.busy(n):
            assert answer.status_code == 409, answer.text
            return
        assert answer.status_code == 201, answer.text
        booking = answer.json()["id"]
        self.order.append(booking)
        self.model.bookings[booking] = {"status": "confirmed", "slot": n}
        self.model.dirty.add(booking)

    def api_move(self, k: int, n: int) -> None:
        booking = self.booking(k)
        if booking is None:
            return
        start, end = slot(n)
        answer = self.engine.patch(f"/bookings/{booking}", json={"start": start.isoformat(), "end": end.isoformat()})
        state = self.model.bookings[booking]
        if state["status"] != "confirmed" or self.model.busy(n, ignore=booking):
            assert answer.status_code == 409, answer.text
            return
        assert answer.status_code == 200, answer.text
        if state["slot"] != n:  # a move to where it is changes nothing
            state["slot"] = n
            self.model.dirty.add(booking)

    def api_cancel(self, k: int) -> None:
        booking = self.booking(k)
        if booking is None:
            return
        answer = self.engine.delete(f"/bookings/{booking}")
        assert answer.status_code in (200, 409), answer.text
        if self.model.bookings[booking]["status"] == "confirmed":
            self.model.dirty.add(booking)
        self.model.bookings[booking]["status"] = "cancelled"

    # -- a calendar app ---------------------------------------------------------------------

    def _event_of(self, booking: str) -> str | None:
        read = self.engine.get(f"/bookings/{booking}")
        assert read.status_code == 200, read.text
        event: str | None = read.json()["event"]
        return event

    def dav_move(self, k: int, n: int) -> None:
        booking = self.booking(k)
        event = self._event_of(booking) if booking else None
        if booking is None or event is None:
            return
        current = self.dav.get(event)
        assert current.status_code == 200
        answer = self.dav.put(event, content=moved(current.text, n),
                              headers={"If-Match": current.headers["etag"], "Content-Type": "text/calendar"})
        assert answer.status_code in (201, 204), answer.text  # a move made in the app is not checked for clashes
        if self.model.bookings[booking]["slot"] != n:
            self.model.bookings[booking]["slot"] = n
            self.model.dirty.add(booking)

    def dav_delete(self, k: int) -> None:
        booking = self.booking(k)
        event = self._event_of(booking) if booking else None
        if booking is None or event is None:
            return
        assert self.dav.delete(event).status_code in (200, 204)
        self.model.bookings[booking]["status"] = "cancelled"
        self.model.dirty.add(booking)

    def app_put(self, k: int, n: int) -> None:
        href = f"app-{k}.ics"
        summary = f"Privat {k}.{n}"
        answer = self.dav.put(self.collection + href, content=client_event(f"app-{k}-{self.login}", n, summary),
                              headers={"Content-Type": "text/calendar"})
        assert answer.status_code in (201, 204), answer.text
        self.model.events[href] = (n, summary)

    def app_delete(self, k: int) -> None:
        href = f"app-{k}.ics"
        answer = self.dav.delete(self.collection + href)
        assert answer.status_code in ((200, 204) if href in self.model.events else (404,)), answer.text
        self.model.events.pop(href, None)

    # -- the practitioner in their own (external) calendar --------------------------------------

    def _remote_event(self, booking: str) -> tuple[str, str] | None:
        """The href and text of the booking's event in the external calendar."""
        with self.remote.client() as http:
            listed = http.request("PROPFIND", self.remote_calendar, content=PROPFIND,
                                  headers={"Depth": "1", "Content-Type": "application/xml"})
            for href in (h.text or "" for h in ET.fromstring(listed.content).iter("{DAV:}href")):
                if href.endswith(".ics"):
                    text = http.get(httpx.URL(self.remote.url).join(href)).text
                    if booking in text:
                        return href, text
        return None

    def _remote_target(self, k: int) -> tuple[str, str, str] | None:
        """A booking the last sync left in the external calendar, unchanged on both sides since."""
        booking = self.booking(k)
        if (booking is None or booking not in self.model.pushed or booking in self.model.dirty
                or booking in self.model.remote):
            return None
        found = self._remote_event(booking)
        assert found is not None, "a synced booking is in the external calendar"
        return booking, *found

    def remote_move(self, k: int, n: int) -> None:
        target = self._remote_target(k)
        if target is None:
            return
        booking, href, text = target
        with self.remote.client() as http:
            answer = http.put(httpx.URL(self.remote.url).join(href), content=moved(text, n),
                              headers={"Content-Type": "text/calendar"})
        assert answer.status_code in (201, 204), answer.text
        self.model.remote[booking] = ("move", n)

    def remote_delete(self, k: int) -> None:
        target = self._remote_target(k)
        if target is None:
            return
        booking, href, _ = target
        with self.remote.client() as http:
            assert http.delete(httpx.URL(self.remote.url).join(href)).status_code in (200, 204)
        self.model.remote[booking] = ("delete", 0)

    def sync(self) -> None:
        answer = self.engine.post(f"/connections/{self.connection}/sync", json={})
        assert answer.status_code == 200, answer.text
        assert answer.json()["status"] == "ok", answer.json()
        for booking, (change, n) in self.model.remote.items():
            if booking in self.model.dirty:
                continue  # changed here too: the booking is ours, our version wins
            state = self.model.bookings[booking]
            if change == "delete":
                state["status"] = "cancelled"
            else:
                state["slot"] = n
        self.model.remote.clear()
        self.model.dirty.clear()
        self.model.pushed = set(self.model.confirmed())

    # -- what must hold afterwards --------------------------------------------------------------

    def check(self) -> None:
        self.sync()
        for booking, state in self.model.bookings.items():
            read = self.engine.get(f"/bookings/{booking}").json()
            assert read["status"] == state["status"], (booking, read, state)
            start, end = slot(state["slot"])
            if state["status"] == "confirmed":
                assert (read["start"], read["end"]) == (stamp_iso(start), stamp_iso(end)), (read, state)
                item = self.dav.get(read["event"])
                assert item.status_code == 200 and start_of(item.text) == start
        for href, (n, summary) in self.model.events.items():
            item = self.dav.get(self.collection + href)
            assert item.status_code == 200 and summary in item.text and start_of(item.text) == slot(n)[0]
        self._check_feed()
        self._check_remote()

    def _check_feed(self) -> None:
        seen: dict[str, str] = {}
        cursor, positions = None, []
        while True:
            answer = self.engine.get("/changes", params={"since": cursor} if cursor else {})
            assert answer.status_code == 200, answer.text
            page = answer.json()
            for change in page["changes"]:
                if change.get("calendar") != self.calendar_id:
                    continue
                positions.append(change["number"])
                if change.get("booking"):
                    seen[change["booking"]["id"]] = change["booking"]["status"]
            cursor = page["next"]
            if not page["more"]:
                break
        assert positions == sorted(positions), "the change feed is in commit order"
        assert seen == {b: s["status"] for b, s in self.model.bookings.items()}, "every booking, at its final status"

    def _check_remote(self) -> None:
        with self.remote.client() as http:
            listed = http.request("PROPFIND", self.remote_calendar, content=PROPFIND,
                                  headers={"Depth": "1", "Content-Type": "application/xml"})
            hrefs = [h.text or "" for h in ET.fromstring(listed.content).iter("{DAV:}href")
                     if (h.text or "").endswith(".ics")]
            starts = sorted(start_of(http.get(httpx.URL(self.remote.url).join(h)).text) for h in hrefs)
        expected = sorted([slot(self.model.bookings[b]["slot"])[0] for b in self.model.confirmed()]
                          + [slot(n)[0] for n, _ in self.model.events.values()])
        assert starts == expected, "the external calendar holds the confirmed bookings and the app's events"


def stamp_iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def start_of(text: str) -> datetime:
    """The event's start in UTC, read as calbridge reads it (its own VTIMEZONE or IANA zone)."""
    start: datetime = parse_calendar(text).walk("VEVENT")[0]["DTSTART"].dt
    return start.astimezone(UTC)


@settings(max_examples=EXAMPLES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(steps=st.lists(step, min_size=3, max_size=14))
def test_bookings_items_changes_and_the_external_calendar_never_drift(bridge: Bridge, remote: DavServer,
                                                                      steps: list[tuple[Any, ...]]) -> None:
    practice = Practice(bridge, remote)
    try:
        for action in [("book", 0), ("book", 4), ("sync",), *steps]:  # two bookings already out there
            practice.run(action)
        practice.check()
    finally:
        practice.close()
