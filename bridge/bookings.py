"""Bookings of the booking engine: create, reschedule, cancel, each in the caller's write
transaction with the calendar row locked, so that two requests for one slot cannot both
see it free (DESIGN: writers of a calendar queue on its row).

A booking is an item of origin ``booking`` at /<owner>/<calendar>/<booking id>.ics, visible
to CalDAV clients as soon as the transaction commits.
"""

from __future__ import annotations

import hashlib
import json
import uuid
import zoneinfo
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

import icalendar
from sqlalchemy.orm import Session

from bridge import freebusy
from bridge.store import bookings, items, writers
from bridge.store.index import facts_of
from bridge.store.models import Booking, Calendar
from bridge.store.objects import parse_object
from bridge.store.users import EMAIL_PATTERN, LANGUAGES

MAX_LENGTH = timedelta(days=31)
UID_DOMAIN = "booking.calbridge"


@dataclass(frozen=True)
class BookingRequest:
    start: datetime
    end: datetime
    customer_name: str
    customer_email: str
    customer_language: str = "de"
    notes: str = ""

    def validate(self) -> None:
        """ValueError with the reason for anything a booking cannot hold."""
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("start and end need a UTC offset")
        if self.end <= self.start:
            raise ValueError("a booking must end after it starts")
        if self.end - self.start > MAX_LENGTH:
            raise ValueError(f"a booking lasts at most {MAX_LENGTH.days} days")
        if not self.customer_name.strip() or len(self.customer_name) > 200:
            raise ValueError("the customer's name must have 1 to 200 characters")
        if not EMAIL_PATTERN.match(self.customer_email) or len(self.customer_email) > 254:
            raise ValueError("the customer's e-mail address is not valid")
        if self.customer_language not in LANGUAGES:
            raise ValueError(f"language must be one of {', '.join(LANGUAGES)}")
        if len(self.notes) > 4000:
            raise ValueError("notes have at most 4000 characters")

    def digest(self) -> str:
        """Identifies the request behind an idempotency key."""
        values = {key: value.isoformat() if isinstance(value, datetime) else value
                  for key, value in asdict(self).items()}
        return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()


class SlotBusy(Exception):
    """The requested time overlaps busy time of the calendar."""

    def __init__(self, periods: list[freebusy.BusyPeriod]) -> None:
        super().__init__("the slot is not free")
        self.periods = periods


class IdempotencyKeyReused(Exception):
    """The key was used before for a different request."""


def create(session: Session, calendar: Calendar, request: BookingRequest, idempotency_key: str,
           now: datetime) -> tuple[Booking, bool]:
    """(booking, created): a repeated request with the same key returns the first booking."""
    request.validate()
    digest = request.digest()
    earlier = bookings.by_idempotency_key(session, calendar.tenant_id, idempotency_key)
    if earlier is not None:
        if earlier.request_hash != digest or earlier.calendar_id != calendar.id:
            raise IdempotencyKeyReused(idempotency_key)
        return earlier, False
    _require_free(session, calendar, request.start, request.end, ignore_href=None)
    public_id = str(uuid.uuid4())
    booking = bookings.add(session, Booking(
        tenant_id=calendar.tenant_id, public_id=public_id, calendar_id=calendar.id, item_href=f"{public_id}.ics",
        idempotency_key=idempotency_key, request_hash=digest, status="confirmed", start=request.start,
        end=request.end, customer_name=request.customer_name.strip(), customer_email=request.customer_email,
        customer_language=request.customer_language, notes=request.notes, sequence=0, created_at=now,
        modified_at=now))
    _write_event(session, calendar, booking, now)
    return booking, True


def reschedule(session: Session, calendar: Calendar, booking: Booking, start: datetime, end: datetime,
               now: datetime, *, require_free: bool = True) -> Booking:
    """Move the booking. ``require_free=False`` is for a move the provider made in their own
    calendar: it happened, overlapping or not, and the booking must follow it."""
    if booking.status != "confirmed":
        raise ValueError("a cancelled booking cannot be moved")
    BookingRequest(start, end, booking.customer_name, booking.customer_email, booking.customer_language,
                   booking.notes).validate()
    if require_free:
        _require_free(session, calendar, start, end, ignore_href=booking.item_href)
    booking.start, booking.end = start, end
    booking.sequence += 1
    booking.modified_at = now
    _write_event(session, calendar, booking, now)
    return booking


def cancel(session: Session, calendar: Calendar, booking: Booking, now: datetime) -> Booking:
    """Mark the booking cancelled and remove its event; cancelling twice is harmless."""
    if booking.status == "cancelled":
        return booking
    booking.status = "cancelled"
    booking.sequence += 1
    booking.modified_at = now
    if items.by_href(session, calendar.id, booking.item_href) is not None:
        items.delete(session, calendar, booking.item_href, writers.BOOKING)
    return booking


def _require_free(session: Session, calendar: Calendar, start: datetime, end: datetime,
                  ignore_href: str | None) -> None:
    ignored = items.by_href(session, calendar.id, ignore_href) if ignore_href else None
    busy = [period for period in freebusy.busy_periods(session, [calendar], start, end)[calendar.id]
            if ignored is None or period.item_id != ignored.id]
    if busy:
        raise SlotBusy(busy)


def event_uid(booking: Booking) -> str:
    """The UID of the booking's event (and of the attachment of its confirmations)."""
    return f"{booking.public_id}@{UID_DOMAIN}"


def render(booking: Booking, calendar: Calendar, now: datetime) -> str:
    """The booking's event: times in the calendar's zone, the customer in SUMMARY and DESCRIPTION."""
    zone = zoneinfo.ZoneInfo(calendar.timezone)
    event = icalendar.Event()
    event.add("UID", event_uid(booking))
    event.add("DTSTAMP", now)
    event.add("DTSTART", booking.start.astimezone(zone))
    event.add("DTEND", booking.end.astimezone(zone))
    event.add("SUMMARY", booking.customer_name)
    description = "\n\n".join(part for part in (booking.notes.strip(), booking.customer_email) if part)
    event.add("DESCRIPTION", description)
    event.add("STATUS", "CONFIRMED")
    event.add("TRANSP", "OPAQUE")
    event.add("SEQUENCE", booking.sequence)
    event.add("X-CALBRIDGE-BOOKING", booking.public_id)
    document = icalendar.Calendar()
    document.add("VERSION", "2.0")
    document.add("PRODID", "-//calbridge//booking//EN")
    document.add_component(event)
    return document.to_ical().decode()


def _write_event(session: Session, calendar: Calendar, booking: Booking, now: datetime) -> None:
    parsed = parse_object(render(booking, calendar, now))
    if parsed is None:  # the renderer writes only what parse_object takes
        raise RuntimeError("a booking rendered to iCalendar that does not parse")
    described = facts_of(parsed.calendar, zoneinfo.ZoneInfo(calendar.timezone), now)
    items.write(session, calendar, items.NewItem(
        href=booking.item_href, uid=parsed.uid, etag=items.etag_of(parsed.text), text=parsed.text,
        facts=described.facts, occurrences=described.instances,
        occurrences_until=described.instances_until), writers.BOOKING)
