"""Alerts at the end of a sync run: a connection that *enters* a state its owner must know of mails
the calendar owner and the tenant's admins once (:mod:`bridge.notify.alerts`), in the transaction
that ends the run, so a crash never loses or doubles one.

- ``alert_auth``: the provider refused the credentials (``needs_attention`` went from off to on);
- ``alert_failing``: the :data:`FAILING_AFTER`-th failed run in a row (the count is reset by a run
  that succeeds, which starts the next episode);
- ``alert_held``: a run held deletions (fail closed) after a run that did not.

The run's id is the episode: a rerun of the same transition queues nothing new, and a state that
lasts mails no one again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge.notify.alerts import alert_recipients, queue_alert
from bridge.secrets import Secrets
from bridge.settings import Settings
from bridge.store import calendars
from bridge.store.models import Calendar, Connection, SyncRun, User

FAILING_AFTER = 3
"""Consecutive failed runs after which the owner hears of it (one transient failure is normal)."""

PROVIDER_NAMES = {"caldav": "CalDAV", "icloud": "iCloud", "ics": "ICS", "google": "Google",
                  "microsoft": "Microsoft 365", "exchange": "Exchange"}


@dataclass(frozen=True)
class Before:
    """The connection's state as the run found it (read before the run is rescheduled)."""

    needs_attention: bool
    failures: int


def alert_kind(before: Before, connection: Connection, status: str, previous_status: str | None) -> str | None:
    """Which alert the end of a run calls for, if any (pure)."""
    if connection.needs_attention and not before.needs_attention:
        return "alert_auth"
    if status == "failed" and not connection.needs_attention and before.failures < FAILING_AFTER <= connection.failures:
        return "alert_failing"
    if status == "held" and previous_status != "held":
        return "alert_held"
    return None


def alert_after_run(session: Session, settings: Settings, secrets: Secrets, connection: Connection,
                    before: Before, run: SyncRun, now: datetime) -> bool:
    """Queue the alert the run's end calls for (after the connection was rescheduled); True if queued."""
    if not settings.mail_enabled:
        return False
    previous = session.scalar(select(SyncRun.status).where(SyncRun.connection_id == connection.id,
                                                           SyncRun.id != run.id, SyncRun.status != "running")
                              .order_by(SyncRun.started_at.desc(), SyncRun.id.desc()).limit(1))
    kind = alert_kind(before, connection, run.status, previous)
    if kind is None:
        return False
    calendar = session.get(Calendar, connection.calendar_id)
    owner = session.get(User, calendar.owner_id) if calendar is not None else None
    if calendar is None or owner is None:
        return False
    recipients = alert_recipients(session, calendar, owner)
    if not recipients:
        return False
    provider = PROVIDER_NAMES.get(connection.provider, connection.provider)
    name = connection.remote_name or connection.remote_calendar or str(connection.id)
    return queue_alert(session, settings, secrets, tenant_id=connection.tenant_id, connection_id=connection.id,
                       kind=kind, episode=run.id, recipients=recipients, language=owner.language,
                       connection=f"{provider} ({name})",
                       calendar=calendars.get_props(calendar).get("D:displayname", calendar.slug),
                       provider_name=provider, since=run.started_at, timezone=calendar.timezone,
                       failures=connection.failures or 0, now=now)
