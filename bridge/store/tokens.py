"""Service tokens of the booking engine: created once (shown once), stored as a SHA-256."""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge.store.errors import NotFound
from bridge.store.models import ServiceToken, Tenant

SCOPES = ("engine", "admin")
PREFIX = "cbt_"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, tenant: Tenant, name: str, scope: str = "engine") -> tuple[ServiceToken, str]:
    """A new token row and the token itself, which is not stored and cannot be shown again."""
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}")
    name = name.strip()
    if not name or len(name) > 120:
        raise ValueError("a token name must have 1 to 120 characters")
    token = PREFIX + secrets.token_urlsafe(32)
    row = ServiceToken(tenant_id=tenant.id, name=name, scope=scope, token_hash=_digest(token))
    session.add(row)
    session.flush()
    return row, token


def token_by_secret(session: Session, token: str) -> ServiceToken | None:
    """The live token row for a presented bearer token, or None."""
    if not token.startswith(PREFIX) or len(token) > 100:
        return None
    row = session.scalar(select(ServiceToken).where(ServiceToken.token_hash == _digest(token)))
    return row if row is not None and row.revoked_at is None else None


def tokens_of_tenant(session: Session, tenant_id: int) -> list[ServiceToken]:
    return list(session.scalars(select(ServiceToken).where(ServiceToken.tenant_id == tenant_id)
                                .order_by(ServiceToken.id)))


def revoke_token(session: Session, tenant_id: int, token_id: int, now: datetime) -> None:
    row = session.scalar(select(ServiceToken).where(ServiceToken.id == token_id, ServiceToken.tenant_id == tenant_id))
    if row is None:
        raise NotFound("token", str(token_id))
    row.revoked_at = now
