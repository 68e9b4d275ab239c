"""Notices for events the provider wrote in the external calendar: what the sync engine calls, in the
transaction that writes a mirrored event's mapping row, while the connection's ``notify_customers``
is on.

The mapping keeps, encrypted, the customer's address and the time and place they were last told
(or, on a baseline, last seen): the next change compares against that, and a deletion, which
carries no summary, description or time, still knows whom to tell what. Rules that drop or strip
an event do not matter here: this reads the raw remote event.

A run made as a baseline (first sync, token reset, full resync after an expired token, option change,
re-ingest) passes ``notify=False``: it remembers every customer and tells no one, so the next real
change is told once, against the state the baseline saw. Turning the option off drops what is kept
(:func:`bridge.store.outbox.forget_customers`); removing the mapping row (the event is gone, its
notice queued) drops it with the row.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, tzinfo

import icalendar
from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge.notify.message import Person
from bridge.notify.notices import Sender, Slot, customer_in_event, queue_event_notice, slot_of
from bridge.secrets import SecretError, Secrets
from bridge.settings import Settings
from bridge.store import outbox
from bridge.store.models import Calendar, User


@dataclass(frozen=True)
class Customer:
    """What a mapping keeps: whom to tell, and what they were told."""

    email: str
    slot: Slot


def seal(secrets: Secrets, customer: Customer) -> str:
    slot = customer.slot
    return secrets.encrypt(json.dumps({"email": customer.email, "start": slot.start.isoformat(),
                                       "end": slot.end.isoformat(), "location": slot.location}))


def unseal(secrets: Secrets, sealed: str | None) -> Customer | None:
    """The kept customer; None if there is none or it cannot be read (keys lost: nobody is told)."""
    if not sealed:
        return None
    try:
        data = json.loads(secrets.decrypt(sealed))
        slot = Slot(datetime.fromisoformat(data["start"]), datetime.fromisoformat(data["end"]), data["location"])
        return Customer(data["email"], slot)
    except (SecretError, ValueError, KeyError, TypeError):
        return None


def sender_for(session: Session, settings: Settings, secrets: Secrets, calendar: Calendar, owner: User) -> Sender:
    """The calendar's sender: the owner as provider, in the owner's language; every address of the
    owner's tenant is excluded from being taken for a customer's."""
    tenant_addresses = frozenset(session.scalars(select(User.email).where(User.tenant_id == calendar.tenant_id)))
    return Sender(settings, secrets, calendar.tenant_id, calendar.timezone, Person(owner.email, owner.login),
                  owner.language, excluded=tenant_addresses)


class MirrorNotifier:
    """One run's notices for one connection."""

    def __init__(self, sender: Sender, connection_id: int, zone: tzinfo, *, notify: bool) -> None:
        self.sender = sender
        self.connection_id = connection_id
        self.zone = zone  # where floating times of the connection are read (its sync zone or the calendar's)
        self.notify = notify

    def seen(self, session: Session, item_href: str, uid: str, remote: icalendar.Calendar, version: str,
             now: datetime, *, notify: bool = True) -> bool:
        """A remote event was created or changed; call after its mapping row is saved. True if a notice
        was queued. ``notify=False``: remember only (the planner's re-ingest of an event found again)."""
        kept = unseal(self.sender.secrets, outbox.customer_of(session, self.connection_id, item_href))
        address = customer_in_event(self.sender, remote) or (kept.email if kept else None)
        after = slot_of(remote, self.zone)
        before = kept.slot if kept is not None and kept.email == address else None  # a new customer: created
        queued = self.notify and notify and queue_event_notice(
            session, self.sender, connection_id=self.connection_id, item_href=item_href, uid=uid, version=version,
            before=before, after=after, address=address, now=now)
        sealed = seal(self.sender.secrets, Customer(address, after)) if address and after else None
        outbox.set_customer(session, self.connection_id, item_href, sealed)
        return queued

    def gone(self, session: Session, item_href: str, uid: str, version: str, now: datetime, *,
             notify: bool = True) -> bool:
        """A remote event was deleted; call before its mapping row is forgotten. True if a notice was queued."""
        kept = unseal(self.sender.secrets, outbox.customer_of(session, self.connection_id, item_href))
        if not (self.notify and notify) or kept is None:
            return False
        return queue_event_notice(session, self.sender, connection_id=self.connection_id, item_href=item_href,
                                  uid=uid, version=f"deleted:{version}", before=kept.slot, after=None,
                                  address=kept.email, now=now)
