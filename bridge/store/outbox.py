"""The outbox: queued e-mails (bridge.notify), one row per change that causes a mail.

A row is written in the transaction of the change, so a mail is queued exactly when its change
commits; the unique ``dedupe_key`` makes a second queuing of the same change a no-op (an insert
that does nothing, so the change's transaction goes on). Senders claim due rows by moving
``next_attempt_at`` ahead (``FOR UPDATE SKIP LOCKED`` on PostgreSQL); a sender that dies keeps
its claim until it runs out, then another sends again (at least once, same Message-ID).
Callers own the transaction; nothing here commits.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from bridge.store.models import Mapping, Outbox

PENDING = "pending"
SENT = "sent"
FAILED = "failed"


@dataclass(frozen=True)
class QueuedMail:
    """A claimed row as the sender reads it (``envelope`` and ``content`` still encrypted)."""

    id: int
    tenant_id: int
    kind: str
    message_id: str
    envelope: str
    content: str
    attempts: int
    created_at: datetime


def dedupe_key(*parts: str | int) -> str:
    """The key of a mail from what identifies its cause (connection, item, change): a SHA-256, so
    the column holds no item href or address."""
    return hashlib.sha256("\x1f".join(str(part) for part in parts).encode()).hexdigest()


def enqueue(session: Session, *, tenant_id: int, key: str, kind: str, message_id: str, envelope: str,
            content: str, now: datetime) -> bool:
    """Queue a mail unless one with ``key`` is queued already; True if this call queued it."""
    values = {"tenant_id": tenant_id, "created_at": now, "dedupe_key": key, "kind": kind, "message_id": message_id,
              "envelope": envelope, "content": content, "status": PENDING, "attempts": 0}
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = (dialect.insert(Outbox).values(**values).on_conflict_do_nothing(index_elements=["dedupe_key"])
                 .returning(Outbox.id))
    return session.execute(statement).scalar_one_or_none() is not None


def claim_due(session: Session, now: datetime, *, limit: int, hold: timedelta, skip_locked: bool) -> list[QueuedMail]:
    """Hold up to ``limit`` due pending rows (oldest due first) until ``now + hold`` and return them."""
    query = (select(Outbox.id)
             .where(Outbox.status == PENDING, (Outbox.next_attempt_at.is_(None)) | (Outbox.next_attempt_at <= now))
             .order_by(Outbox.next_attempt_at.asc().nulls_first(), Outbox.id).limit(limit))
    if skip_locked:
        query = query.with_for_update(skip_locked=True)
    ids = list(session.scalars(query))
    if not ids:
        return []
    session.execute(update(Outbox).where(Outbox.id.in_(ids)).values(next_attempt_at=now + hold)
                    .execution_options(synchronize_session=False))
    rows = session.execute(select(Outbox.id, Outbox.tenant_id, Outbox.kind, Outbox.message_id, Outbox.envelope,
                                  Outbox.content, Outbox.attempts, Outbox.created_at)
                           .where(Outbox.id.in_(ids)).order_by(Outbox.id))
    return [QueuedMail(*row) for row in rows]


def mark_sent(session: Session, mail_id: int, now: datetime, *, note: str | None = None) -> None:
    """The server accepted the mail: forget recipients and content, keep the key (no second queuing)."""
    session.execute(update(Outbox).where(Outbox.id == mail_id, Outbox.status == PENDING)
                    .values(status=SENT, sent_at=now, envelope="", content="", next_attempt_at=None,
                            attempts=Outbox.attempts + 1, last_error=note)
                    .execution_options(synchronize_session=False))


def mark_retry(session: Session, mail_id: int, error: str, next_attempt_at: datetime) -> None:
    """A transient failure: try again at ``next_attempt_at``. ``error`` holds no personal data."""
    session.execute(update(Outbox).where(Outbox.id == mail_id, Outbox.status == PENDING)
                    .values(attempts=Outbox.attempts + 1, last_error=error[:200], next_attempt_at=next_attempt_at)
                    .execution_options(synchronize_session=False))


def mark_failed(session: Session, mail_id: int, error: str) -> None:
    """A permanent failure: recorded with ``error`` (no personal data); recipients and content are dropped."""
    session.execute(update(Outbox).where(Outbox.id == mail_id, Outbox.status == PENDING)
                    .values(status=FAILED, attempts=Outbox.attempts + 1, last_error=error[:200], envelope="",
                            content="", next_attempt_at=None)
                    .execution_options(synchronize_session=False))


def prune(session: Session, before: datetime) -> int:
    """Remove sent and failed rows created before ``before`` (their keys no longer guard against a
    replay: a change that old is only ever seen again by a baseline, which queues nothing)."""
    result = session.execute(delete(Outbox).where(Outbox.status != PENDING, Outbox.created_at < before)
                             .execution_options(synchronize_session=False))
    return int(result.rowcount)  # type: ignore[attr-defined]


def counts(session: Session, tenant_id: int | None = None) -> dict[str, int]:
    """How many rows are pending, sent and failed (for the admin view, metrics and tests)."""
    query = select(Outbox.status, func.count()).group_by(Outbox.status)
    if tenant_id is not None:
        query = query.where(Outbox.tenant_id == tenant_id)
    found = {status: count for status, count in session.execute(query)}
    return {status: found.get(status, 0) for status in (PENDING, SENT, FAILED)}


def rotate_secrets(session: Session, rotate: Callable[[str], str]) -> int:
    """Re-encrypt queued mails and the customers kept on mappings with ``rotate``; returns how many."""
    count = 0
    for mail in session.scalars(select(Outbox).where(Outbox.status == PENDING)):
        mail.envelope = rotate(mail.envelope) if mail.envelope else ""
        mail.content = rotate(mail.content) if mail.content else ""
        count += 1
    for mapping in session.scalars(select(Mapping).where(Mapping.customer.is_not(None))):
        mapping.customer = rotate(mapping.customer) if mapping.customer else None
        count += 1
    return count


def set_customer(session: Session, connection_id: int, item_href: str, sealed: str | None) -> None:
    """Keep (encrypted) or drop what an item's mapping knows of its customer."""
    session.execute(update(Mapping).where(Mapping.connection_id == connection_id, Mapping.item_href == item_href)
                    .values(customer=sealed).execution_options(synchronize_session=False))


def customer_of(session: Session, connection_id: int, item_href: str) -> str | None:
    """What an item's mapping knows of its customer (encrypted), if anything."""
    return session.scalar(select(Mapping.customer).where(Mapping.connection_id == connection_id,
                                                                Mapping.item_href == item_href))


def forget_customers(session: Session, connection_id: int) -> int:
    """Drop every kept customer of a connection (``notify_customers`` was turned off)."""
    result = session.execute(update(Mapping).where(Mapping.connection_id == connection_id,
                                                   Mapping.customer.is_not(None))
                             .values(customer=None).execution_options(synchronize_session=False))
    return int(result.rowcount)  # type: ignore[attr-defined]
