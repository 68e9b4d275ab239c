"""Sessions of /admin and the count of failed logins.

A session is a row, not a signed cookie: logout, a removed user and an expired session end
it on every web process at once (a signed cookie stays valid until it expires), and scale-out
needs nothing but the shared database. The cookie holds 256 random bits; only their SHA-256
is stored (as with service tokens, a fast hash is enough for a random secret).

Failed logins are counted in the database too, so that N web processes allow no more
guesses than one. Keys are SHA-256 digests of ``login:<login>`` and ``address:<ip>``.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from bridge.store.models import AdminSession, LoginFailure, User

SESSION_LIFETIME = timedelta(hours=8)
FAILURE_WINDOW = timedelta(minutes=15)
MAX_FAILURES = 5


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def create_session(session: Session, user: User, now: datetime) -> tuple[AdminSession, str]:
    """A new session of ``user`` and its cookie token (not stored, so it cannot be shown again)."""
    session.execute(delete(AdminSession).where(AdminSession.expires_at <= now))
    token = secrets.token_urlsafe(32)
    row = AdminSession(tenant_id=user.tenant_id, user_id=user.id, token_hash=_digest(token),
                       csrf_secret=secrets.token_urlsafe(32), created_at=now, expires_at=now + SESSION_LIFETIME)
    session.add(row)
    session.flush()
    return row, token


def session_by_token(session: Session, token: str, now: datetime) -> tuple[AdminSession, User] | None:
    """The live session of a cookie token with its user, or None (unknown, expired, or user removed)."""
    if not token or len(token) > 100:
        return None
    row = session.execute(
        select(AdminSession, User).join(User, AdminSession.user_id == User.id)
        .where(AdminSession.token_hash == _digest(token), AdminSession.expires_at > now)).first()
    return (row[0], row[1]) if row is not None else None


def end_session(session: Session, token: str) -> None:
    session.execute(delete(AdminSession).where(AdminSession.token_hash == _digest(token)))


def end_other_sessions(session: Session, user_id: int, keep_token: str = "") -> None:
    """End every session of the user but the one of ``keep_token`` (a changed password signs out the rest)."""
    query = delete(AdminSession).where(AdminSession.user_id == user_id)
    if keep_token:
        query = query.where(AdminSession.token_hash != _digest(keep_token))
    session.execute(query)


def throttle_keys(login: str, address: str) -> list[str]:
    """The keys a login attempt is counted under: the login tried and the client's address."""
    return [_digest(f"login:{login.strip().lower()}"), _digest(f"address:{address}")]


def blocked_until(session: Session, keys: Sequence[str], now: datetime) -> datetime | None:
    """When the next attempt is allowed if any key has MAX_FAILURES in the window, else None."""
    latest: datetime | None = None
    for key in keys:
        times = list(session.scalars(
            select(LoginFailure.failed_at).where(LoginFailure.key_hash == key,
                                                 LoginFailure.failed_at > now - FAILURE_WINDOW)
            .order_by(LoginFailure.failed_at.desc()).limit(MAX_FAILURES)))
        if len(times) >= MAX_FAILURES:
            free_at = times[-1] + FAILURE_WINDOW  # when the oldest of the last MAX_FAILURES leaves the window
            latest = free_at if latest is None else max(latest, free_at)
    return latest


def record_failure(session: Session, keys: Sequence[str], now: datetime) -> None:
    session.execute(delete(LoginFailure).where(LoginFailure.failed_at <= now - FAILURE_WINDOW))
    session.add_all([LoginFailure(key_hash=key, failed_at=now) for key in keys])
    session.flush()


def clear_failures(session: Session, key: str) -> None:
    """Forget a login's failures after it signed in (its address's failures still count)."""
    session.execute(delete(LoginFailure).where(LoginFailure.key_hash == key))

