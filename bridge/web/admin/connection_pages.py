"""A connection's page (its options, each with a one-line explanation, and its actions: sync now, reset the
sync token, disable, disconnect) and its sync log.

A connection is visible to whoever sees its calendar (calendar_pages): the tenant's admins, and the owner.
Syncing runs on a thread of its own (connection_admin.start_sync) and the browser is sent to the log, which
refreshes itself while the run is going and shows how far it has come. The reset and the disconnect ask on
a page of their own, so they are confirmed even without JavaScript.
"""

from __future__ import annotations

import json
import zoneinfo
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from bridge import adapters
from bridge.ical.zones import parse_calendar
from bridge.store import bookings as booking_rows
from bridge.store import calendars, connections, items
from bridge.store.models import Calendar, Connection, SyncRun, User
from bridge.sync import connection_admin, mirror
from bridge.sync.connection_admin import SyncInProgress
from bridge.sync.engine import Engine
from bridge.web.admin.calendar_pages import visible_calendar
from bridge.web.admin.context import AdminContext, Refused, Who, not_found, root

PAGE_SIZE = 20
NOTICES = ("saved", "sync_busy", "sync_disabled")  # what ?notice= may show
MAIL_OPTIONS = ("notify_customers", "bcc_provider")  # not for a read-only feed: nothing is booked through it
RULE_OPTIONS = ("transparent_as_busy", "allday_as_busy", "anonymize_location", "no_personal_data",
                "private_without_details")
KNOWN_ERRORS = frozenset({"AuthExpired", "RateLimited", "Transient", "RemoteNotFound", "Permanent", "TokenInvalid"})


@dataclass(frozen=True)
class ConnectionView:
    id: int
    calendar_id: int
    calendar_name: str
    provider: str
    remote_name: str
    direction: str
    enabled: bool
    needs_attention: bool
    read_only: bool
    syncing: bool
    options: dict[str, Any]


@dataclass(frozen=True)
class HeldView:
    title: str
    when: str
    present: bool
    outward: bool = False  # a deletion here held back from the external calendar


@dataclass(frozen=True)
class RunView:
    id: int
    started: str
    trigger: str
    status: str
    seconds: int | None
    requests: int
    baseline: bool
    counts: dict[str, Any]
    error_class: str | None
    progress: tuple[int, int] | None
    held: list[HeldView] = field(default_factory=list)


def routes(ctx: AdminContext) -> list[Route]:
    async def page(request: Request) -> Response:
        who = await ctx.signed_in(request)
        view = await run_in_threadpool(_view, ctx, who, request.path_params["connection_id"])
        notice = request.query_params.get("notice", "")
        return ctx.render(request, "connection.html", who, connection=view, zones=_zones(),
                          notice=notice if notice in NOTICES else "", mail_options=MAIL_OPTIONS,
                          rule_options=RULE_OPTIONS)

    async def save_options(request: Request) -> Response:
        who, form = await ctx.posted(request)
        connection_id = request.path_params["connection_id"]
        await run_in_threadpool(_save_options, ctx, who, connection_id, form)
        return RedirectResponse(f"{root(request)}/connections/{connection_id}?notice=saved", status_code=303)

    async def sync(request: Request) -> Response:
        who, form = await ctx.posted(request)
        connection_id = request.path_params["connection_id"]
        notice = await run_in_threadpool(_sync, ctx, who, connection_id, False, form.get("confirm_deletions") == "1")
        return _after_sync(request, connection_id, notice)

    async def reset_page(request: Request) -> Response:
        who = await ctx.signed_in(request)
        view = await run_in_threadpool(_view, ctx, who, request.path_params["connection_id"])
        return ctx.render(request, "confirm.html", who, connection=view, action="reset")

    async def reset(request: Request) -> Response:
        who, _ = await ctx.posted(request)
        connection_id = request.path_params["connection_id"]
        notice = await run_in_threadpool(_sync, ctx, who, connection_id, True, False)
        return _after_sync(request, connection_id, notice)

    async def set_enabled(request: Request) -> Response:
        who, form = await ctx.posted(request)
        connection_id = request.path_params["connection_id"]
        await run_in_threadpool(_set_enabled, ctx, who, connection_id, form.get("enabled") == "1")
        return RedirectResponse(f"{root(request)}/connections/{connection_id}?notice=saved", status_code=303)

    async def disconnect_page(request: Request) -> Response:
        who = await ctx.signed_in(request)
        view = await run_in_threadpool(_view, ctx, who, request.path_params["connection_id"])
        return ctx.render(request, "confirm.html", who, connection=view, action="disconnect")

    async def disconnect(request: Request) -> Response:
        who, form = await ctx.posted(request)
        connection_id = request.path_params["connection_id"]
        calendar_id = await run_in_threadpool(_disconnect, ctx, who, connection_id, form.get("mirrored") == "remove")
        if calendar_id is None:
            return RedirectResponse(f"{root(request)}/connections/{connection_id}?notice=sync_busy", status_code=303)
        return RedirectResponse(f"{root(request)}/calendars/{calendar_id}", status_code=303)

    async def log_page(request: Request) -> Response:
        who = await ctx.signed_in(request)
        before = request.query_params.get("before", "")
        if before and not (before.isascii() and before.isdecimal() and len(before) <= 18):
            raise Refused(400)
        view, runs, older = await run_in_threadpool(_log, ctx, who, request.path_params["connection_id"],
                                                    int(before) if before else None)
        refreshing = view.syncing or any(run.status == "running" for run in runs)
        return ctx.render(request, "log.html", who, connection=view, runs=runs, older=older, paged=bool(before),
                          refreshing=refreshing, known_errors=KNOWN_ERRORS)

    return [
        Route("/connections/{connection_id:int}", page, methods=["GET"]),
        Route("/connections/{connection_id:int}/options", save_options, methods=["POST"]),
        Route("/connections/{connection_id:int}/sync", sync, methods=["POST"]),
        Route("/connections/{connection_id:int}/reset", reset_page, methods=["GET"]),
        Route("/connections/{connection_id:int}/reset", reset, methods=["POST"]),
        Route("/connections/{connection_id:int}/enabled", set_enabled, methods=["POST"]),
        Route("/connections/{connection_id:int}/disconnect", disconnect_page, methods=["GET"]),
        Route("/connections/{connection_id:int}/disconnect", disconnect, methods=["POST"]),
        Route("/connections/{connection_id:int}/log", log_page, methods=["GET"]),
    ]


