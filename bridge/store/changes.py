"""The change log: one row per item write or delete, numbered by the calendar's counter.

The number is the CalDAV sync token and the ctag. A reader that got number N
from the counter has seen every change up to N, because a writer holds the
counter's row lock from the bump until its commit.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, delete, select, update
from sqlalchemy.orm import Session

from bridge.store.calendars import bump_counter
from bridge.store.errors import InvalidSyncToken
from bridge.store.models import Booking, Calendar, Change

TOKEN_PREFIX = "http://calbridge.org/ns/sync/"
PRUNE_EVERY = 256


def record(session: Session, calendar: Calendar, href: str, *, deleted: bool) -> int:
    number = bump_counter(session, calendar)
    session.add(
        Change(tenant_id=calendar.tenant_id, calendar_id=calendar.id, number=number, href=href, deleted=deleted)
    )
    return number


def token(calendar: Calendar, number: int | None = None) -> str:
    return f"{TOKEN_PREFIX}{calendar.sync_epoch}-{calendar.change_counter if number is None else number}"


def parse_token(calendar: Calendar, value: str) -> int:
    """The change number a token stands for; InvalidSyncToken if it is not this calendar's or expired."""
    if not value.startswith(TOKEN_PREFIX):
        raise InvalidSyncToken("malformed sync token")
    epoch, _, number_text = value[len(TOKEN_PREFIX):].partition("-")
    if epoch != calendar.sync_epoch or not number_text.isdigit():
        raise InvalidSyncToken("sync token of another calendar")
    number = int(number_text)
    if number > calendar.change_counter:
        raise InvalidSyncToken("sync token from the future")
    if number < calendar.changes_pruned_through:
        raise InvalidSyncToken("sync token expired")
    return number


def hrefs_changed(session: Session, calendar: Calendar, after: int, upto: int) -> list[str]:
    """Distinct hrefs written or deleted in (after, upto], oldest first."""
    rows = session.execute(
        select(Change.href, Change.number)
        .where(Change.calendar_id == calendar.id, Change.number > after, Change.number <= upto)
        .order_by(Change.number)
    )
    seen: dict[str, None] = {}
    for href, _number in rows:
        seen.pop(href, None)
        seen[href] = None
    return list(seen)


def with_bookings(session: Session, calendar_id: int, after: int, upto: int,
                  limit: int) -> list[tuple[Change, Booking | None]]:
    """Changes numbered in (after, upto], oldest first, at most ``limit``, each with the booking
    whose item it touched (None for other items): the booking engine's change feed."""
    rows = session.execute(
        select(Change, Booking)
        .outerjoin(Booking, and_(Booking.calendar_id == Change.calendar_id, Booking.item_href == Change.href))
        .where(Change.calendar_id == calendar_id, Change.number > after, Change.number <= upto)
        .order_by(Change.number)
        .limit(limit)
    )
    return [(change, booking) for change, booking in rows]


def prune(session: Session, calendar: Calendar, older_than: datetime) -> None:
    """Forget changes older than ``older_than``; tokens before them become invalid."""
    newest_old = session.scalar(
        select(Change.number)
        .where(Change.calendar_id == calendar.id, Change.created_at < older_than)
        .order_by(Change.number.desc())
        .limit(1)
    )
    if newest_old is None:
        return
    session.execute(delete(Change).where(Change.calendar_id == calendar.id, Change.number <= newest_old))
    session.execute(
        update(Calendar).where(Calendar.id == calendar.id).values(changes_pruned_through=newest_old)
    )
    calendar.changes_pruned_through = newest_old


def prune_now_and_then(session: Session, calendar: Calendar, max_age_days: int, now: datetime) -> None:
    """Every few hundred changes, forget those older than the sync-token lifetime."""
    if calendar.change_counter % PRUNE_EVERY == 0:
        prune(session, calendar, older_than=now - timedelta(days=max_age_days))
