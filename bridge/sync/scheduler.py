"""Leases on connections: which worker may sync which connection, and until when.

A connection is claimable when it is enabled, not marked ``needs_attention``, due (``next_due_at``
NULL or passed) and not leased (``lease_expires_at`` NULL or passed). Claiming writes the worker's
name and an expiry in the transaction that chose the rows, so one connection is synced by one worker
at a time; a worker that dies simply lets its leases expire, and another takes them over.

On PostgreSQL the choice is ``SELECT … FOR UPDATE SKIP LOCKED``: concurrent workers each get other
rows and never wait for one another. On SQLite the write transaction (``BEGIN IMMEDIATE``)
already admits one writer at a time. Times are passed in (``now``) so that tests need no sleeps.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, Result, and_, func, or_, select, update

from bridge.store.db import Store
from bridge.store.models import Connection
from bridge.sync import backoff


def claim(store: Store, worker: str, now: datetime, *, limit: int, lease_seconds: int) -> list[int]:
    """Lease up to ``limit`` claimable connections to ``worker``, most overdue first (never-run ones
    before all others); returns their ids."""
    if limit <= 0:
        return []
    query = (select(Connection.id).where(_claimable(now))
             .order_by(Connection.next_due_at.asc().nulls_first(), Connection.id).limit(limit))
    if not store.is_sqlite:
        query = query.with_for_update(skip_locked=True)
    with store.write() as session:
        ids = list(session.scalars(query))
        if ids:
            session.execute(update(Connection).where(Connection.id.in_(ids))
                            .values(lease_owner=worker, lease_expires_at=now + timedelta(seconds=lease_seconds))
                            .execution_options(synchronize_session=False))
    return ids


def claim_one(store: Store, connection_id: int, worker: str, now: datetime, lease_seconds: int) -> bool:
    """Lease one connection for a manual run, whether due or not; False while any unexpired lease
    (a scheduled run, or another manual one, even by ``worker``) holds it, so the two never overlap.

    It does not look at ``enabled`` or ``needs_attention``: whoever asks for the run decides that
    (a manual run is how an owner checks repaired credentials).
    """
    with store.write() as session:
        result = session.execute(update(Connection).where(Connection.id == connection_id, _unleased(now))
                                 .values(lease_owner=worker, lease_expires_at=now + timedelta(seconds=lease_seconds))
                                 .execution_options(synchronize_session=False))
        return _changed(result)


def renew(store: Store, connection_id: int, worker: str, now: datetime, lease_seconds: int) -> bool:
    """Extend ``worker``'s lease (the heartbeat of a long run); False when the lease was lost: released,
    or expired and taken over by another worker. A lease that expired unclaimed is still ours."""
    with store.write() as session:
        result = session.execute(update(Connection)
                                 .where(Connection.id == connection_id, Connection.lease_owner == worker)
                                 .values(lease_expires_at=now + timedelta(seconds=lease_seconds))
                                 .execution_options(synchronize_session=False))
        return _changed(result)


def release(store: Store, connection_id: int, worker: str) -> bool:
    """End ``worker``'s lease after its run; a lease another worker has taken over is left alone."""
    with store.write() as session:
        result = session.execute(update(Connection)
                                 .where(Connection.id == connection_id, Connection.lease_owner == worker)
                                 .values(lease_owner=None, lease_expires_at=None)
                                 .execution_options(synchronize_session=False))
        return _changed(result)


def release_failed(store: Store, connection_id: int, worker: str, now: datetime) -> bool:
    """End ``worker``'s lease after a run that raised before it rescheduled the connection: count a
    failure and back off (:func:`bridge.sync.backoff.record_failure`), so it is not retried at once."""
    with store.write() as session:
        connection = session.scalar(select(Connection)
                                    .where(Connection.id == connection_id, Connection.lease_owner == worker)
                                    .with_for_update())
        if connection is None:
            return False
        backoff.record_failure(connection, now)
        connection.lease_owner = None
        connection.lease_expires_at = None
        return True


def due_count(store: Store, now: datetime) -> int:
    """How many connections wait for a worker: what :func:`claim` would take without a limit."""
    with store.read() as session:
        return int(session.scalar(select(func.count()).select_from(Connection).where(_claimable(now))) or 0)


def _claimable(now: datetime) -> ColumnElement[bool]:
    return and_(Connection.enabled, ~Connection.needs_attention,
                or_(Connection.next_due_at.is_(None), Connection.next_due_at <= now), _unleased(now))


def _unleased(now: datetime) -> ColumnElement[bool]:
    return or_(Connection.lease_expires_at.is_(None), Connection.lease_expires_at < now)


def _changed(result: Result[Any]) -> bool:
    return bool(cast(CursorResult[Any], result).rowcount)
