"""The scenario driver for CalDAV servers: a second Radicale and Xandikos on loopback, changed through the
python-caldav client library the way a phone's calendar app changes them (PUT with the server's own
If-Match, DELETE, calendar-query listings), never through the bridge's adapter."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import caldav
import icalendar

from bridge.adapters import Account
from tests.servers import DavServer, dav_server

_TOKEN_TAIL = re.compile(r"[0-9a-fA-F]+$")


@dataclass
class CalDavDriver:
    """One fresh calendar collection on a CalDAV server, reached with python-caldav."""

    name: str
    server: DavServer
    calendar_url: str
    client: caldav.DAVClient = field(repr=False)

    def __post_init__(self) -> None:
        self.calendar = self.client.calendar(url=self.calendar_url)

    @property
    def origin(self) -> str:
        parts = urlsplit(self.server.url)
        return f"{parts.scheme}://{parts.netloc}"

    def account(self, via: str | None = None) -> Account:
        credentials = {"username": self.server.auth[0], "password": self.server.auth[1]} if self.server.auth else {}
        server_url, calendar_url = self.server.url, self.calendar_url
        if via is not None:
            server_url, calendar_url = _through(server_url, via), _through(calendar_url, via)
        return Account("caldav", server_url, calendar_url, credentials)

    def create(self, uid: str, ical_text: str) -> str:
        created = self.calendar.add_event(ical_text, increase_seqno=False)
        assert uid in {str(event["UID"]) for event in created.icalendar_instance.walk("VEVENT")}
        return str(created.url)

    def create_many(self, events: Iterable[tuple[str, str]]) -> list[str]:
        """One plain PUT per event through the library's client (``add_event`` reads each back, which
        doubles the time of a 500-event set-up); names as python-caldav gives them."""
        handles = []
        for uid, text in events:
            url = self.calendar.url.join(quote(uid, safe="") + ".ics")
            answer = self.client.put(str(url), text, {"Content-Type": "text/calendar; charset=utf-8",
                                                      "If-None-Match": "*"})
            assert answer.status in (201, 204), answer.status
            handles.append(str(url))
        return handles

    def update(self, handle: str, ical_text: str) -> None:
        event = self.calendar.event_by_url(handle)
        event.load()  # the etag the save's If-Match carries, as a client editing the event holds it
        event.data = ical_text
        event.save(increase_seqno=False, precondition="etag")

    def delete(self, handle: str) -> None:
        event = self.calendar.event_by_url(handle)
        event.load()
        event.delete(if_match=True)

    def events(self) -> dict[str, icalendar.Calendar]:
        return {str(found.url): icalendar.Calendar.from_ical(found.data) for found in self.calendar.get_events()}

    def expire_token(self, state: str) -> str:
        """Neither server can be told to forget one token, so the state gets one of the same form that
        the server never issued (Radicale: a hash it has no record of; Xandikos: an unknown commit)."""
        data = json.loads(state)
        token = data.get("t")
        assert isinstance(token, str) and token, "a CalDAV state without a sync token has nothing to expire"
        tail = _TOKEN_TAIL.search(token)
        data["t"] = token[:tail.start()] + "0" * len(tail.group()) if tail else token + "-expired"
        return json.dumps(data, separators=(",", ":"), sort_keys=True)


@dataclass
class CalDavProvider:
    """A running CalDAV server handing out a fresh calendar per driver."""

    name: str
    server: DavServer

    @contextmanager
    def new_driver(self) -> Iterator[CalDavDriver]:
        url = self.server.new_calendar()
        login = {"username": self.server.auth[0], "password": self.server.auth[1]} if self.server.auth else {}
        with caldav.DAVClient(url=url, timeout=30, **login) as client:
            yield CalDavDriver(self.name, self.server, url, client)


@contextmanager
def caldav_provider(name: str, directory: Path) -> Iterator[CalDavProvider]:
    """``name``: "radicale" or "xandikos" (tests/servers.py), started for as long as the block runs."""
    with dav_server(name, directory) as server:
        yield CalDavProvider(name, server)


def _through(url: str, via: str) -> str:
    """``url`` with its scheme and host:port replaced by those of ``via``."""
    parts, proxy = urlsplit(url), urlsplit(via)
    return urlunsplit((proxy.scheme, proxy.netloc, parts.path, parts.query, parts.fragment))
