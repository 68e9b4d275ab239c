"""Calendars: creation, lookup by CalDAV path, properties, and the per-calendar write lock."""

from __future__ import annotations

import json
import re
import secrets
import zoneinfo
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import and_, delete, func, or_, select, update
from sqlalchemy.orm import Session

from bridge.store.errors import AlreadyExists
from bridge.store.models import Booking, Calendar, Change, Connection, Item, User, utcnow

# Who made a calendar: the CLI, the API or the admin page ("provisioned"), or a CalDAV client's MKCALENDAR.
Creator = Literal["provisioned", "client"]
LIVE = Calendar.removed_at.is_(None)

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
    bcc_provider: bool = False, creator: Creator = "provisioned",
) -> Calendar:
    """A new calendar; ``creator`` is "client" only for a CalDAV client's MKCALENDAR (it may delete those)."""
    check_slug(slug)
    check_timezone(timezone)
    if calendar_of(session, owner.id, slug) is not None:
        raise AlreadyExists("calendar", f"{owner.login}/{slug}")
    _make_way(session, owner.id, slug)
    all_props = {"tag": "VCALENDAR", **(props or {})}
    calendar = Calendar(
        tenant_id=owner.tenant_id,
        owner_id=owner.id,
        slug=slug,
        tag=all_props.get("tag", ""),
        timezone=timezone,
        props=json.dumps(all_props, sort_keys=True),
        bcc_provider=bcc_provider,
        creator=creator,
        sync_epoch=secrets.token_hex(6),
        change_counter=0,
        changes_pruned_through=0,
    )
    session.add(calendar)
    session.flush()
    return calendar


def _make_way(session: Session, owner_id: int, slug: str) -> None:
    """A removed calendar kept for the change feed gives its name up to a new one (under a name no one can
    create, so its changes stay readable)."""
    removed = session.scalar(select(Calendar).where(Calendar.owner_id == owner_id, Calendar.slug == slug,
                                                    Calendar.removed_at.is_not(None)))
    if removed is not None:
        removed.slug = f"-removed-{removed.id}"
        session.flush()


def calendar_of(session: Session, owner_id: int, slug: str) -> Calendar | None:
    return session.scalar(select(Calendar).where(Calendar.owner_id == owner_id, Calendar.slug == slug, LIVE))


def calendars_of_owner(session: Session, owner_id: int) -> list[Calendar]:
    return list(session.scalars(select(Calendar).where(Calendar.owner_id == owner_id, LIVE).order_by(Calendar.slug)))


def calendars_with_owner(session: Session, tenant_id: int | None = None, *,
                         with_removed: bool = False) -> list[tuple[Calendar, User]]:
    """Every calendar (of one tenant, if given) with its owner, for listings; ``with_removed`` also
    the removed ones whose changes are still kept (for the change feed)."""
    query = select(Calendar, User).join(User, Calendar.owner_id == User.id).order_by(User.login, Calendar.slug)
    if tenant_id is not None:
        query = query.where(Calendar.tenant_id == tenant_id)
    if not with_removed:
        query = query.where(LIVE)
    return [(calendar, user) for calendar, user in session.execute(query)]


def owns_any(session: Session, owner_id: int) -> bool:
    """Whether the user owns a calendar, removed ones kept for the change feed included."""
    return session.scalar(select(Calendar.id).where(Calendar.owner_id == owner_id).limit(1)) is not None


def client_made_count(session: Session, owner_id: int, *, lock: bool = False) -> int:
    """How many of the owner's calendars CalDAV clients made (the MKCALENDAR limit counts these); ``lock``
    holds the owner's row until the transaction ends, so two MKCALENDARs cannot both take the last place."""
    if lock and session.get_bind().dialect.name != "sqlite":  # SQLite's write transactions are exclusive
        session.execute(select(User.id).where(User.id == owner_id).with_for_update())
    return session.scalar(select(func.count()).select_from(Calendar).where(
        Calendar.owner_id == owner_id, Calendar.creator == "client", LIVE)) or 0


@dataclass(frozen=True)
class Holdings:
    """What the booking engine depends on in a calendar: its confirmed bookings, every booking
    record (cancelled ones too), and its connections (with their credentials)."""

    bookings: int
    booking_records: int
    connections: int


def holdings(session: Session, calendar_ids: Sequence[int]) -> Holdings:
    """The :class:`Holdings` of these calendars together, in two queries."""
    if not calendar_ids:
        return Holdings(0, 0, 0)
    confirmed, records = session.execute(
        select(func.count().filter(Booking.status == "confirmed"), func.count())
        .where(Booking.calendar_id.in_(calendar_ids))).one()
    linked = session.scalar(select(func.count()).select_from(Connection)
                            .where(Connection.calendar_id.in_(calendar_ids))) or 0
    return Holdings(int(confirmed or 0), int(records or 0), int(linked))


def is_protected(session: Session, calendar: Calendar) -> bool:
    """Whether CalDAV clients may not delete or overwrite the calendar as a whole: it was provisioned,
    or it holds bookings or connections."""
    if calendar.creator != "client":
        return True
    held = holdings(session, [calendar.id])
    return held.booking_records > 0 or held.connections > 0


def mark_removed(calendar: Calendar, now: datetime) -> None:
    """Hide the calendar everywhere but in the change feed (see :func:`purge_removed`)."""
    calendar.removed_at = now


def purge_removed(session: Session, tenant_id: int, before: datetime) -> int:
    """Delete the tenant's calendars removed before ``before`` (their changes have expired for every
    reader by then), and removed users left without calendars; how many calendars went."""
    gone = list(session.scalars(select(Calendar).where(Calendar.tenant_id == tenant_id,
                                                       Calendar.removed_at < before)))
    for calendar in gone:
        delete_calendar(session, calendar)
    with_calendars = select(Calendar.owner_id).where(Calendar.tenant_id == tenant_id)
    session.execute(delete(User).where(User.tenant_id == tenant_id, User.removed_at < before,
                                       User.id.not_in(with_calendars)))
    return len(gone)


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


def calendar_in_tenant(session: Session, tenant_id: int, calendar_id: int, *,
                       with_removed: bool = False) -> tuple[Calendar, User] | None:
    """A calendar with its owner, only if it belongs to the tenant (else None, as if absent); a removed one
    only ``with_removed`` (for the cancelled bookings it held)."""
    query = (select(Calendar, User).join(User, Calendar.owner_id == User.id)
             .where(Calendar.id == calendar_id, Calendar.tenant_id == tenant_id))
    row = session.execute(query if with_removed else query.where(LIVE)).first()
    return (row[0], row[1]) if row is not None else None


def calendars_in_tenant(session: Session, tenant_id: int, calendar_ids: Sequence[int]) -> dict[int, Calendar]:
    """The tenant's calendars among these ids, in one query (absent and foreign ones are missing)."""
    wanted = list(dict.fromkeys(calendar_ids))
    return {calendar.id: calendar for calendar in session.scalars(
        select(Calendar).where(Calendar.tenant_id == tenant_id, Calendar.id.in_(wanted), LIVE))}


def calendar_by_path(session: Session, owner_login: str, slug: str) -> Calendar | None:
    """The calendar at /<owner_login>/<slug>/ in one query."""
    return session.scalar(select(Calendar).join(User, Calendar.owner_id == User.id)
                          .where(User.login == owner_login, Calendar.slug == slug, LIVE))
