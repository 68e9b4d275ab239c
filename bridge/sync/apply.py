"""Carrying out a plan's actions: the store in short transactions, the provider through the adapter.

Each action that writes here runs in its own transaction together with its mapping row, so
a crash leaves at most one item half-done, and a rerun finds it again (mirrored items by
their connection-scoped href, pushed ones by their push key). A write to the provider comes
first and its mapping row after it: a crash between the two leaves an event carrying our push
key, which the next plan links (:class:`~bridge.sync.plan.LinkMapping`) instead of pushing twice.

Item-level failures (an event the store refuses, a precondition lost to a concurrent change)
are recorded in the run log and leave the mapping as it was, so the next run tries again;
failures of the connection itself (authentication, rate limits, network) propagate and end
the run. An action whose item or booking changed here since the plan (:mod:`bridge.sync.versions`)
is skipped without writing or mailing anything and counted as ``skipped_stale``; the engine then
saves no state.
"""

from __future__ import annotations

import contextlib
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

import icalendar
from sqlalchemy.orm import Session

from bridge import bookings, expand
from bridge.adapters.base import Adapter, PreconditionFailed, RemoteEvent, RemoteNotFound
from bridge.ical.zones import copy_calendar, parse_calendar
from bridge.notify.mirrored import MirrorNotifier
from bridge.notify.notices import queue_booking_mail
from bridge.store import bookings as booking_rows
from bridge.store import items, mappings
from bridge.store.db import Store
from bridge.store.errors import ItemExists, NotFound
from bridge.store.index import facts_of
from bridge.store.mappings import MappingValues
from bridge.store.models import Booking, Calendar, Connection, User
from bridge.store.objects import parse_object
from bridge.sync import mirror, versions
from bridge.sync.content import content_hash, push_form
from bridge.sync.plan import (
    Action,
    ApplyRemoteToOwned,
    CancelOwned,
    Conflict,
    ForgetMapping,
    LinkMapping,
    LocalVersion,
    MirrorCreate,
    MirrorDelete,
    MirrorUpdate,
    PushCreate,
    PushDelete,
    PushUpdate,
    UpdateMapping,
)
from bridge.sync.runlog import RunLog

ITEM_ERRORS: tuple[type[BaseException], ...] = (
    mirror.HrefTaken, mirror.Unstorable, ItemExists, expand.ExpansionError, PreconditionFailed, ValueError,
)
"""Failures that concern one item only: logged, and the run goes on."""


@dataclass(frozen=True)
class Rows:
    """The rows an action needs, loaded in its own transaction."""

    connection: Connection
    calendar: Calendar
    owner: User


