"""The local version an action was planned against, read for the plan and checked at apply time.

A run plans from one read of the store and applies afterwards, one short transaction per action;
a CalDAV client, the booking API or an option change may write an item in between. Each action
that writes here carries the :class:`~bridge.sync.plan.LocalVersion` it was planned against, and
:func:`check` compares it, inside that action's write transaction with the calendar locked, with
what is there now. A moved version raises :class:`StaleVersion`: the applier skips the action (no
write, no mail) and the engine saves no state, so the next run sees the remote change again and
plans it against the new local version (the owner's side wins a real conflict).

A booking's state is its status and sequence: every change the booking engine makes bumps the
sequence, and its item's etag alone would not show a booking whose event a client replaced.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge.store import bookings as booking_rows
from bridge.store import calendars, items
from bridge.store.models import Booking, Calendar, User
from bridge.sync.plan import LocalVersion


class StaleVersion(Exception):
    """The item or booking an action was planned against changed before it was applied.

    Carries the action's item href (ours: a hash, a booking id or a client's name for its item),
    which the run log does not record."""

    def __init__(self, item_href: str) -> None:
        super().__init__("the item changed here after the run planned its action")
        self.item_href = item_href


def booking_state(booking: Booking) -> str:
    """What identifies a booking's state for a version check: status and sequence."""
    return _state(booking.status, booking.sequence)


def _state(status: str, sequence: int) -> str:
    return f"{status}:{sequence}"


def booking_states(session: Session, calendar_id: int) -> dict[str, str]:
    """The state of every booking of the calendar, by its item's href (for the planner's inputs)."""
    rows = session.execute(select(Booking.item_href, Booking.status, Booking.sequence)
                           .where(Booking.calendar_id == calendar_id))
    return {href: _state(status, sequence) for href, status, sequence in rows}


def current(session: Session, calendar_id: int, href: str) -> LocalVersion:
    """The version at ``href`` now, as :func:`bridge.sync.plan.version_of` would describe it."""
    item = items.by_href(session, calendar_id, href)
    if item is None:
        return LocalVersion()
    booking = booking_rows.by_item(session, calendar_id, href)
    return LocalVersion(item.etag, booking_state(booking) if booking is not None else None)


def check(session: Session, calendar: Calendar, owner: User, href: str, seen: LocalVersion) -> None:
    """Lock the calendar for this write transaction (writers of a calendar queue on its row), then
    raise :class:`StaleVersion` if the version at ``href`` is no longer ``seen``."""
    calendars.lock_for_write(session, [(owner.login, calendar.slug)])
    if current(session, calendar.id, href) != seen:
        raise StaleVersion(href)
