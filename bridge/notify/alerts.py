"""Alerts to providers: a connection that needs attention (sign-in refused, repeated failures) or a run
held by the fail-closed rule mails the calendar owner and the tenant's admins once, so that a silent
stop never leaves slots wrongly free, and a stop that lasts never floods them.

The caller (the sync engine, in the transaction that ends the run) calls :func:`queue_alert` when a
connection *enters* such a state, with the run's id as ``episode``: a rerun of the same transition
queues nothing new, the next episode (after a recovery) mails again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge.notify.message import ALERT_KINDS, Person, build_alert, language_of, local_date, local_time
from bridge.notify.queue import queue_mail
from bridge.secrets import Secrets
from bridge.settings import Settings
from bridge.store import outbox
from bridge.store.models import Calendar, User


def alert_recipients(session: Session, calendar: Calendar, owner: User) -> list[Person]:
    """The calendar owner first, then the tenant's admins (each address once)."""
    admins = session.scalars(select(User).where(User.tenant_id == calendar.tenant_id, User.role == "admin",
                                                User.id != owner.id).order_by(User.id))
    people: dict[str, Person] = {}
    for user in (owner, *admins):
        if user.email and user.email.lower() not in people:
            people[user.email.lower()] = Person(user.email, user.login)
    return list(people.values())


def queue_alert(session: Session, settings: Settings, secrets: Secrets, *, tenant_id: int, connection_id: int,
                kind: str, episode: str | int, recipients: Sequence[Person], language: str | None,
                connection: str, calendar: str, provider_name: str, since: datetime, timezone: str,
                failures: int = 0, now: datetime | None = None) -> bool:
    """Queue the alert of ``kind`` for one episode of a connection; False if it was queued already."""
    if kind not in ALERT_KINDS:
        raise ValueError(f"unknown kind of alert {kind!r}")
    code = language_of(language)
    context = {"connection": connection, "calendar": calendar, "provider_name": provider_name,
               "since": f"{local_date(since, timezone, code)}, {local_time(since, timezone)}", "failures": failures}
    message = build_alert(kind, recipients, code, context)
    return queue_mail(session, secrets, settings, tenant_id=tenant_id,
                      key=outbox.dedupe_key("alert", connection_id, kind, episode), kind=kind, message=message,
                      now=now)