class Applier:
    """Applies the actions of one run for one connection."""

    def __init__(self, store: Store, adapter: Adapter, connection_id: int, remote: Mapping[str, RemoteEvent],
                 log: RunLog, clock: Callable[[], datetime], sync_zone: str | None,
                 token_max_age_days: int, *, notifier: MirrorNotifier | None = None) -> None:
        self.store = store
        self.adapter = adapter
        self.connection_id = connection_id
        self.remote = remote
        self.log = log
        self.clock = clock
        self.sync_zone = sync_zone
        self.token_max_age_days = token_max_age_days
        self.notifier = notifier  # None: notify_customers is off (or no mail is configured)

    def run(self, actions: tuple[Action, ...], progress: Callable[[int, int], None] | None = None) -> None:
        """Every action in order; the actions of an item after a failed one are skipped."""
        failed: set[str] = set()
        for done, action in enumerate(actions, start=1):
            href = getattr(action, "item_href", None) or getattr(action, "remote_id", "")
            if href not in failed:
                try:
                    self.apply(action)
                except versions.StaleVersion:
                    failed.add(href)
                    self.log.skip_stale(type(action).__name__)
                except ITEM_ERRORS as exc:
                    failed.add(href)
                    self.log.item_error(type(action).__name__, exc)
            if progress is not None:
                progress(done, len(actions))

    def apply(self, action: Action) -> None:
        handler = getattr(self, "_" + type(action).__name__)
        handler(action)

    # -- helpers ------------------------------------------------------------------------------

    def _rows(self, session: Session) -> Rows:
        connection = session.get(Connection, self.connection_id)
        if connection is None:
            raise NotFound("connection", str(self.connection_id))
        calendar = session.get(Calendar, connection.calendar_id)
        assert calendar is not None  # the foreign key cascades
        owner = session.get(User, calendar.owner_id)
        assert owner is not None
        return Rows(connection, calendar, owner)

    def _listed(self, remote_id: str) -> RemoteEvent:
        event = self.remote.get(remote_id)
        if event is None:  # the planner only plans for listed events
            raise RuntimeError("an action names a remote event the fetch did not list")
        return event

    def _remote_hash(self, event: RemoteEvent, calendar: Calendar) -> str:
        return content_hash(event.calendar, self._zone(calendar))

    def _zone(self, calendar: Calendar) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.sync_zone or calendar.timezone)

    def _pushed(self, href: str) -> tuple[icalendar.Calendar, str, str, zoneinfo.ZoneInfo] | None:
        """(the form to push, its hash, the item's etag, the zone of floating times) of an owned item;
        None if it is gone."""
        with self.store.read() as session:
            rows = self._rows(session)
            item = items.by_href(session, rows.calendar.id, href)
            if item is None:
                return None
            zone = self._zone(rows.calendar)
            form = push_form(parse_calendar(item.text), self.sync_zone)
            return form, content_hash(form, zone), item.etag, zone

    # -- inbound: mirrored events -----------------------------------------------------------------

    def _mirror(self, remote_id: str, item_href: str, created: bool, notify: bool, seen: LocalVersion) -> None:
        event = self._listed(remote_id)
        with self.store.write() as session:
            rows = self._rows(session)
            versions.check(session, rows.calendar, rows.owner, item_href, seen)
            current = items.by_href(session, rows.calendar.id, item_href)
            etag_before = current.etag if current is not None else None
            stored = mirror.store_remote(session, rows.connection, rows.calendar, rows.owner, event.calendar,
                                         remote_id, self.clock(), token_max_age_days=self.token_max_age_days)
            mappings.save(session, rows.connection, MappingValues(
                item_href, remote_id, event.etag, stored.etag if stored is not None else "",
                self._remote_hash(event, rows.calendar), "remote"))
            if self.notifier is not None:  # the raw event: the rules may have stripped the customer's address
                self.notifier.seen(session, item_href, notice_uid(item_href), event.calendar, event.etag,
                                   self.clock(), notify=notify)
        if stored is None:
            self.log.count("in.dropped")
        elif stored.etag != etag_before:  # a baseline re-ingests unchanged events: the store wrote nothing
            self.log.count("in.created" if created else "in.updated")

    def _MirrorCreate(self, action: MirrorCreate) -> None:
        self._mirror(action.remote_id, action.item_href, created=True, notify=action.notify, seen=action.seen)

    def _MirrorUpdate(self, action: MirrorUpdate) -> None:
        self._mirror(action.remote_id, action.item_href, created=False, notify=action.notify, seen=action.seen)

    def _MirrorDelete(self, action: MirrorDelete) -> None:
        with self.store.write() as session:
            rows = self._rows(session)
            versions.check(session, rows.calendar, rows.owner, action.item_href, action.seen)
            removed = mirror.remove_item(session, rows.connection, rows.calendar, action.item_href)
            if self.notifier is not None:
                version = mappings.remote_etag_of(session, self.connection_id, action.item_href) or ""
                self.notifier.gone(session, action.item_href, notice_uid(action.item_href), version, self.clock(),
                                   notify=action.notify)
            mappings.forget(session, self.connection_id, item_href=action.item_href)
        if removed:
            self.log.count("in.deleted")

    # -- inbound: items we own, changed or deleted over there --------------------------------------

    def _ApplyRemoteToOwned(self, action: ApplyRemoteToOwned) -> None:
        event = self._listed(action.remote_id)
        with self.store.write() as session:
            rows = self._rows(session)
            versions.check(session, rows.calendar, rows.owner, action.item_href, action.seen)
            booking = booking_rows.by_item(session, rows.calendar.id, action.item_href)
            if booking is not None:
                self._follow_booking(session, rows, booking, event, action.notify)
            else:
                self._replace_client_item(session, rows, action.item_href, event)
            item = items.by_href(session, rows.calendar.id, action.item_href)
            if item is None:  # cancelled: the booking's event is gone
                mappings.forget(session, self.connection_id, item_href=action.item_href)
                return
            mappings.save(session, rows.connection, MappingValues(
                action.item_href, action.remote_id, event.etag, item.etag, self._remote_hash(event, rows.calendar),
                "local"))

    def _follow_booking(self, session: Session, rows: Rows, booking: Booking, event: RemoteEvent,
                        notify: bool) -> None:
        """A booking moved or cancelled in the external calendar: follow it, keeping the booking's data,
        and tell its customer (not on a baseline)."""
        master = _master(event.calendar)
        if master is None or str(master.get("STATUS", "")).upper() == "CANCELLED":
            self._cancel_booking(session, rows, booking, notify)
            return
        start, end = expand.bounds(master, self._zone(rows.calendar))
        if (start, end) != (booking.start, booking.end) and booking.status == "confirmed":
            previous = booking.start
            bookings.reschedule(session, rows.calendar, booking, start, end, self.clock(), require_free=False)
            self.log.count("bookings.moved")
            self._tell_customer(session, booking, "booking_rescheduled", notify, previous_start=previous)

    def _cancel_booking(self, session: Session, rows: Rows, booking: Booking, notify: bool) -> None:
        was_confirmed = booking.status == "confirmed"
        bookings.cancel(session, rows.calendar, booking, self.clock())
        self.log.count("bookings.cancelled")
        if was_confirmed:
            self._tell_customer(session, booking, "booking_cancelled", notify)

    def _tell_customer(self, session: Session, booking: Booking, kind: str, notify: bool, *,
                       previous_start: datetime | None = None) -> None:
        """The confirmation of a change the provider made to a booking in the external calendar, from the
        booking's own data. No blind copy: the provider made the change."""
        if self.notifier is None or not (notify and self.notifier.notify):
            return
        queue_booking_mail(session, self.notifier.sender, booking, kind, uid=bookings.event_uid(booking),
                           previous_start=previous_start, now=self.clock())

    def _replace_client_item(self, session: Session, rows: Rows, href: str, event: RemoteEvent) -> None:
        """A client's item changed in the external calendar: take its content, keep our UID."""
        current = items.by_href(session, rows.calendar.id, href)
        if current is None:
            return
        copy = copy_calendar(event.calendar)
        for component in copy.walk():
            if component.name in ("VEVENT", "VTODO", "VJOURNAL"):
                component.pop("UID", None)
                component.add("UID", current.uid)
        parsed = parse_object(copy.to_ical().decode())
        if parsed is None:
            raise mirror.Unstorable(href, "not a clean calendar object")
        if parsed.text == current.text:
            return
        described = facts_of(parsed.calendar, zoneinfo.ZoneInfo(rows.calendar.timezone), self.clock())
        items.put_checked(session, rows.calendar, items.NewItem(
            href=href, uid=parsed.uid, etag=items.etag_of(parsed.text), text=parsed.text, facts=described.facts,
            origin=current.origin, occurrences=described.instances, occurrences_until=described.instances_until),
            current)
        self.log.count("in.updated_owned")

    def _CancelOwned(self, action: CancelOwned) -> None:
        with self.store.write() as session:
            rows = self._rows(session)
            versions.check(session, rows.calendar, rows.owner, action.item_href, action.seen)
            booking = booking_rows.by_item(session, rows.calendar.id, action.item_href)
            if booking is not None:
                self._cancel_booking(session, rows, booking, action.notify)
            elif items.by_href(session, rows.calendar.id, action.item_href) is not None:
                items.remove(session, rows.calendar, action.item_href)
                self.log.count("in.deleted_owned")
            mappings.forget(session, self.connection_id, item_href=action.item_href)

    # -- outbound -----------------------------------------------------------------------------------

    def _PushCreate(self, action: PushCreate) -> None:
        pushed = self._pushed(action.item_href)
        if pushed is None:
            return
        form, digest, etag, zone = pushed
        created = self.adapter.create(form, action.key)
        if content_hash(created.calendar, zone) != digest:
            created = self.adapter.update(created.remote_id, created.etag, form)  # an earlier attempt's leftover
        self._save_pushed(action.item_href, created, etag, digest)
        self.log.count("out.created")

    def _PushUpdate(self, action: PushUpdate) -> None:
        pushed = self._pushed(action.item_href)
        if pushed is None:
            return
        form, digest, etag, _ = pushed
        try:
            updated = self.adapter.update(action.remote_id, action.remote_etag, form)
        except RemoteNotFound:  # deleted over there since the fetch: push it afresh next run
            with self.store.write() as session:
                mappings.forget(session, self.connection_id, item_href=action.item_href)
            self.log.count("out.vanished")
            return
        self._save_pushed(action.item_href, updated, etag, digest)
        self.log.count("out.updated")

    def _save_pushed(self, item_href: str, remote: RemoteEvent, local_etag: str, digest: str) -> None:
        with self.store.write() as session:
            rows = self._rows(session)
            mappings.save(session, rows.connection, MappingValues(
                item_href, remote.remote_id, remote.etag, local_etag, digest, "local"))

    def _PushDelete(self, action: PushDelete) -> None:
        with contextlib.suppress(RemoteNotFound):  # gone already is what we wanted
            self.adapter.delete(action.remote_id, action.remote_etag or None)
        with self.store.write() as session:
            if action.item_href is not None:
                mappings.forget(session, self.connection_id, item_href=action.item_href)
            else:
                mappings.forget(session, self.connection_id, remote_id=action.remote_id)
        self.log.count("out.deleted")

    # -- the mapping alone --------------------------------------------------------------------------

    def _ForgetMapping(self, action: ForgetMapping) -> None:
        with self.store.write() as session:
            mappings.forget(session, self.connection_id, item_href=action.item_href)

    def _UpdateMapping(self, action: UpdateMapping) -> None:
        with self.store.write() as session:
            mappings.set_versions(session, self.connection_id, action.item_href, action.remote_etag,
                                  action.local_etag, action.content_hash)

    def _LinkMapping(self, action: LinkMapping) -> None:
        with self.store.write() as session:
            rows = self._rows(session)
            mappings.save(session, rows.connection, MappingValues(
                action.item_href, action.remote_id, action.remote_etag, action.local_etag, action.content_hash,
                "local"))
        self.log.count("out.linked")

    def _Conflict(self, action: Conflict) -> None:
        self.log.count("conflicts")
        self.log.count(f"conflicts_won.{action.winner}")


def notice_uid(item_href: str) -> str:
    """The UID a customer's calendar knows a mirrored event by: stable per remote event (its href is),
    and telling nothing of the remote calendar."""
    return f"{item_href.removesuffix('.ics')}@calbridge"


def _master(calendar: icalendar.Calendar) -> icalendar.Event | None:
    events = [c for c in calendar.walk("VEVENT")]
    return next((e for e in events if "RECURRENCE-ID" not in e), events[0] if events else None)
