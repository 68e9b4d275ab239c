"""Calendars: creation, lookup by CalDAV path, properties, and the per-calendar write lock."""

from __future__ import annotations

import json
import re
import secrets
import zoneinfo
from collections.abc import Mapping, Sequence

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.orm import Session

from bridge.store.errors import AlreadyExists
from bridge.store.models import Calendar, Change, Item, User, utcnow

SLUG_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")


def check_slug(slug: str) -> str:
    if not SLUG_PATTERN.match(slug):
        raise ValueError(
            f"calendar name {slug!r} must have 1 to 128 characters: letters, digits, '.', '_', '@', '+' or '-'"
        )
    return slug


def check_timezone(name: str) -> str:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"{name!r} is not an IANA time zone") from exc
    return name


def create_calendar(
    session: Session, owner: User, slug: str, *, timezone: str, props: Mapping[str, str] | None = None,
    bcc_provider: bool = False,
) -> Calendar:
    check_slug(slug)
    check_timezone(timezone)
    if calendar_of(session, owner.id, slug) is not None:
        raise AlreadyExists("calendar", f"{owner.login}/{slug}")
    all_props = {"tag": "VCALENDAR", **(props or {})}
    calendar = Calendar(
        tenant_id=owner.tenant_id,
        owner_id=owner.id,
        slug=slug,
        tag=all_props.get("tag", ""),
        timezone=timezone,
        props=json.dumps(all_props, sort_keys=True),
        bcc_provider=bcc_provider,
        sync_epoch=secrets.token_hex(6),
        change_counter=0,
        changes_pruned_through=0,
    )
    session.add(calendar)
    session.flush()
    return calendar


def calendar_of(session: Session, owner_id: int, slug: str) -> Calendar | None:
    return session.scalar(select(Calendar).where(Calendar.owner_id == owner_id, Calendar.slug == slug))


def calendars_of_owner(session: Session, owner_id: int) -> list[Calendar]:
    return list(session.scalars(select(Calendar).where(Calendar.owner_id == owner_id).order_by(Calendar.slug)))


def calendars_with_owner(session: Session, tenant_id: int | None = None) -> list[tuple[Calendar, User]]:
    """Every calendar (of one tenant, if given) with its owner, for listings."""
    query = select(Calendar, User).join(User, Calendar.owner_id == User.id).order_by(User.login, Calendar.slug)
    if tenant_id is not None:
        query = query.where(Calendar.tenant_id == tenant_id)
    return [(calendar, user) for calendar, user in session.execute(query)]


def lock_for_write(session: Session, paths: Sequence[tuple[str, str]]) -> None:
    """Serialise writers of these calendars, given as (owner login, slug), until the transaction ends.

    All rows are locked in one statement in id order, so two requests touching the same
    two calendars (a MOVE each way) cannot deadlock. SQLite's write transactions are
    exclusive already.
    """
    if not paths or session.get_bind().dialect.name == "sqlite":
        return
    wanted = or_(*(and_(User.login == login, Calendar.slug == slug) for login, slug in sorted(set(paths))))
    session.execute(
        select(Calendar.id).join(User, Calendar.owner_id == User.id).where(wanted)
        .order_by(Calendar.id).with_for_update(of=Calendar)
    ).all()


def bump_counter(session: Session, calendar: Calendar) -> int:
    """Next change number, taken under the calendar row's lock so numbers follow commit order."""
    number = session.execute(
        update(Calendar)
        .where(Calendar.id == calendar.id)
        .values(change_counter=Calendar.change_counter + 1, modified_at=utcnow())
        .returning(Calendar.change_counter)
    ).scalar_one()
    calendar.change_counter = number
    return number


def get_props(calendar: Calendar) -> dict[str, str]:
    props: dict[str, str] = json.loads(calendar.props)
    return props


def display_name(calendar: Calendar) -> str:
    """The name people see: the calendar's DAV:displayname, else its short name."""
    return get_props(calendar).get("D:displayname", "") or calendar.slug


def set_props(session: Session, calendar: Calendar, props: Mapping[str, str]) -> None:
    """Replace the WebDAV properties; a new counter value changes the ctag."""
    clean = {key: value for key, value in props.items() if value is not None}
    calendar.props = json.dumps(clean, sort_keys=True)
    calendar.tag = clean.get("tag", "")
    bump_counter(session, calendar)


def set_bcc_provider(calendar: Calendar, on: bool) -> None:
    """The calendar-level setting: booking confirmations go to the owner as a blind copy too."""
    calendar.bcc_provider = on


def delete_calendar(session: Session, calendar: Calendar) -> None:
    session.execute(delete(Change).where(Change.calendar_id == calendar.id))
    session.execute(delete(Item).where(Item.calendar_id == calendar.id))
    session.delete(calendar)
    session.flush()


def calendar_in_tenant(session: Session, tenant_id: int, calendar_id: int) -> tuple[Calendar, User] | None:
    """A calendar with its owner, only if it belongs to the tenant (else None, as if absent)."""
    row = session.execute(
        select(Calendar, User).join(User, Calendar.owner_id == User.id)
        .where(Calendar.id == calendar_id, Calendar.tenant_id == tenant_id)).first()
    return (row[0], row[1]) if row is not None else None


def calendars_in_tenant(session: Session, tenant_id: int, calendar_ids: Sequence[int]) -> dict[int, Calendar]:
    """The tenant's calendars among these ids, in one query (absent and foreign ones are missing)."""
    wanted = list(dict.fromkeys(calendar_ids))
    return {calendar.id: calendar for calendar in session.scalars(
        select(Calendar).where(Calendar.tenant_id == tenant_id, Calendar.id.in_(wanted)))}


def calendar_by_path(session: Session, owner_login: str, slug: str) -> Calendar | None:
    """The calendar at /<owner_login>/<slug>/ in one query."""
    return session.scalar(select(Calendar).join(User, Calendar.owner_id == User.id)
                          .where(User.login == owner_login, Calendar.slug == slug))
