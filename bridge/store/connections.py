"""Connections: the links between an internal calendar and an external one, with their options."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from bridge.store.models import Calendar, Connection, Mapping

PROVIDERS = ("caldav", "icloud", "ics", "google", "microsoft", "exchange")


def create_connection(session: Session, calendar: Calendar, provider: str,
                      options: dict[str, Any] | None = None) -> Connection:
    if provider not in PROVIDERS:
        raise ValueError(f"provider must be one of {', '.join(PROVIDERS)}")
    connection = Connection(tenant_id=calendar.tenant_id, calendar_id=calendar.id, provider=provider,
                            options=json.dumps(options or {}, sort_keys=True), uid_salt=secrets.token_hex(32),
                            enabled=True, baseline_due=False)
    session.add(connection)
    session.flush()
    return connection


DIRECTIONS = ("both", "inbound", "outbound")


def set_account(session: Session, connection: Connection, *, server_url: str, remote_calendar: str,
                remote_name: str = "", credentials: str = "") -> None:
    """Point the connection at an external calendar; ``credentials`` is already encrypted (bridge.secrets).
    A new remote calendar starts from a baseline with no mappings: they belong to the old one, whose
    mirrored items the baseline then removes, while bookings are pushed to the new one (never cancelled)."""
    if remote_calendar != connection.remote_calendar or server_url != connection.server_url:
        connection.sync_state = None
        connection.baseline_due = True
        session.execute(delete(Mapping).where(Mapping.connection_id == connection.id))
    connection.server_url = server_url
    connection.remote_calendar = remote_calendar
    connection.remote_name = remote_name
    connection.credentials = credentials
    session.flush()


def set_direction(session: Session, connection: Connection, direction: str) -> None:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {', '.join(DIRECTIONS)}")
    connection.direction = direction
    session.flush()


def connection_in_tenant(session: Session, tenant_id: int, connection_id: int) -> Connection | None:
    return session.scalar(select(Connection).where(Connection.id == connection_id,
                                                   Connection.tenant_id == tenant_id))


def providers_of(session: Session, tenant_id: int) -> dict[int, str]:
    """Connection id -> provider, to say where busy time comes from."""
    return dict(session.execute(select(Connection.id, Connection.provider)
                                .where(Connection.tenant_id == tenant_id)).all())


def options_of(connection: Connection) -> dict[str, Any]:
    options: dict[str, Any] = json.loads(connection.options)
    return options


def save_options(session: Session, connection: Connection, options: dict[str, Any], *,
                 request_baseline: bool = False) -> None:
    """Store validated options; ``request_baseline`` marks the next run a baseline (never clears the mark)."""
    connection.options = json.dumps(options, sort_keys=True)
    if request_baseline:
        connection.baseline_due = True
    session.flush()


def rotate_credentials(session: Session, rotate: Callable[[str], str]) -> int:
    """Re-encrypt every stored credential with ``rotate``; returns how many were rewritten."""
    count = 0
    for connection in session.scalars(select(Connection).where(Connection.credentials != "")):
        connection.credentials = rotate(connection.credentials)
        count += 1
    return count
