"""What every /api/v1 handler needs: the settings, the store, and the JSON shapes of objects."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from bridge.secrets import Secrets
from bridge.settings import Settings
from bridge.store import calendars
from bridge.store.db import Store
from bridge.store.models import Booking, Calendar, User
from bridge.web.api.problems import not_found


@dataclass(frozen=True)
class Api:
    settings: Settings
    store: Store

    @property
    def body_limit(self) -> int:
        return min(self.settings.max_body_bytes, 256 * 1024)

    def calendar(self, session: Session, tenant_id: int, calendar_id: int) -> tuple[Calendar, User]:
        """The tenant's calendar, or 404 (also for another tenant's: nothing tells them apart)."""
        found = calendars.calendar_in_tenant(session, tenant_id, calendar_id)
        if found is None:
            raise not_found("calendar")
        return found

    def calendar_json(self, calendar: Calendar, owner: User) -> dict[str, Any]:
        path = f"/dav/{owner.login}/{calendar.slug}/"
        return {"id": calendar.id, "owner": owner.login, "slug": calendar.slug, "timezone": calendar.timezone,
                "name": calendars.get_props(calendar).get("D:displayname", calendar.slug),
                "path": path, "url": self.settings.public_base_url + path, "bcc_provider": calendar.bcc_provider}


class Keys:
    """The secret keys, read (or, on the embedded default, created) on first use, on a worker thread."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._secrets: Secrets | None = None
        self._lock = threading.Lock()  # two first requests must not both create the key file

    def get(self) -> Secrets:
        with self._lock:
            if self._secrets is None:
                self._secrets = Secrets.from_settings(self._settings)
            return self._secrets


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def user_json(user: User) -> dict[str, Any]:
    return {"login": user.login, "email": user.email, "role": user.role, "language": user.language}


def booking_json(booking: Booking, owner: User, calendar: Calendar) -> dict[str, Any]:
    return {
        "id": booking.public_id, "calendar": booking.calendar_id, "status": booking.status,
        "start": iso(booking.start), "end": iso(booking.end),
        "customer": {"name": booking.customer_name, "email": booking.customer_email,
                     "language": booking.customer_language},
        "notes": booking.notes, "sequence": booking.sequence,
        "event": f"/dav/{owner.login}/{calendar.slug}/{booking.item_href}" if booking.status == "confirmed" else None,
        "created_at": iso(booking.created_at), "modified_at": iso(booking.modified_at),
    }
