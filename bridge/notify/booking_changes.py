"""The customer's confirmation of a booking change, whoever made it: the booking engine through
``/api/v1`` or the provider in a CalDAV client. Queued in the change's transaction, and only when
mail is configured."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from bridge.notify.mirrored import sender_for
from bridge.notify.notices import queue_booking_mail
from bridge.secrets import Secrets
from bridge.settings import Settings
from bridge.store.models import Booking, Calendar, User


def confirm_booking_change(session: Session, settings: Settings, secrets: Secrets, booking: Booking,
                           calendar: Calendar, owner: User, kind: str, *, uid: str, now: datetime,
                           previous_start: datetime | None = None, bcc_provider: bool = False) -> None:
    """Queue the confirmation of ``kind`` (``notices.BOOKING_KINDS``) for the booking as it is now;
    ``uid`` is its event's UID. Nothing without mail settings."""
    if not settings.mail_enabled:
        return
    sender = sender_for(session, settings, secrets, calendar, owner)
    queue_booking_mail(session, sender, booking, kind, uid=uid, previous_start=previous_start,
                       bcc_provider=bcc_provider, now=now)
