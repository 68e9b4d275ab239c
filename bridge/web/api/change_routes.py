"""GET /changes: every item change of the tenant's calendars since a cursor, for the booking engine.

The pages and the cursor are :mod:`bridge.changefeed`'s; this module reads the query and maps the
feed's cursor errors to problems: a cursor behind the kept history is answered 410, a malformed
one (or one ahead of a calendar) 400, and either tells the client to start over without ``since``
(and re-read the bookings it tracks).
"""

from __future__ import annotations

from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge import changefeed
from bridge.web.api.auth import caller
from bridge.web.api.context import Api
from bridge.web.api.inputs import invalid
from bridge.web.api.problems import Problem

DEFAULT_LIMIT = changefeed.DEFAULT_LIMIT
MAX_LIMIT = changefeed.MAX_LIMIT


def routes(api: Api) -> list[Route]:
    async def feed(request: Request) -> Response:
        who = await caller(request, api.store)
        limit = _limit(request)
        since = request.query_params.get("since")
        try:
            positions = changefeed.decode_cursor(since) if since is not None else None
            body = await run_in_threadpool(_feed, api, who.tenant_id, positions, limit)
        except changefeed.CursorError as exc:
            raise _start_over(exc) from exc
        return JSONResponse(body)

    return [Route("/changes", feed, methods=["GET"])]


def _limit(request: Request) -> int:
    text = request.query_params.get("limit")
    if text is None:
        return DEFAULT_LIMIT
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise invalid(f"'limit' must be a whole number from 1 up to {MAX_LIMIT}", field="limit")
    return int(text)


def _feed(api: Api, tenant_id: int, positions: changefeed.Positions | None, limit: int) -> dict[str, Any]:
    with api.store.read() as session:  # one snapshot: counters and change rows agree
        page = changefeed.page(session, tenant_id, positions, limit)
    return {"changes": page.changes, "next": page.next, "more": page.more}


def _start_over(error: changefeed.CursorError) -> Problem:
    detail = f"{error}; start over: ask without 'since' and re-read the bookings you track"
    if isinstance(error, changefeed.CursorExpired):
        return Problem(410, "cursor-expired", "Cursor expired", detail)
    return Problem(400, "invalid-cursor", "Invalid cursor", detail)
