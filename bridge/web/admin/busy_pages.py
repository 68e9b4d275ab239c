"""Why is this slot busy? Pick a calendar and a time in its zone, and see each busy period over the
slot with what makes it busy: a booking, a connection, or an event a CalDAV client wrote.

The answer comes from ``bridge.freebusy``, the implementation the API and CalDAV free-busy-query
use, so it agrees with them on recurrences and time zones. It shows only what the busy view shows
(times, type, and the kind of source with its ids), never an event's summary, description or
place: a mirrored event's text may be personal data of the provider, a booking's of the customer.
"""

from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bridge import freebusy
from bridge.store import bookings, calendars, connections
from bridge.store.models import Calendar, Item, utcnow
from bridge.web.admin.calendar_pages import CalendarView, visible_calendar, visible_calendars
from bridge.web.admin.context import AdminContext, Who, not_found
from bridge.web.admin.strings import strings_for

DEFAULT_MINUTES = 30
MIN_MINUTES, MAX_MINUTES = 5, 1440
CONTEXT = timedelta(days=1)
"""How far around the slot a busy instance is read to show where it starts and ends; beyond, it is
shown as continuing."""

FIRST_DAY, LAST_DAY = date(1, 1, 3), date(9999, 12, 29)  # the slot and the days around it fit a datetime
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_TIME = re.compile(r"[0-9]{2}:[0-9]{2}")


@dataclass(frozen=True)
class Slot:
    calendar_id: int
    start: datetime  # aware UTC
    end: datetime


@dataclass(frozen=True)
class Reason:
    """One busy instance overlapping the slot, in the calendar's zone, and where it comes from."""

    start: str
    end: str
    continues_before: bool
    continues_after: bool
    busy: str  # RFC 5545 FBTYPE
    kind: str  # booking | connection | client | another origin as stored
    booking: str = ""  # the booking's public id
    connection_id: int = 0
    provider: str = ""  # its key: the page names it in the user's language
    remote_name: str = ""


@dataclass(frozen=True)
class Answer:
    calendar: str
    timezone: str
    start: str
    end: str
    reasons: list[Reason]


def routes(ctx: AdminContext) -> list[Route]:
    async def page(request: Request) -> Response:
        who = await ctx.signed_in(request)
        query = request.query_params
        entered = {key: query.get(key, "").strip() for key in ("calendar", "date", "time", "minutes")}
        visible = await run_in_threadpool(_choices, ctx, who)
        chosen = entered["calendar"]
        if chosen and not (chosen.isascii() and chosen.isdecimal() and len(chosen) <= 18):
            raise not_found()
        wanted = bool(entered["date"] or entered["time"])
        if not chosen:
            if wanted:
                return _render(ctx, request, who, visible, entered, status=400, error="busy_error_calendar")
            if visible:
                entered["calendar"] = str(visible[0].id)
        zone_name = await run_in_threadpool(_zone_of, ctx, who, int(entered["calendar"])) \
            if entered["calendar"] else ctx.settings.default_timezone
        if not wanted:
            entered["date"] = entered["date"] or utcnow().astimezone(zoneinfo.ZoneInfo(zone_name)).date().isoformat()
            return _render(ctx, request, who, visible, entered)
        slot = _slot(int(entered["calendar"]), zone_name, entered)
        if isinstance(slot, str):
            return _render(ctx, request, who, visible, entered, status=400, error=slot)
        answer = await run_in_threadpool(_answer, ctx, who, slot, strings_for(who.language)["busy_time_format"])
        return _render(ctx, request, who, visible, entered, answer=answer)

    return [Route("/busy", page, methods=["GET"])]


def _render(ctx: AdminContext, request: Request, who: Who, visible: list[CalendarView], entered: dict[str, str], *,
            status: int = 200, error: str = "", answer: Answer | None = None) -> Response:
    return ctx.render(request, "busy.html", who, status=status, calendars=visible, entered=entered, error=error,
                      answer=answer, min_minutes=MIN_MINUTES, max_minutes=MAX_MINUTES,
                      default_minutes=DEFAULT_MINUTES)


