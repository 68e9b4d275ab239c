"""Removing a calendar or a user: the one path the CLI, /api/v1 and the admin page share.

Why one path: a removal used to cascade in the database, so the calendar's bookings vanished
without a cancellation the booking engine could see, and its connections (with credentials),
mappings and sync log went silently. Here a removal first says what it ends
(:class:`Consequences`); with bookings or connections it needs the caller's confirmation
(:class:`ConfirmationNeeded` otherwise). It then cancels each confirmed booking through
:func:`bridge.bookings.cancel` (a change row each, so the change feed and webhooks report it),
disconnects each connection, removes the remaining items (recorded too), and marks the calendar
removed. The connections' push channels are handed back (:class:`Removal`) for the caller to stop
once the removal has committed, as a disconnect does. A removed calendar (and a removed user,
without credentials) is hidden everywhere but in the change feed until its changes expire
(``sync_token_max_age_days``); then :func:`purge_expired` deletes it.

Callers own the transaction and decide who may remove what; nothing here commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge import bookings
from bridge.secrets import SecretError, Secrets
from bridge.settings import Settings
from bridge.store import calendars, items, users
from bridge.store.models import Booking, Calendar, Connection, User
from bridge.sync.connection_admin import Departing, departing, disconnect


@dataclass(frozen=True)
class Consequences:
    """What a removal ends: calendars, confirmed bookings (cancelled) and connections (disconnected)."""

    calendars: int
    bookings: int
    connections: int

    @property
    def needs_confirmation(self) -> bool:
        return self.bookings > 0 or self.connections > 0

    def describe(self) -> str:
        """One sentence for a person, with the counts and no personal data."""
        return (f"this removes {self.calendars} calendar(s), cancels {self.bookings} booking(s) and "
                f"disconnects {self.connections} connection(s) with their stored credentials")


@dataclass(frozen=True)
class ChannelKeys:
    """What stopping a removed connection's push channel at its provider needs."""

    secrets: Secrets
    ca_file: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> ChannelKeys:
        return cls(Secrets.from_settings(settings), settings.provider_ca_file or None)


@dataclass(frozen=True)
class Removal:
    """A removal done: what it ended, and the push channels to stop once it has committed."""

    consequences: Consequences
    departing: tuple[Departing, ...] = ()

    def stop_push_channels(self) -> None:
        """Best effort: a channel left running expires at the provider."""
        for channel in self.departing:
            channel.stop()


class ConfirmationNeeded(Exception):
    """The removal ends bookings or connections and the caller has not confirmed it."""

    def __init__(self, consequences: Consequences) -> None:
        super().__init__(consequences.describe())
        self.consequences = consequences


def of_calendar(session: Session, calendar: Calendar) -> Consequences:
    held = calendars.holdings(session, [calendar.id])
    return Consequences(1, held.bookings, held.connections)


def of_user(session: Session, user: User) -> Consequences:
    owned = calendars.calendars_of_owner(session, user.id)
    held = calendars.holdings(session, [calendar.id for calendar in owned])
    return Consequences(len(owned), held.bookings, held.connections)


def remove_calendar(session: Session, calendar: Calendar, owner: User, now: datetime, *,
                    confirmed: bool, changes_kept_days: int, keys: ChannelKeys) -> Removal:
    """Remove one calendar as described above; :class:`ConfirmationNeeded` unless ``confirmed`` or
    nothing is at stake. Removed calendars older than ``changes_kept_days`` go for good."""
    calendars.lock_for_write(session, [(owner.login, calendar.slug)])
    consequences = of_calendar(session, calendar)
    if consequences.needs_confirmation and not confirmed:
        raise ConfirmationNeeded(consequences)
    parting = _end_contents(session, calendar, now, keys)
    purge_expired(session, calendar.tenant_id, now, changes_kept_days)
    return Removal(consequences, parting)


def remove_user(session: Session, user: User, now: datetime, *, confirmed: bool,
                changes_kept_days: int, keys: ChannelKeys) -> Removal:
    """Remove a user and every calendar of theirs, each as :func:`remove_calendar` does."""
    owned = calendars.calendars_of_owner(session, user.id)
    calendars.lock_for_write(session, [(user.login, calendar.slug) for calendar in owned])
    consequences = of_user(session, user)
    if consequences.needs_confirmation and not confirmed:
        raise ConfirmationNeeded(consequences)
    parting: list[Departing] = []
    for calendar in owned:
        parting.extend(_end_contents(session, calendar, now, keys))
    if calendars.owns_any(session, user.id):
        users.mark_removed(session, user, now)
    else:
        users.delete_user(session, user)
    purge_expired(session, user.tenant_id, now, changes_kept_days)
    return Removal(consequences, tuple(parting))


def purge_expired(session: Session, tenant_id: int, now: datetime, max_age_days: int) -> int:
    """Delete the tenant's removed calendars (and users) whose changes every reader has had time to
    read; how many calendars went."""
    return calendars.purge_removed(session, tenant_id, now - timedelta(days=max_age_days))


def _end_contents(session: Session, calendar: Calendar, now: datetime, keys: ChannelKeys) -> tuple[Departing, ...]:
    """Cancel, disconnect, empty and mark the calendar; the push channels of its connections."""
    confirmed = session.scalars(select(Booking).where(Booking.calendar_id == calendar.id,
                                                      Booking.status == "confirmed").order_by(Booking.id))
    for booking in list(confirmed):
        bookings.cancel(session, calendar, booking, now)
    parting: list[Departing] = []
    for connection in list(session.scalars(select(Connection).where(Connection.calendar_id == calendar.id))):
        try:
            channel = departing(session, connection, keys.secrets, ca_file=keys.ca_file)
        except SecretError:  # credentials the keys cannot read: the channel expires on its own
            channel = None
        if channel is not None:
            parting.append(channel)
        disconnect(session, connection, remove_mirrored=True)
    items.empty_as_owners(session, calendar)
    calendars.mark_removed(calendar, now)
    return tuple(parting)