@cache
def _zones() -> list[str]:
    return sorted(zoneinfo.available_timezones())


def _after_sync(request: Request, connection_id: int, notice: str) -> Response:
    if notice:
        return RedirectResponse(f"{root(request)}/connections/{connection_id}?notice={notice}", status_code=303)
    return RedirectResponse(f"{root(request)}/connections/{connection_id}/log", status_code=303)


# -- reading ----------------------------------------------------------------------------------------

def _visible_connection(session: Session, who: Who, connection_id: int) -> tuple[Connection, Calendar, User]:
    """The connection if its calendar is visible to this user; 404 otherwise (another tenant's, a colleague's)."""
    connection = connections.connection_in_tenant(session, who.tenant_id, connection_id)
    if connection is None:
        raise not_found()
    calendar, owner = visible_calendar(session, who, connection.calendar_id)
    return connection, calendar, owner


def connection_view(connection: Connection, calendar: Calendar, owner: User) -> ConnectionView:
    options = mirror.option_values(connection, calendar, owner)
    options["bcc_provider"] = calendar.bcc_provider
    leased = connection.lease_expires_at is not None and connection.lease_expires_at > datetime.now(UTC)
    return ConnectionView(
        connection.id, calendar.id, calendars.display_name(calendar),
        connection.provider, connection.remote_name or connection.remote_calendar, connection.direction,
        connection.enabled, connection.needs_attention, connection.provider in adapters.READ_ONLY, leased, options)


def _view(ctx: AdminContext, who: Who, connection_id: int) -> ConnectionView:
    with ctx.store.read() as session:
        return connection_view(*_visible_connection(session, who, connection_id))


def _log(ctx: AdminContext, who: Who, connection_id: int,
         before: int | None) -> tuple[ConnectionView, list[RunView], int | None]:
    """The connection, a page of its runs (newest first) and the id to page back from (None: no older)."""
    with ctx.store.read() as session:
        connection, calendar, owner = _visible_connection(session, who, connection_id)
        page = connection_admin.runs(session, connection.id, limit=PAGE_SIZE + 1, before=before)
        older = page[PAGE_SIZE - 1].id if len(page) > PAGE_SIZE else None
        zone = ZoneInfo(calendar.timezone)
        runs = [_run_view(session, run, calendar, zone) for run in page[:PAGE_SIZE]]
        return connection_view(connection, calendar, owner), runs, older


