"""POST /freebusy and POST /free-slots: what the booking engine asks before it offers times."""

from __future__ import annotations

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
        return JSONResponse(await run_in_threadpool(_freebusy, api, who.tenant_id, ids, start, end))

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


def _freebusy(api: Api, tenant_id: int, ids: list[int], start: Any, end: Any) -> dict[str, Any]:
    busy, providers = _busy(api, tenant_id, ids, start, end)
    return {
        "start": iso(start), "end": iso(end),
        "calendars": [{"id": calendar_id, "busy": [_period_json(p, providers) for p in busy[calendar_id]]}
                      for calendar_id in ids],
        "merged": [{"start": iso(s), "end": iso(e)} for s, e in freebusy.merged(busy)],
    }


def _free_slots(api: Api, tenant_id: int, ids: list[int], windows: list[Any], length: Any,
                step: Any) -> dict[str, Any]:
    busy, _ = _busy(api, tenant_id, ids, windows[0][0], max(end for _, end in windows))
    slots = freebusy.free_slots(busy, windows, length, step)
    if len(slots) > MAX_SLOTS:
        raise invalid(f"more than {MAX_SLOTS} slots: use a larger step or fewer windows", field="step")
    return {"duration_minutes": int(length.total_seconds() // 60),
            "slots": [{"start": iso(s), "end": iso(s + length)} for s in slots]}


def _period_json(period: freebusy.BusyPeriod, providers: dict[int, str]) -> dict[str, Any]:
    """A busy period with why it is busy: the kind of source and ids, never content."""
    source: dict[str, Any] = {"item": period.item_id}
    if period.origin.startswith("connection:"):
        connection_id = int(period.origin.split(":", 1)[1])
        source.update(kind="connection", connection=connection_id, provider=providers.get(connection_id))
    else:
        source["kind"] = period.origin
    return {"start": iso(period.start), "end": iso(period.end), "type": period.busy, "source": source}
