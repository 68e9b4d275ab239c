"""Connections of the tenant's calendars to external calendars, as with ``calbridge connection …``.

Any token of the tenant may read connections and their sync log; adding, changing, syncing and
disconnecting need the admin scope. Another tenant's connection is answered 404, as if absent.

Adding tests the account first (:func:`bridge.sync.connection_admin.check_new`): a refused password,
an unreachable server or an unchosen remote calendar is a 422 problem in plain words, and nothing
is stored. The password is stored encrypted and never returned. A sync runs in the request (on a
worker thread) under the connection's lease: while another run holds it, or while the connection is
disabled, the answer is 409.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.secrets import Secrets
from bridge.store import connections
from bridge.store.models import Calendar, Connection, SyncRun, User
from bridge.sync import authorize, connection_admin, mirror
from bridge.sync.connection_admin import AlreadyConnected, ConnectionProblem, RemoteCalendarNeeded, SyncInProgress
from bridge.sync.engine import ConnectionDisabled, Engine
from bridge.web.api.auth import caller, require_admin
from bridge.web.api.context import Api, Keys, iso
from bridge.web.api.inputs import field, invalid, json_body, query_flag
from bridge.web.api.problems import Problem, not_found

ADD_FIELDS = frozenset({"calendar", "provider", "url", "remote_calendar", "username", "password", "direction",
                        "options"})
PATCH_FIELDS = frozenset({"options", "direction", "enabled"})
SYNC_FIELDS = frozenset({"reset", "confirm_deletions"})
DEFAULT_RUNS = 20
MAX_RUNS = 100


def routes(api: Api) -> list[Route]:
    keys = Keys(api.settings)

    async def list_connections(request: Request) -> Response:
        who = await caller(request, api.store)
        return JSONResponse(await run_in_threadpool(_list, api, who.tenant_id))

    async def add(request: Request) -> Response:
        who = await caller(request, api.store)
        require_admin(who)
        wish = _new_connection(await json_body(request, api.body_limit), api.settings.provider_ca_file or None)
        await run_in_threadpool(_calendar_or_404, api, who.tenant_id, wish.calendar_id)  # before any request out
        checked = await run_in_threadpool(_check, wish.account, api.settings.provider_private_networks)
        body = await run_in_threadpool(_add, api, keys.get, who.tenant_id, wish, checked)
        return JSONResponse(body, status_code=201, headers={"Location": f"/api/v1/connections/{body['id']}"})

    async def read(request: Request) -> Response:
        who = await caller(request, api.store)
        return JSONResponse(await run_in_threadpool(_read, api, who.tenant_id, request.path_params["connection_id"]))

    async def change(request: Request) -> Response:
        who = await caller(request, api.store)
        require_admin(who)
        data = _only(await json_body(request, api.body_limit), PATCH_FIELDS)
        options = field(data, "options", dict, required=False)
        direction = _direction(data)
        enabled = field(data, "enabled", bool, required=False)
        if options is not None:
            try:
                options = mirror.validate_options(options)
            except ValueError as exc:
                raise invalid(str(exc), field="options") from exc
        return JSONResponse(await run_in_threadpool(
            _change, api, who.tenant_id, request.path_params["connection_id"], options, direction, enabled))

    async def sync(request: Request) -> Response:
        who = await caller(request, api.store)
        require_admin(who)
        data = await _optional_body(request, api.body_limit)
        _only(data, SYNC_FIELDS)
        reset = field(data, "reset", bool, required=False, default=False)
        confirm = field(data, "confirm_deletions", bool, required=False, default=False)
        return JSONResponse(await run_in_threadpool(
            _sync, api, keys.get, who.tenant_id, request.path_params["connection_id"], reset, confirm))

    async def disconnect(request: Request) -> Response:
        who = await caller(request, api.store)
        require_admin(who)
        remove = query_flag(request, "remove_mirrored")
        return JSONResponse(await run_in_threadpool(
            _disconnect, api, who.tenant_id, request.path_params["connection_id"], remove))

    async def list_runs(request: Request) -> Response:
        who = await caller(request, api.store)
        limit = _number(request, "limit", DEFAULT_RUNS, MAX_RUNS) or DEFAULT_RUNS
        before = _number(request, "before", None)
        return JSONResponse(await run_in_threadpool(
            _runs, api, who.tenant_id, request.path_params["connection_id"], limit, before))

    return [
        Route("/connections", list_connections, methods=["GET"]),
        Route("/connections", add, methods=["POST"]),
        Route("/connections/{connection_id:int}", read, methods=["GET"]),
        Route("/connections/{connection_id:int}", change, methods=["PATCH"]),
        Route("/connections/{connection_id:int}", disconnect, methods=["DELETE"]),
        Route("/connections/{connection_id:int}/sync", sync, methods=["POST"]),
        Route("/connections/{connection_id:int}/runs", list_runs, methods=["GET"]),
    ]


# -- reading requests -----------------------------------------------------------------------------

@dataclass(frozen=True)
class _NewConnection:
    calendar_id: int
    account: connection_admin.Account
    direction: str | None
    options: dict[str, Any]


def _new_connection(data: dict[str, Any], ca_file: str | None) -> _NewConnection:
    """A POST /connections body, checked without going anywhere."""
    _only(data, ADD_FIELDS)
    calendar_id = field(data, "calendar", int)
    provider = field(data, "provider", str)
    if provider not in connection_admin.PROVIDERS:
        raise invalid(f"provider must be one of {', '.join(connection_admin.PROVIDERS)}", field="provider")
    if provider in authorize.OAUTH_PROVIDERS:
        raise invalid(f"{provider} accounts are connected by signing in to {provider.title()}, not with a password: "
                      "use `calbridge connection add` (or the admin page)", field="provider")
    username = field(data, "username", str, required=False, default="")
    password = field(data, "password", str, required=False, default="")
    if password and not username:
        raise invalid("a password needs a username", field="username")
    direction = _direction(data)
    if direction not in (None, "inbound") and connection_admin.is_read_only(provider):
        raise invalid(connection_admin.READ_ONLY_DIRECTION, field="direction")
    try:
        options = connection_admin.initial_options(provider, field(data, "options", dict, required=False, default={}))
    except ValueError as exc:
        raise invalid(str(exc), field="options") from exc
    account = connection_admin.new_account(provider, field(data, "url", str, required=False, default=""),
                                           field(data, "remote_calendar", str, required=False, default=""),
                                           username, password, ca_file=ca_file)
    return _NewConnection(calendar_id, account, direction, options)


def _direction(data: dict[str, Any]) -> str | None:
    direction: str | None = field(data, "direction", str, required=False)
    if direction is not None and direction not in connections.DIRECTIONS:
        raise invalid(f"direction must be one of {', '.join(connections.DIRECTIONS)}", field="direction")
    return direction


def _only(data: dict[str, Any], allowed: frozenset[str]) -> dict[str, Any]:
    """Refuse fields this request does not take (a typo must not be silently ignored)."""
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise invalid(f"unknown fields: {', '.join(unknown)} (known: {', '.join(sorted(allowed))})", field=unknown[0])
    return data


async def _optional_body(request: Request, limit: int) -> dict[str, Any]:
    """A JSON object, or {} when the request has no body."""
    if request.headers.get("content-length", "0") == "0" and "transfer-encoding" not in request.headers:
        return {}
    return await json_body(request, limit)


def _number(request: Request, name: str, default: int | None, high: int | None = None) -> int | None:
    """A positive whole number from the query (at most ``high``)."""
    text = request.query_params.get(name)
    if text is None:
        return default
    if not text.isdigit() or int(text) < 1 or (high is not None and int(text) > high):
        limit = f" up to {high}" if high is not None else ""
        raise invalid(f"'{name}' must be a whole number from 1{limit}", field=name)
    return int(text)


# -- JSON shapes ----------------------------------------------------------------------------------

def run_json(run: SyncRun) -> dict[str, Any]:
    """One row of the sync log; its counts hold numbers, ids we made and error classes, no content."""
    return {"id": run.id, "connection": run.connection_id, "trigger": run.trigger, "status": run.status,
            "baseline": run.baseline, "started_at": iso(run.started_at),
            "finished_at": iso(run.finished_at) if run.finished_at is not None else None,
            "requests": run.requests, "counts": json.loads(run.counts or "{}"),
            "error_class": run.error_class, "error_message": run.error_message}


def connection_json(connection: Connection, calendar: Calendar, owner: User, last: SyncRun | None,
                    now: datetime) -> dict[str, Any]:
    """A connection as the API shows it: never the credentials, only whether there are any."""
    leased = connection.lease_expires_at is not None and connection.lease_expires_at > now
    return {
        "id": connection.id, "calendar": calendar.id, "calendar_path": f"/dav/{owner.login}/{calendar.slug}/",
        "provider": connection.provider, "url": connection.server_url,
        "remote_calendar": connection.remote_calendar, "remote_name": connection.remote_name,
        "has_credentials": bool(connection.credentials), "direction": connection.direction,
        "enabled": connection.enabled, "options": mirror.option_values(connection, calendar, owner),
        "needs_attention": connection.needs_attention, "failures": connection.failures or 0,
        "baseline_due": connection.baseline_due, "syncing": leased,
        "next_due_at": iso(connection.next_due_at) if connection.next_due_at is not None else None,
        "created_at": iso(connection.created_at), "last_run": run_json(last) if last is not None else None,
    }


# -- work on a worker thread ----------------------------------------------------------------------

def _connection(session: Session, tenant_id: int, connection_id: int) -> Connection:
    connection = connections.connection_in_tenant(session, tenant_id, connection_id)
    if connection is None:
        raise not_found("connection")
    return connection


def _json_of(session: Session, connection: Connection) -> dict[str, Any]:
    calendar, owner = connection_admin.calendar_of(session, connection)
    last = connection_admin.last_runs(session, [connection.id]).get(connection.id)
    return connection_json(connection, calendar, owner, last, datetime.now(UTC))


def _list(api: Api, tenant_id: int) -> dict[str, Any]:
    now = datetime.now(UTC)
    with api.store.read() as session:
        found = connection_admin.listing(session, tenant_id)
        last = connection_admin.last_runs(session, [connection.id for connection, _, _ in found])
        return {"connections": [connection_json(connection, calendar, owner, last.get(connection.id), now)
                                for connection, calendar, owner in found]}


def _calendar_or_404(api: Api, tenant_id: int, calendar_id: int) -> None:
    with api.store.read() as session:
        api.calendar(session, tenant_id, calendar_id)


def _check(account: connection_admin.Account, private_networks: bool) -> connection_admin.Checked:
    try:
        return connection_admin.check_new(account, hint="'remote_calendar'", private_networks=private_networks)
    except RemoteCalendarNeeded as exc:
        raise Problem(422, "remote-calendar-needed", "Choose the remote calendar",
                      f"the account has {len(exc.found)} calendars: give one of them as 'remote_calendar'",
                      field="remote_calendar",
                      calendars=[{"id": c.id, "name": c.name, "read_only": c.read_only} for c in exc.found]) from exc
    except ConnectionProblem as exc:
        raise Problem(422, "account-unusable", "The account cannot be used", str(exc)) from exc


def _add(api: Api, keys: Callable[[], Secrets], tenant_id: int, wish: _NewConnection,
         checked: connection_admin.Checked) -> dict[str, Any]:
    with api.store.write() as session:
        calendar, _ = api.calendar(session, tenant_id, wish.calendar_id)
        try:
            connection = connection_admin.create(session, calendar, wish.account.provider, checked,
                                                 server_url=wish.account.server_url,
                                                 credentials=wish.account.credentials, direction=wish.direction,
                                                 options=wish.options, secrets=keys())
        except AlreadyConnected as exc:
            raise Problem(409, "already-connected", "Already connected", str(exc),
                          connection=exc.connection_id) from exc
        return _json_of(session, connection)


def _read(api: Api, tenant_id: int, connection_id: int) -> dict[str, Any]:
    with api.store.read() as session:
        return _json_of(session, _connection(session, tenant_id, connection_id))


def _change(api: Api, tenant_id: int, connection_id: int, options: dict[str, Any] | None, direction: str | None,
            enabled: bool | None) -> dict[str, Any]:
    """Every change of one PATCH in one transaction: all of them or none."""
    with api.store.write() as session:
        connection = _connection(session, tenant_id, connection_id)
        if direction is not None:
            try:
                connection_admin.set_direction(session, connection, direction)
            except ValueError as exc:
                raise invalid(str(exc), field="direction") from exc
        if enabled is not None:
            connection_admin.set_enabled(connection, enabled)
        change = None
        if options:
            change = connection_admin.change_options(session, connection, options, datetime.now(UTC),
                                                     token_max_age_days=api.settings.sync_token_max_age_days)
        body = _json_of(session, connection)
        if change is not None:
            body["options_change"] = {"tightened": list(change.tightened), "loosened": list(change.loosened),
                                      "rewritten": change.rewritten, "removed": change.removed,
                                      "baseline_due": change.baseline_due}
        return body


def _sync(api: Api, keys: Callable[[], Secrets], tenant_id: int, connection_id: int, reset: bool,
          confirm: bool) -> dict[str, Any]:
    with api.store.read() as session:
        _connection(session, tenant_id, connection_id)
    engine = Engine(api.store, api.settings, keys())
    runner = connection_admin.runner_name("api")
    try:
        outcome = connection_admin.sync_now(api.store, engine, connection_id, runner, datetime.now(UTC), reset=reset,
                                            confirm_deletions=confirm)
    except SyncInProgress as exc:
        raise _in_progress(api, tenant_id, connection_id) from exc
    except ConnectionDisabled as exc:
        raise Problem(409, "connection-disabled", "The connection is disabled",
                      "a disabled connection is not synced; enable it (PATCH with enabled: true) first") from exc
    with api.store.read() as session:
        run = session.get(SyncRun, outcome.run_id)
        if run is None:  # the connection was disconnected while it ran (its log went with it)
            raise not_found("connection")
        return run_json(run)


def _disconnect(api: Api, tenant_id: int, connection_id: int, remove: bool) -> dict[str, Any]:
    try:
        removed = connection_admin.remove_connection(
            api.store, connection_id, connection_admin.runner_name("api"),
            lambda session: _connection(session, tenant_id, connection_id), secrets=Secrets.from_settings(api.settings),
            ca_file=api.settings.provider_ca_file or None, remove_mirrored=remove)
    except SyncInProgress as exc:
        raise _in_progress(api, tenant_id, connection_id) from exc
    if removed.departing is not None:
        removed.departing.stop()
    return {"id": connection_id, "mirrored_items": removed.mirrored, "mirrored_removed": remove}


def _runs(api: Api, tenant_id: int, connection_id: int, limit: int, before: int | None) -> dict[str, Any]:
    with api.store.read() as session:
        _connection(session, tenant_id, connection_id)
        page = connection_admin.runs(session, connection_id, limit=limit + 1, before=before)
    more = len(page) > limit
    page = page[:limit]
    return {"runs": [run_json(run) for run in page], "next_before": page[-1].id if more else None}


def _in_progress(api: Api, tenant_id: int, connection_id: int) -> Problem:
    """409 while a run holds the lease; 404 if the lease could not be had because the connection is gone."""
    with api.store.read() as session:
        _connection(session, tenant_id, connection_id)
    return Problem(409, "sync-in-progress", "A sync is in progress",
                   "the connection is being synced right now; try again when that run has finished")