def _run_view(session: Session, run: SyncRun, calendar: Calendar, zone: ZoneInfo) -> RunView:
    counts = json.loads(run.counts or "{}")
    progress = counts.pop("progress", None) if run.status == "running" else None
    end = run.finished_at or datetime.now(UTC)
    held = [_held_view(session, calendar, entry, zone) for entry in counts.pop("held_deletions", [])]
    return RunView(run.id, f"{run.started_at.astimezone(zone):%d.%m.%Y %H:%M:%S}", run.trigger, run.status,
                   int((end - run.started_at).total_seconds()), run.requests, run.baseline,
                   {key: value for key, value in counts.items() if key != "item_errors"}, run.error_class,
                   (int(progress["done"]), int(progress["total"])) if progress else None,
                   held if run.status == "held" else [])


def _held_view(session: Session, calendar: Calendar, entry: dict[str, str], zone: ZoneInfo) -> HeldView:
    """What a held deletion would remove: the event's title and start as stored here (after the privacy rules).

    A deletion held from the external calendar (``PushDelete``) names an item deleted here: a booking's
    title and start come from the booking (its event's SUMMARY is the customer's name); of a client's
    item nothing is kept here, and the page says it is still in the external calendar."""
    href, outward = entry["item_href"], entry.get("action") == "PushDelete"
    item = items.by_href(session, calendar.id, href)
    if item is None:
        booking = booking_rows.by_item(session, calendar.id, href) if outward else None
        if booking is None:
            return HeldView("", "", False, outward)
        return HeldView(booking.customer_name, f"{booking.start.astimezone(zone):%d.%m.%Y %H:%M}", True, outward)
    title = ""
    try:
        event = next(iter(parse_calendar(item.text).walk("VEVENT")), None)
        title = str(event.get("SUMMARY", "")) if event is not None else ""
    except ValueError:
        pass
    when = f"{item.dtstart.astimezone(zone):%d.%m.%Y %H:%M}" if item.dtstart is not None else ""
    return HeldView(title, when, True, outward)


# -- changing ---------------------------------------------------------------------------------------

def _save_options(ctx: AdminContext, who: Who, connection_id: int, form: dict[str, str]) -> None:
    """The form's options in one transaction; a read-only feed keeps its direction and has no mail options."""
    with ctx.store.write() as session:
        connection, calendar, _ = _visible_connection(session, who, connection_id)
        read_only = connection.provider in adapters.READ_ONLY
        wanted: dict[str, Any] = {key: form.get(key) == "1" for key in RULE_OPTIONS}
        zone = form.get("sync_timezone", "").strip()
        wanted["sync_timezone"] = zone or None
        if not read_only:
            wanted[mirror.NOTIFY_OPTION] = form.get(mirror.NOTIFY_OPTION) == "1"
            calendars.set_bcc_provider(calendar, form.get("bcc_provider") == "1")
            direction = form.get("direction", connection.direction)
            if direction not in connections.DIRECTIONS:
                raise Refused(400)
            connection_admin.set_direction(session, connection, direction)
        try:
            options = mirror.validate_options(wanted)
        except ValueError as exc:
            raise Refused(400) from exc
        connection_admin.change_options(session, connection, options, datetime.now(UTC),
                                        token_max_age_days=ctx.settings.sync_token_max_age_days)


def _set_enabled(ctx: AdminContext, who: Who, connection_id: int, enabled: bool) -> None:
    with ctx.store.write() as session:
        connection, _, _ = _visible_connection(session, who, connection_id)
        connection_admin.set_enabled(connection, enabled)


def _sync(ctx: AdminContext, who: Who, connection_id: int, reset: bool, confirm: bool) -> str:
    """Start a run; the notice to show instead of the log ('' when it started)."""
    with ctx.store.read() as session:
        connection, _, _ = _visible_connection(session, who, connection_id)
        if not connection.enabled:
            return "sync_disabled"
    engine = Engine(ctx.store, ctx.settings, ctx.keys.get())
    runner = connection_admin.runner_name("admin")
    try:
        connection_admin.start_sync(ctx.store, engine, connection_id, runner, datetime.now(UTC), reset=reset,
                                    confirm_deletions=confirm)
    except SyncInProgress:
        return "sync_busy"
    return ""


def _disconnect(ctx: AdminContext, who: Who, connection_id: int, remove: bool) -> int | None:
    """Remove the connection under its lease; its calendar's id, or None while a run holds the lease."""
    try:
        removed = connection_admin.remove_connection(
            ctx.store, connection_id, connection_admin.runner_name("admin"),
            lambda session: _visible_connection(session, who, connection_id)[0], secrets=ctx.keys.get(),
            ca_file=ctx.settings.provider_ca_file or None, remove_mirrored=remove)
    except SyncInProgress:
        return None
    if removed.departing is not None:
        removed.departing.stop()
    return removed.calendar_id
