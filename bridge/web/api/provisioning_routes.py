"""Users and calendars over the API, as with the CLI. Listing calendars needs any token of
the tenant; creating and removing users and calendars needs one with the admin scope.

Removing one that holds bookings or connections answers 409 ``confirmation-needed`` with the
counts, unless the request says ``?confirm=true``; then each booking is cancelled so that the
change feed reports it (bridge.removal, shared with the CLI and the admin page)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge import removal
from bridge.passwords import hash_password
from bridge.store import calendars, users
from bridge.store.models import Tenant
from bridge.web.api.auth import caller, require_admin
from bridge.web.api.context import Api, user_json
from bridge.web.api.inputs import field, invalid, json_body, query_flag
from bridge.web.api.problems import Problem, not_found


def routes(api: Api) -> list[Route]:
    async def list_calendars(request: Request) -> Response:
        who = await caller(request, api.store)
        return JSONResponse(await run_in_threadpool(_list_calendars, api, who.tenant_id))

    async def read_calendar(request: Request) -> Response:
        who = await caller(request, api.store)
        return JSONResponse(await run_in_threadpool(_read_calendar, api, who.tenant_id,
                                                    request.path_params["calendar_id"]))

    async def create_calendar(request: Request) -> Response:
        who = await caller(request, api.store)
        require_admin(who)
        data = await json_body(request, api.body_limit)
        owner, slug = field(data, "owner", str), field(data, "slug", str)
        zone = field(data, "timezone", str, required=False, default=api.settings.default_timezone)
        name = field(data, "name", str, required=False, default="")
        bcc = field(data, "bcc_provider", bool, required=False, default=False)
        body = await run_in_threadpool(_create_calendar, api, who.tenant_id, owner, slug, zone, name, bcc)
        return JSONResponse(body, status_code=201, headers={"Location": f"/api/v1/calendars/{body['id']}"})

    async def change_calendar(request: Request) -> Response:
        who = await caller(request, api.store)
        require_admin(who)
        data = await json_body(request, api.body_limit)
        unknown = sorted(set(data) - {"bcc_provider"})
        if unknown:
            raise invalid(f"'{unknown[0]}' cannot be changed (only bcc_provider)", field=unknown[0])
        bcc = field(data, "bcc_provider", bool)
        return JSONResponse(await run_in_threadpool(_change_calendar, api, who.tenant_id,
                                                    request.path_params["calendar_id"], bcc))

    async def delete_calendar(request: Request) -> Response:
        who = await caller(request, api.store)
        require_admin(who)
        confirmed = query_flag(request, "confirm")
        await run_in_threadpool(_delete_calendar, api, who.tenant_id, request.path_params["calendar_id"], confirmed)
        return Response(status_code=204)

    async def list_users(request: Request) -> Response:
        who = await caller(request, api.store)
        require_admin(who)
        return JSONResponse(await run_in_threadpool(_list_users, api, who.tenant_id))

    async def create_user(request: Request) -> Response:
        who = await caller(request, api.store)
        require_admin(who)
        data = await json_body(request, api.body_limit)
        password = field(data, "password", str)
        try:
            password_hash = await run_in_threadpool(hash_password, password)
        except ValueError as exc:
            raise invalid(str(exc), field="password") from exc
        body = await run_in_threadpool(
            _create_user, api, who.tenant_id, field(data, "login", str), field(data, "email", str),
            field(data, "role", str, required=False, default="member"),
            field(data, "language", str, required=False, default="de"), password_hash)
        return JSONResponse(body, status_code=201, headers={"Location": f"/api/v1/users/{body['login']}"})

    async def read_user(request: Request) -> Response:
        who = await caller(request, api.store)
        require_admin(who)
        return JSONResponse(await run_in_threadpool(_read_user, api, who.tenant_id, request.path_params["login"]))

    async def delete_user(request: Request) -> Response:
        who = await caller(request, api.store)
        require_admin(who)
        confirmed = query_flag(request, "confirm")
        await run_in_threadpool(_delete_user, api, who.tenant_id, request.path_params["login"], confirmed)
        return Response(status_code=204)

    return [
        Route("/calendars", list_calendars, methods=["GET"]),
        Route("/calendars", create_calendar, methods=["POST"]),
        Route("/calendars/{calendar_id:int}", read_calendar, methods=["GET"]),
        Route("/calendars/{calendar_id:int}", change_calendar, methods=["PATCH"]),
        Route("/calendars/{calendar_id:int}", delete_calendar, methods=["DELETE"]),
        Route("/users", list_users, methods=["GET"]),
        Route("/users", create_user, methods=["POST"]),
        Route("/users/{login}", read_user, methods=["GET"]),
        Route("/users/{login}", delete_user, methods=["DELETE"]),
    ]


def _list_calendars(api: Api, tenant_id: int) -> dict[str, Any]:
    with api.store.read() as session:
        return {"calendars": [api.calendar_json(c, o) for c, o in calendars.calendars_with_owner(session, tenant_id)]}


def _read_calendar(api: Api, tenant_id: int, calendar_id: int) -> dict[str, Any]:
    with api.store.read() as session:
        return api.calendar_json(*api.calendar(session, tenant_id, calendar_id))


def _create_calendar(api: Api, tenant_id: int, owner_login: str, slug: str, zone: str, name: str,
                     bcc_provider: bool) -> dict[str, Any]:
    with api.store.write() as session:
        owner = users.user_in_tenant(session, tenant_id, owner_login)
        if owner is None:
            raise not_found("user")
        try:
            calendar = calendars.create_calendar(session, owner, slug, timezone=zone,
                                                 props={"D:displayname": name} if name else None,
                                                 bcc_provider=bcc_provider)
        except ValueError as exc:
            raise invalid(str(exc)) from exc
        return api.calendar_json(calendar, owner)


def _change_calendar(api: Api, tenant_id: int, calendar_id: int, bcc_provider: bool) -> dict[str, Any]:
    with api.store.write() as session:
        calendar, owner = api.calendar(session, tenant_id, calendar_id)
        calendars.set_bcc_provider(calendar, bcc_provider)
        return api.calendar_json(calendar, owner)


def _delete_calendar(api: Api, tenant_id: int, calendar_id: int, confirmed: bool) -> None:
    with api.store.write() as session:
        calendar, owner = api.calendar(session, tenant_id, calendar_id)
        try:
            done = removal.remove_calendar(session, calendar, owner, datetime.now(UTC), confirmed=confirmed,
                                           changes_kept_days=api.settings.sync_token_max_age_days,
                                           keys=removal.ChannelKeys.from_settings(api.settings))
        except removal.ConfirmationNeeded as exc:
            raise _confirmation_needed(exc.consequences) from exc
    done.stop_push_channels()


def _confirmation_needed(consequences: removal.Consequences) -> Problem:
    return Problem(409, "confirmation-needed", "Confirmation needed",
                   f"{consequences.describe()}; repeat the request with ?confirm=true to go ahead",
                   consequences={"calendars": consequences.calendars, "bookings": consequences.bookings,
                                 "connections": consequences.connections})


def _list_users(api: Api, tenant_id: int) -> dict[str, Any]:
    with api.store.read() as session:
        return {"users": [user_json(u) for u in users.users_of_tenant(session, tenant_id)]}


def _create_user(api: Api, tenant_id: int, login: str, email: str, role: str, language: str,
                 password_hash: str) -> dict[str, Any]:
    with api.store.write() as session:
        tenant = session.get(Tenant, tenant_id)
        assert tenant is not None
        try:
            user = users.create_user(session, tenant, login=login, email=email, password_hash=password_hash,
                                     role=role, language=language)
        except ValueError as exc:
            raise invalid(str(exc)) from exc
        return user_json(user)


def _read_user(api: Api, tenant_id: int, login: str) -> dict[str, Any]:
    with api.store.read() as session:
        user = users.user_in_tenant(session, tenant_id, login)
        if user is None:
            raise not_found("user")
        return user_json(user)


def _delete_user(api: Api, tenant_id: int, login: str, confirmed: bool) -> None:
    with api.store.write() as session:
        user = users.user_in_tenant(session, tenant_id, login)
        if user is None:
            raise not_found("user")
        try:
            done = removal.remove_user(session, user, datetime.now(UTC), confirmed=confirmed,
                                       changes_kept_days=api.settings.sync_token_max_age_days,
                                       keys=removal.ChannelKeys.from_settings(api.settings))
        except removal.ConfirmationNeeded as exc:
            raise _confirmation_needed(exc.consequences) from exc
    done.stop_push_channels()
