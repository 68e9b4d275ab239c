"""A booking's event written over CalDAV stays a booking: the gate carries a client's DELETE out as
the booking's cancellation and a PUT that moves it as its reschedule, with the booking row, the
change feed (and so the webhooks) and the customer's mail as for the API.

The change was made in the provider's own calendar, so a move is not checked against their busy
time (as when the sync engine follows a booking moved in the external calendar); the mail is the
API's, blind copy to the owner included when the calendar asks for it (the change may have been
made by a tenant's admin, not by the owner). Any other edit of a booking's event
(:class:`bridge.booking_edits.EditRefused`) is refused with 403 need-privileges; so is every other
route to it (a MOVE, a body the gate leaves to Radicale), by the store's origin rule.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session

from bridge import bookings
from bridge.booking_edits import EditRefused, proposed_times
from bridge.notify.booking_changes import confirm_booking_change
from bridge.settings import Settings
from bridge.storage_plugin.auth import SqlAuth
from bridge.storage_plugin.rights import SqlRights
from bridge.store import bookings as booking_rows
from bridge.store import calendars, changes, items, writers
from bridge.store.db import Store
from bridge.store.models import Booking, Calendar, Item, User
from bridge.store.objects import CalendarObject
from bridge.web.api.context import Keys
from bridge.web.dav_access import authenticated, may, segments
from bridge.web.dav_answer import Answer
from bridge.web.dav_refusal import refusal

_PRECONDITION_FAILED = Answer(412, [(b"Content-Type", b"text/plain; charset=utf-8")], b"Precondition failed.")


class BookingEdits:
    def __init__(self, store: Store, settings: Settings, auth: SqlAuth, rights: SqlRights) -> None:
        self._store = store
        self._settings = settings
        self._auth = auth
        self._rights = rights
        self._keys = Keys(settings)

    def delete(self, path: str, headers: dict[str, str], href_prefix: str) -> Answer | None:
        """The answer to a DELETE of a booking's event (the booking cancelled), or None for Radicale
        to answer (anything else, and whatever the gate cannot decide as Radicale would)."""
        parts = segments(path, 3, trailing_slash=False)
        login = authenticated(self._auth, headers) if parts else None
        if parts is None or login is None:
            return None
        owner_login, slug, href = parts
        if not may(self._rights, login, owner_login, slug, "w"):
            return None
        if not self._is_booking_event(owner_login, slug, href):
            return None  # most DELETEs: decided without taking the write lock
        with self._store.write() as session:
            calendars.lock_for_write(session, [(owner_login, slug)])
            calendar = calendars.calendar_by_path(session, owner_login, slug)
            current = items.by_href(session, calendar.id, href) if calendar is not None else None
            if calendar is None or current is None or current.origin != writers.BOOKING_ORIGIN:
                return None
            booking = booking_rows.by_item(session, calendar.id, href)
            if booking is None or booking.status != "confirmed":
                return None  # an event without its booking: the store refuses the client
            if headers.get("if-match", "*") not in ("*", current.etag):
                return _PRECONDITION_FAILED
            now = datetime.now(UTC)
            bookings.cancel(session, calendar, booking, now)
            self._confirm(session, booking, calendar, "booking_cancelled", now)
            changes.prune_now_and_then(session, calendar, self._settings.sync_token_max_age_days, now)
        return Answer(204, [])

    def _is_booking_event(self, owner_login: str, slug: str, href: str) -> bool:
        with self._store.read() as session:
            calendar = calendars.calendar_by_path(session, owner_login, slug)
            current = items.by_href(session, calendar.id, href) if calendar is not None else None
            return current is not None and current.origin == writers.BOOKING_ORIGIN

    def put(self, session: Session, calendar: Calendar, current: Item, sent: CalendarObject,
            location: str) -> Answer:
        """The answer to a PUT over the booking's event ``current``, in the gate's write transaction
        (calendar locked, preconditions checked)."""
        booking = booking_rows.by_item(session, calendar.id, current.href)
        if booking is None or booking.status != "confirmed":
            return refusal(location)
        now = datetime.now(UTC)
        try:
            start, end = proposed_times(booking, calendar, sent, now)
        except EditRefused:
            return refusal(location)
        if (start, end) != (booking.start, booking.end):
            previous = booking.start
            bookings.reschedule(session, calendar, booking, start, end, now, require_free=False)
            self._confirm(session, booking, calendar, "booking_rescheduled", now, previous)
            changes.prune_now_and_then(session, calendar, self._settings.sync_token_max_age_days, now)
        # What is stored is the booking's rendering, not the octets sent: no ETag (RFC 4791 §5.3.4),
        # so the client reads the event back.
        return Answer(204, [])

    def _confirm(self, session: Session, booking: Booking, calendar: Calendar, kind: str, now: datetime,
                 previous_start: datetime | None = None) -> None:
        if not self._settings.mail_enabled:
            return
        owner = session.get(User, calendar.owner_id)
        if owner is None:
            return
        confirm_booking_change(session, self._settings, self._keys.get(), booking, calendar, owner, kind,
                               uid=bookings.event_uid(booking), now=now, previous_start=previous_start,
                               bcc_provider=calendar.bcc_provider)
