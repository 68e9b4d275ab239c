"""Tenants and users (logins are CalDAV principal names, unique installation-wide)."""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from bridge.store.errors import AlreadyExists, NotFound
from bridge.store.models import AdminSession, Tenant, User

ROLES = ("admin", "member", "service")
LANGUAGES = ("de", "en")
# A login is a path segment of every CalDAV URL: keep it to characters no client mangles.
LOGIN_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
EMAIL_PATTERN = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def create_tenant(session: Session, name: str) -> Tenant:
    name = name.strip()
    if not name or len(name) > 120:
        raise ValueError("a tenant name must have 1 to 120 characters")
    if session.scalar(select(Tenant.id).where(Tenant.name == name)) is not None:
        raise AlreadyExists("tenant", name)
    tenant = Tenant(name=name)
    session.add(tenant)
    session.flush()
    return tenant


def tenant_by_name(session: Session, name: str) -> Tenant:
    tenant = session.scalar(select(Tenant).where(Tenant.name == name))
    if tenant is None:
        raise NotFound("tenant", name)
    return tenant


def create_user(
    session: Session,
    tenant: Tenant,
    *,
    login: str,
    email: str,
    password_hash: str,
    role: str = "member",
    language: str = "de",
) -> User:
    if not LOGIN_PATTERN.match(login):
        raise ValueError(
            "a login has 1 to 64 characters: lower-case letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    _check_fields(email, role, language)
    removed = session.scalar(select(User).where(User.login == login, User.removed_at.is_not(None)))
    if removed is not None:  # a removed user kept for the change feed gives the login up
        removed.login = f"-removed-{removed.id}"
        session.flush()
    if session.scalar(select(User.id).where(User.login == login)) is not None:
        raise AlreadyExists("user", login)
    user = User(
        tenant_id=tenant.id, login=login, email=email, password_hash=password_hash, role=role, language=language
    )
    session.add(user)
    session.flush()
    return user


def _check_fields(email: str | None, role: str | None, language: str | None) -> None:
    """ValueError for an address, role or language a user cannot have (None: not being set)."""
    if email is not None and not EMAIL_PATTERN.match(email):
        raise ValueError(f"{email!r} is not an e-mail address")
    if role is not None and role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if language is not None and language not in LANGUAGES:
        raise ValueError(f"language must be one of {', '.join(LANGUAGES)}")


def update_user(session: Session, user: User, *, email: str | None = None, role: str | None = None,
                language: str | None = None, password_hash: str | None = None) -> None:
    """Change what is given; ValueError (before any change) for a value the user cannot have."""
    _check_fields(email, role, language)
    for name, value in (("email", email), ("role", role), ("language", language), ("password_hash", password_hash)):
        if value is not None:
            setattr(user, name, value)
    session.flush()


LIVE = User.removed_at.is_(None)


def user_by_login(session: Session, login: str) -> User | None:
    return session.scalar(select(User).where(User.login == login, LIVE))


def users_of_tenant(session: Session, tenant_id: int) -> list[User]:
    return list(session.scalars(select(User).where(User.tenant_id == tenant_id, LIVE).order_by(User.login)))


def user_in_tenant(session: Session, tenant_id: int, login: str) -> User | None:
    return session.scalar(select(User).where(User.login == login, User.tenant_id == tenant_id, LIVE))


def mark_removed(session: Session, user: User, now: datetime) -> None:
    """Keep the row only as the owner of removed calendars whose changes the feed still serves: without
    address, password, role or sessions; a new user may take the login (:func:`create_user`)."""
    user.email = ""
    user.password_hash = "!"
    user.role = "removed"
    user.props = "{}"
    user.removed_at = now
    session.execute(delete(AdminSession).where(AdminSession.user_id == user.id))
    session.flush()


def delete_user(session: Session, user: User) -> None:
    """Remove a user with their calendars, items and bookings (the foreign keys cascade)."""
    session.delete(user)
    session.flush()
