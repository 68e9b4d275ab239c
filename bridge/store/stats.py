"""Aggregate counts over sync runs and connections, for /metrics: grouped in SQL, so that a scrape reads no
rows of the sync log, only one line per provider and status."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, Float, cast, func, select
from sqlalchemy.orm import Session

from bridge.store.models import Connection, SyncRun


def runs_by_provider(session: Session) -> list[tuple[str, str, int, int]]:
    """(provider, status, runs, upstream requests) over the sync log kept."""
    rows = session.execute(
        select(Connection.provider, SyncRun.status, func.count(), func.sum(SyncRun.requests))
        .join(Connection, Connection.id == SyncRun.connection_id)
        .group_by(Connection.provider, SyncRun.status))
    return [(provider, status, int(count), int(total or 0)) for provider, status, count, total in rows]


def durations_by_provider(session: Session, *, sqlite: bool) -> list[tuple[str, float, int]]:
    """(provider, seconds summed, runs) over the finished runs of the sync log kept."""
    rows = session.execute(
        select(Connection.provider, func.sum(_run_seconds(sqlite=sqlite)), func.count())
        .join(Connection, Connection.id == SyncRun.connection_id)
        .where(SyncRun.finished_at.is_not(None)).group_by(Connection.provider))
    return [(provider, max(0.0, float(seconds or 0)), int(count)) for provider, seconds, count in rows]


def connections_by_state(session: Session) -> list[tuple[str, bool, bool, int]]:
    """(provider, enabled, needs attention, connections)."""
    rows = session.execute(
        select(Connection.provider, Connection.enabled, Connection.needs_attention, func.count())
        .group_by(Connection.provider, Connection.enabled, Connection.needs_attention))
    return [(provider, bool(enabled), bool(attention), int(count)) for provider, enabled, attention, count in rows]


def _run_seconds(*, sqlite: bool) -> ColumnElement[Any]:
    """A run's duration in seconds (SQLite keeps times as text, PostgreSQL as timestamps)."""
    if sqlite:
        return (func.julianday(SyncRun.finished_at) - func.julianday(SyncRun.started_at)) * 86400.0
    return cast(func.extract("epoch", SyncRun.finished_at - SyncRun.started_at), Float)
