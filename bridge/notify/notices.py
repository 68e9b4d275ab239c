"""Which mail a change causes, and queuing it in the change's transaction.

Two sources. A booking created, moved or cancelled (through ``/api/v1``, or followed from the
external calendar) mails its customer from the booking's own data, with a blind copy to the
calendar owner when asked. An event the provider wrote by hand in the external calendar mails the
customer whose address it names (:mod:`bridge.notify.address`): the address is taken from the
remote event before the privacy rules strip SUMMARY and DESCRIPTION, and kept encrypted on the
event's mapping (:mod:`bridge.notify.mirrored`), because the deletion that needs it carries neither.

The caller decides *whether* to notify: never on a baseline (first sync, token reset, full resync
after an expired token, option change, re-ingest), only while ``notify_customers`` is on. The
address is kept on a baseline too, so that a later change can be told.

Each mail's dedupe key names its cause (connection, item, kind, the remote version or the
booking's SEQUENCE): replaying the same change queues nothing new.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from email.utils import parseaddr

import icalendar
from sqlalchemy.orm import Session

from bridge import expand
from bridge.notify.address import customer_address
from bridge.notify.message import Appointment, Person, build_message
from bridge.notify.queue import queue_mail
from bridge.secrets import Secrets
from bridge.settings import Settings
from bridge.store import outbox
from bridge.store.models import Booking

# SEQUENCE of hand-written events: seconds since this instant, so every later notice of an event
# has a higher one (RFC 5546 §2.1.4) without a counter to keep; fits the 31 bits clients expect
# until 2093.
SEQUENCE_EPOCH = datetime(2025, 1, 1, tzinfo=UTC)

BOOKING_KINDS = ("booking_confirmed", "booking_rescheduled", "booking_cancelled")


@dataclass(frozen=True)
class Sender:
    """Who a calendar's mails come from and in which language, with what queuing needs."""

    settings: Settings
    secrets: Secrets
    tenant_id: int
    timezone: str  # the calendar's: the times the customer reads
    provider: Person  # the calendar owner: ORGANIZER, the blind copy, never a customer
    language: str  # the tenant's language for notices (bookings carry the customer's own)
    excluded: frozenset[str] = frozenset()  # the tenant's addresses: never taken for a customer's


@dataclass(frozen=True)
class Slot:
    """What a notice tells of an event: its time and place."""

    start: datetime
    end: datetime
    location: str = ""


# -- bookings --------------------------------------------------------------------------------------

def queue_booking_mail(session: Session, sender: Sender, booking: Booking, kind: str, *, uid: str,
                       previous_start: datetime | None = None, bcc_provider: bool = False,
                       now: datetime | None = None) -> bool:
    """Queue the confirmation of ``kind`` for the booking as it is now (call after the change, in its
    transaction); ``uid`` is the UID of the booking's event (``bridge.bookings.render``), so that the
    customer's calendar matches the attachment to the event it has."""
    if kind not in BOOKING_KINDS:
        raise ValueError(f"unknown kind of booking mail {kind!r}")
    appointment = Appointment(uid=uid, sequence=booking.sequence,
                              start=booking.start, end=booking.end, timezone=sender.timezone,
                              organizer=sender.provider, attendee=Person(booking.customer_email, booking.customer_name),
                              previous_start=previous_start)
    message = build_message(kind, appointment, booking.customer_language, now=now)
    key = outbox.dedupe_key("booking", booking.public_id, booking.sequence, kind)
    bcc = [sender.provider.email] if bcc_provider and sender.provider.email else []
    return queue_mail(session, sender.secrets, sender.settings, tenant_id=sender.tenant_id, key=key, kind=kind,
                      message=message, bcc=bcc, now=now)


# -- events the provider wrote by hand -------------------------------------------------------------

def notice_kind(before: Slot | None, after: Slot | None) -> str | None:
    """The notice a change of an event causes: created, changed (time or place), cancelled, or none."""
    if before is None:
        return "notice_created" if after is not None else None
    if after is None:
        return "notice_cancelled"
    return "notice_changed" if after != before else None


def slot_of(calendar: icalendar.Calendar, zone: tzinfo) -> Slot | None:
    """The time and place of an event's master instance (floating times in ``zone``); None if it has
    none or is cancelled."""
    events = list(calendar.walk("VEVENT"))
    master = next((event for event in events if "RECURRENCE-ID" not in event), events[0] if events else None)
    if master is None or str(master.get("STATUS", "")).upper() == "CANCELLED":
        return None
    start, end = expand.bounds(master, zone)
    return Slot(start, end, str(master.get("LOCATION", "")).strip())


def customer_in_event(sender: Sender, calendar: icalendar.Calendar) -> str | None:
    """The customer's address in the raw remote event (SUMMARY, then DESCRIPTION of the master instance,
    read before any rule strips them); None if it names none but the provider's or the tenant's."""
    events = list(calendar.walk("VEVENT"))
    master = next((event for event in events if "RECURRENCE-ID" not in event), events[0] if events else None)
    if master is None:
        return None
    excluded = {sender.provider.email, parseaddr(sender.settings.mail_from)[1], *sender.excluded}
    return customer_address(str(master.get("SUMMARY", "")), str(master.get("DESCRIPTION", "")), exclude=excluded)


def queue_event_notice(session: Session, sender: Sender, *, connection_id: int, item_href: str, uid: str,
                       version: str, before: Slot | None, after: Slot | None, address: str | None,
                       now: datetime) -> bool:
    """Queue the notice the change from ``before`` to ``after`` causes to ``address`` (``version``: the
    remote etag that identifies the change); False when there is nothing to tell or no one to tell it to."""
    kind = notice_kind(before, after)
    if kind is None or not address:
        return False
    slot = after or before
    assert slot is not None  # notice_kind returned a kind
    appointment = Appointment(uid=uid, sequence=max(int((now - SEQUENCE_EPOCH).total_seconds()), 0),
                              start=slot.start, end=slot.end, timezone=sender.timezone, organizer=sender.provider,
                              attendee=Person(address), location=slot.location,
                              previous_start=before.start if kind == "notice_changed" and before else None)
    message = build_message(kind, appointment, sender.language, now=now)
    key = outbox.dedupe_key(connection_id, item_href, kind, version)
    return queue_mail(session, sender.secrets, sender.settings, tenant_id=sender.tenant_id, key=key, kind=kind,
                      message=message, now=now)