def _choices(ctx: AdminContext, who: Who) -> list[CalendarView]:
    return visible_calendars(ctx, who)[0]


def _zone_of(ctx: AdminContext, who: Who, calendar_id: int) -> str:
    """The calendar's time zone, after the same check as its own page: 404 if the user may not see it."""
    with ctx.store.read() as session:
        calendar, _ = visible_calendar(session, who, calendar_id)
        return calendar.timezone


def _slot(calendar_id: int, zone_name: str, entered: dict[str, str]) -> Slot | str:
    """The slot in UTC, or the key of the message saying what is wrong with the form."""
    try:
        day = date.fromisoformat(entered["date"]) if _DATE.fullmatch(entered["date"]) else None
    except ValueError:
        day = None
    if day is None or not FIRST_DAY <= day <= LAST_DAY:
        return "busy_error_date"
    if not _TIME.fullmatch(entered["time"]) or int(entered["time"][:2]) > 23 or int(entered["time"][3:]) > 59:
        return "busy_error_time"
    minutes = entered["minutes"] or str(DEFAULT_MINUTES)
    if not (minutes.isascii() and minutes.isdecimal()) or not MIN_MINUTES <= int(minutes) <= MAX_MINUTES:
        return "busy_error_minutes"
    zone = zoneinfo.ZoneInfo(zone_name)
    local = datetime(day.year, day.month, day.day, int(entered["time"][:2]), int(entered["time"][3:]), tzinfo=zone)
    start = local.astimezone(UTC)
    if start.astimezone(zone).replace(tzinfo=None) != local.replace(tzinfo=None):
        return "busy_error_gap"  # a time the clocks skip when they are put forward
    return Slot(calendar_id, start, start + timedelta(minutes=int(minutes)))


def _answer(ctx: AdminContext, who: Who, slot: Slot, time_format: str) -> Answer:
    with ctx.store.read() as session:
        calendar, _ = visible_calendar(session, who, slot.calendar_id)
        zone = zoneinfo.ZoneInfo(calendar.timezone)

        def local(moment: datetime) -> str:
            return moment.astimezone(zone).strftime(time_format)

        # Busy or free exactly as the API answers for the slot; the instances' own start and end
        # from a read of the day around it (the slot's read clips them to the slot).
        found = freebusy.busy_periods(session, [calendar], slot.start, slot.end)[calendar.id]
        around: list[freebusy.BusyPeriod] = []
        if found:
            around = freebusy.busy_periods(session, [calendar], slot.start - CONTEXT, slot.end + CONTEXT)[calendar.id]
        reasons: list[Reason] = []
        shown: set[tuple[int, datetime, datetime]] = set()
        for period in found:
            whole = next((p for p in around if p.item_id == period.item_id and p.start <= period.start
                          and p.end >= period.end), period)
            if (whole.item_id, whole.start, whole.end) in shown:
                continue
            shown.add((whole.item_id, whole.start, whole.end))
            reasons.append(Reason(local(whole.start), local(whole.end), whole.start <= slot.start - CONTEXT,
                                  whole.end >= slot.end + CONTEXT, whole.busy,
                                  **_source(session, who, calendar, whole)))
        name = calendars.display_name(calendar)
        return Answer(name, calendar.timezone, local(slot.start), local(slot.end), reasons)


def _source(session: Session, who: Who, calendar: Calendar, period: freebusy.BusyPeriod) -> dict[str, Any]:
    """What the busy view tells of a period's source: its kind and ids, never its content."""
    origin = period.origin
    if origin.startswith("connection:"):
        connection_id = int(origin.split(":", 1)[1])
        connection = connections.connection_in_tenant(session, who.tenant_id, connection_id)
        if connection is None:  # removed, its mirrored items kept
            return {"kind": "connection", "connection_id": connection_id}
        return {"kind": "connection", "connection_id": connection.id,
                "provider": connection.provider,
                "remote_name": connection.remote_name}
    if origin == "booking":
        item = session.get(Item, period.item_id)
        booking = bookings.by_item(session, calendar.id, item.href) if item is not None else None
        return {"kind": "booking", "booking": booking.public_id if booking is not None else ""}
    return {"kind": origin}
