"""The calendars page: a tenant's admin sees and manages every calendar of the tenant, a member
sees their own. Each calendar shows its CalDAV address and how to subscribe to it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from bridge import removal
from bridge.removal import Consequences
from bridge.store import calendars, users
from bridge.store.errors import AlreadyExists
from bridge.store.models import Calendar, User
from bridge.sync import connection_admin
from bridge.web.admin.context import AdminContext, Who, not_found, require_admin, root


@dataclass(frozen=True)
class CalendarView:
    id: int
    owner: str
    slug: str
    name: str
    timezone: str
    url: str


def routes(ctx: AdminContext) -> list[Route]:
    async def list_page(request: Request) -> Response:
        who = await ctx.signed_in(request)
        return await _list(ctx, request, who)

    async def create(request: Request) -> Response:
        who, form = await ctx.posted(request)
        require_admin(who)
        created = await run_in_threadpool(_create, ctx, who, form)
        if isinstance(created, str):
            return await _list(ctx, request, who, status=400, error=created, entered=form)
        return RedirectResponse(f"{root(request)}/calendars/{created}", status_code=303)

    async def detail(request: Request) -> Response:
        who = await ctx.signed_in(request)
        view, linked = await run_in_threadpool(_detail, ctx, who, request.path_params["calendar_id"])
        return ctx.render(request, "calendar.html", who, calendar=view, connections=linked)

    async def remove(request: Request) -> Response:
        who, form = await ctx.posted(request)
        require_admin(who)
        calendar_id = request.path_params["calendar_id"]
        asked = await run_in_threadpool(_remove, ctx, who, calendar_id, form.get("confirmed") == "yes")
        if asked is not None:  # bookings or connections at stake: say so first
            name, consequences = asked
            return ctx.render(request, "removal.html", who, kind="calendar", name=name, consequences=consequences,
                              action=f"{root(request)}/calendars/{calendar_id}/delete",
                              back=f"{root(request)}/calendars/{calendar_id}")
        return RedirectResponse(f"{root(request)}/calendars", status_code=303)

    return [
        Route("/calendars", list_page, methods=["GET"]),
        Route("/calendars", create, methods=["POST"]),
        Route("/calendars/{calendar_id:int}", detail, methods=["GET"]),
        Route("/calendars/{calendar_id:int}/delete", remove, methods=["POST"]),
    ]


async def _list(ctx: AdminContext, request: Request, who: Who, *, status: int = 200, error: str = "",
                entered: dict[str, str] | None = None) -> Response:
    views, owners = await run_in_threadpool(visible_calendars, ctx, who)
    entered = entered or {}
    return ctx.render(request, "calendars.html", who, status=status, calendars=views, owners=owners, error=error,
                      entered={key: entered.get(key, "") for key in ("owner", "slug", "name")},
                      timezone=entered.get("timezone") or ctx.settings.default_timezone)


def _view(ctx: AdminContext, calendar: Calendar, owner: User) -> CalendarView:
    return CalendarView(calendar.id, owner.login, calendar.slug,
                        calendars.display_name(calendar), calendar.timezone,
                        f"{ctx.settings.public_base_url}/dav/{owner.login}/{calendar.slug}/")


def visible_calendars(ctx: AdminContext, who: Who) -> tuple[list[CalendarView], list[tuple[int, str]]]:
    with ctx.store.read() as session:
        rows = calendars.calendars_with_owner(session, who.tenant_id)
        views = [_view(ctx, c, o) for c, o in rows if who.is_admin or o.id == who.user_id]
        owners = [(u.id, u.login) for u in users.users_of_tenant(session, who.tenant_id) if u.role != "service"]
        return views, owners if who.is_admin else []


def visible_calendar(session: Session, who: Who, calendar_id: int) -> tuple[Calendar, User]:
    """The calendar if this user may see it: 404 for another tenant's, and for a colleague's to a member."""
    found = calendars.calendar_in_tenant(session, who.tenant_id, calendar_id)
    if found is None or not (who.is_admin or found[1].id == who.user_id):
        raise not_found()
    return found


@dataclass(frozen=True)
class LinkedConnection:
    """A connection of the calendar, as its page lists it."""

    id: int
    provider: str
    remote_name: str
    state: str  # enabled | disabled | attention
    last_status: str  # the newest run's status, '' if it never ran


def _detail(ctx: AdminContext, who: Who, calendar_id: int) -> tuple[CalendarView, list[LinkedConnection]]:
    with ctx.store.read() as session:
        calendar, owner = visible_calendar(session, who, calendar_id)
        linked = [c for c, _, _ in connection_admin.listing(session, who.tenant_id) if c.calendar_id == calendar.id]
        last = connection_admin.last_runs(session, [c.id for c in linked])
        return _view(ctx, calendar, owner), [
            LinkedConnection(c.id, c.provider, c.remote_name or c.remote_calendar,
                             "attention" if c.needs_attention else ("enabled" if c.enabled else "disabled"),
                             last[c.id].status if c.id in last else "")
            for c in linked]


def _create(ctx: AdminContext, who: Who, form: dict[str, Any]) -> int | str:
    """The new calendar's id, or the key of the message saying what is wrong with the form."""
    try:
        owner_id = int(form.get("owner", ""))
    except ValueError:
        raise not_found() from None
    name, slug = form.get("name", "").strip(), form.get("slug", "").strip()
    timezone = form.get("timezone", "").strip() or ctx.settings.default_timezone
    if not calendars.SLUG_PATTERN.match(slug):
        return "form_slug"
    try:
        calendars.check_timezone(timezone)
    except ValueError:
        return "form_timezone"
    with ctx.store.write() as session:
        owner = session.get(User, owner_id)
        if owner is None or owner.tenant_id != who.tenant_id or owner.role in ("service", "removed"):
            raise not_found()
        try:
            calendar = calendars.create_calendar(session, owner, slug, timezone=timezone,
                                                 props={"D:displayname": name} if name else None)
        except AlreadyExists:
            return "form_calendar_exists"
        return calendar.id


def _remove(ctx: AdminContext, who: Who, calendar_id: int, confirmed: bool) -> tuple[str, Consequences] | None:
    """Remove the calendar (bridge.removal); or, when it would end bookings or connections and the admin has not
    confirmed that yet, its path and what the removal would end."""
    with ctx.store.write() as session:
        calendar, owner = visible_calendar(session, who, calendar_id)
        try:
            done = removal.remove_calendar(session, calendar, owner, datetime.now(UTC), confirmed=confirmed,
                                           changes_kept_days=ctx.settings.sync_token_max_age_days,
                                           keys=removal.ChannelKeys.from_settings(ctx.settings))
        except removal.ConfirmationNeeded as exc:
            return f"{owner.login}/{calendar.slug}", exc.consequences
    done.stop_push_channels()
    return None
