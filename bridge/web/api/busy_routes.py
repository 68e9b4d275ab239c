"""POST /freebusy and POST /free-slots: what the booking engine asks before it offers times."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge import freebusy
from bridge.store import calendars, connections
from bridge.web.api.auth import caller
from bridge.web.api.context import Api, iso
from bridge.web.api.inputs import calendar_ids, duration, field, invalid, json_body, window
from bridge.web.api.problems import not_found

MAX_WINDOWS = 100
MAX_SLOTS = 5000


def routes(api: Api) -> list[Route]:
    async def post_freebusy(request: Request) -> Response:
        who = await caller(request, api.store)
        data = await json_body(request, api.body_limit)
        ids = calendar_ids(data)
        start, end = window(data, api.settings.max_query_window_days)
        # Rendered in the worker thread: the answer for many calendars is large (thousands of periods).
        return Response(await run_in_threadpool(_freebusy, api, who.tenant_id, ids, start, end),
                        media_type="application/json")

    async def post_free_slots(request: Request) -> Response:
        who = await caller(request, api.store)
        data = await json_body(request, api.body_limit)
        ids = calendar_ids(data)
        raw_windows = field(data, "windows", list)
        if not raw_windows or len(raw_windows) > MAX_WINDOWS or not all(isinstance(w, dict) for w in raw_windows):
            raise invalid(f"'windows' must list 1 to {MAX_WINDOWS} objects with start and end", field="windows")
        windows = sorted(window(w, api.settings.max_query_window_days, prefix=f"windows[{i}]")
                         for i, w in enumerate(raw_windows))
        if windows[-1][1] - windows[0][0] > timedelta(days=api.settings.max_query_window_days):
            raise invalid("the windows together span more than the maximum window", field="windows")
        length = duration(data, "duration")
        step = duration(data, "step", default=length)
        return JSONResponse(await run_in_threadpool(_free_slots, api, who.tenant_id, ids, windows, length, step))

    return [Route("/freebusy", post_freebusy, methods=["POST"]),
            Route("/free-slots", post_free_slots, methods=["POST"])]


def _busy(api: Api, tenant_id: int, ids: list[int], start: Any, end: Any) -> tuple[dict[int, Any], dict[int, str]]:
    with api.store.read() as session:
        found = calendars.calendars_in_tenant(session, tenant_id, ids)
        if len(found) != len(ids):
            raise not_found("calendar")
        busy = freebusy.busy_periods(session, list(found.values()), start, end)
        providers = connections.providers_of(session, tenant_id)
    return busy, providers


def _freebusy(api: Api, tenant_id: int, ids: list[int], start: Any, end: Any) -> bytes:
    """The answer as JSON text, written here rather than through dicts and ``json.dumps``: it lists
    every busy instance (thousands for many calendars), so each period is one string made from its
    stored times, with the JSON of its type and of its source's kind made once per value."""
    with api.store.read() as session:
        found = calendars.calendars_in_tenant(session, tenant_id, ids)
        if len(found) != len(ids):
            raise not_found("calendar")
        times, busy = freebusy.busy_stored(session, list(found.values()), start, end)
        providers = connections.providers_of(session, tenant_id)
    texts: dict[Any, str] = {}  # the same instants recur across calendars: convert each once

    def text(stored: Any) -> str:
        converted = texts.get(stored)
        if converted is None:
            converted = texts[stored] = times.iso(stored)
        return converted

    types: dict[str, str] = {}
    kinds: dict[str, str] = {}
    parts = ['{"start":', _json(iso(start)), ',"end":', _json(iso(end)), ',"calendars":[']
    for index, calendar_id in enumerate(ids):
        rows = []
        for first, last, busy_type, item_id, origin in busy[calendar_id]:
            fbtype = types.get(busy_type)
            if fbtype is None:
                fbtype = types[busy_type] = _json(busy_type)
            kind = kinds.get(origin)
            if kind is None:
                kind = kinds[origin] = _source_json(origin, providers)
            rows.append(f'{{"start":"{text(first)}","end":"{text(last)}","type":{fbtype},"source":{{"item":{item_id},'
                        f'{kind}}}')
        parts += [',' if index else '', f'{{"id":{calendar_id},"busy":[', ','.join(rows), ']}']
    parts += ['],"merged":[', ','.join(f'{{"start":"{text(s)}","end":"{text(e)}"}}'
                                       for s, e in freebusy.merged_stored(busy)), ']}']
    return ''.join(parts).encode()


def _json(value: Any) -> str:
    """One JSON value as Starlette's JSONResponse writes it."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))


def _free_slots(api: Api, tenant_id: int, ids: list[int], windows: list[Any], length: Any,
                step: Any) -> dict[str, Any]:
    busy, _ = _busy(api, tenant_id, ids, windows[0][0], max(end for _, end in windows))
    slots = freebusy.free_slots(busy, windows, length, step)
    if len(slots) > MAX_SLOTS:
        raise invalid(f"more than {MAX_SLOTS} slots: use a larger step or fewer windows", field="step")
    return {"duration_minutes": int(length.total_seconds() // 60),
            "slots": [{"start": iso(s), "end": iso(s + length)} for s in slots]}


def _source_json(origin: str, providers: dict[int, str]) -> str:
    """Why a period is busy, after the item's id: the kind of source and ids, never content."""
    source: dict[str, Any] = {}
    if origin.startswith("connection:"):
        connection_id = int(origin.split(":", 1)[1])
        source.update(kind="connection", connection=connection_id, provider=providers.get(connection_id))
    else:
        source["kind"] = origin
    return _json(source)[1:]  # without its "{": the item's id goes first
