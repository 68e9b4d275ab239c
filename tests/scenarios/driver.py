"""The external side of a scenario: one remote calendar, changed as the provider's own apps would change it.

A scenario (tests/scenarios/test_scenarios.py) knows the sync engine and a :class:`RemoteDriver`, nothing
else: no protocol, no URL layout, no provider name. Each provider brings one driver module
(``caldav_driver.py`` for Radicale and Xandikos; Google, Microsoft Graph and EWS stand-ins later) and one
entry in ``tests/scenarios/conftest.py``'s ``PROVIDERS``; the scenarios then run against it unchanged.

A driver writes through the provider's own client path (python-caldav for CalDAV, the REST API for the
stand-ins), never through the bridge's adapter, so what the adapter reads back is what a phone or a web
calendar left behind. Handles are the driver's own names for events (for CalDAV the resource URL); a
scenario only passes them back to the same driver.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import Protocol

import icalendar

from bridge.adapters import Account


class RemoteDriver(Protocol):
    """One fresh, empty remote calendar of one provider."""

    name: str
    """The provider (and server) the driver stands for, for test ids and messages."""

    # Optional: ``write_methods``, the HTTP methods the provider's writes use, when not PUT (Graph: POST, PATCH,
    # DELETE); the fault scenarios fail those.

    origin: str
    """The HTTP origin (``http://host:port``) the provider answers at: what a fault proxy forwards to."""

    def account(self, via: str | None = None) -> Account:
        """What a connection needs to reach this calendar. ``via``: an HTTP origin (``http://host:port``)
        standing in front of the provider (:class:`tests.scenarios.faults.FaultProxy`); the account then
        reaches the provider through it, with the same credentials."""
        ...

    def create(self, uid: str, ical_text: str) -> str:
        """Create one event (a VCALENDAR with the VEVENTs of ``uid``) as a user would; its handle."""
        ...

    def create_many(self, events: Iterable[tuple[str, str]]) -> list[str]:
        """Create many events, (uid, ical_text) each, as fast as the provider allows; their handles."""
        ...

    def update(self, handle: str, ical_text: str) -> None:
        """Replace the event's content, as a user editing it would (the provider's own precondition)."""
        ...

    def delete(self, handle: str) -> None:
        """Delete the event, as a user would."""
        ...

    def events(self) -> dict[str, icalendar.Calendar]:
        """Every event of the calendar, by handle, read the way the provider's apps read them."""
        ...

    def expire_token(self, state: str) -> str:
        """Make the provider forget an adapter state (what an incremental fetch resumes from, as the engine's
        checkpoint holds it), as a provider expiring old tokens does; returns the adapter state to keep
        (the same one when the provider forgot it on its side, else one of the same form it never issued)."""
        ...


class Provider(Protocol):
    """Makes drivers for fresh remote calendars on one running provider (a server or a stand-in)."""

    name: str

    def new_driver(self) -> AbstractContextManager[RemoteDriver]:
        """A driver for a new, empty calendar of its own, released when the block ends."""
        ...


def handles_by_uid(driver: RemoteDriver) -> dict[str, list[str]]:
    """UID -> handles of the events carrying it (more than one handle for a UID is a duplicate)."""
    found: dict[str, list[str]] = {}
    for handle, calendar in driver.events().items():
        for uid in sorted({str(event["UID"]) for event in calendar.walk("VEVENT")}):
            found.setdefault(uid, []).append(handle)
    return found
