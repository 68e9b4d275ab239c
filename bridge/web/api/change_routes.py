"""GET /changes: every item change of the tenant's calendars since a cursor, for the booking engine.

Each change is one row of the change log (DESIGN.md: numbered per calendar in commit order; a
reader at number N has seen every change up to N): the calendar, the item's path, whether it was
deleted, and for a booking's event the booking's id and current status. Changes of one calendar
come in commit order; calendars are served one after another, by id.

The cursor is opaque to clients. Inside it is, per calendar, the calendar's sync epoch and the
number of the last change served (calendars with none yet are left out). A calendar missing from
the cursor, or recreated under the same id since (another epoch), is read from its first change.
Without a cursor the feed starts at the oldest change still kept. A cursor behind the kept history
(changes are forgotten after ``sync_token_max_age_days``) is answered 410, a malformed one 400:
the client starts over without ``since`` (and re-reads the bookings it tracks).
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge.store import calendars, changes
from bridge.store.models import Booking, Calendar, Change, User
from bridge.web.api.auth import caller
from bridge.web.api.context import Api, iso
from bridge.web.api.inputs import invalid
from bridge.web.api.problems import Problem

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
CURSOR_VERSION = 1
MAX_CURSOR_LENGTH = 64 * 1024
MAX_CURSOR_BYTES = 1024 * 1024  # unpacked: a small cursor must not unpack into a large one

Positions = dict[int, tuple[str, int]]  # calendar id -> (sync epoch, last change number served)


def routes(api: Api) -> list[Route]:
    async def feed(request: Request) -> Response:
        who = await caller(request, api.store)
        limit = _limit(request)
        since = request.query_params.get("since")
        positions = decode_cursor(since) if since is not None else None
        return JSONResponse(await run_in_threadpool(_feed, api, who.tenant_id, positions, limit))

    return [Route("/changes", feed, methods=["GET"])]


# -- the cursor -----------------------------------------------------------------------------------

def encode_cursor(positions: Positions) -> str:
    data = {"v": CURSOR_VERSION, "p": [[calendar_id, epoch, number]
                                       for calendar_id, (epoch, number) in sorted(positions.items())]}
    packed = zlib.compress(json.dumps(data, separators=(",", ":")).encode(), 9)
    return base64.urlsafe_b64encode(packed).decode().rstrip("=")


def decode_cursor(text: str) -> Positions:
    """The positions in a cursor; a 400 problem for anything that is not a cursor of this server."""
    try:
        if not text or len(text) > MAX_CURSOR_LENGTH:
            raise ValueError("empty or too long")
        unpack = zlib.decompressobj()
        raw = unpack.decompress(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)), MAX_CURSOR_BYTES)
        if unpack.unconsumed_tail or not unpack.eof:
            raise ValueError("too large or cut short")
        data = json.loads(raw)
        if not isinstance(data, dict) or data.get("v") != CURSOR_VERSION or not isinstance(data.get("p"), list):
            raise ValueError("not a cursor")
        positions: Positions = {}
        for entry in data["p"]:
            calendar_id, epoch, number = entry
            if not (_whole(calendar_id) and isinstance(epoch, str) and _whole(number)):
                raise ValueError("not a cursor")
            positions[calendar_id] = (epoch, number)
        return positions
    except (ValueError, TypeError, binascii.Error, zlib.error, UnicodeDecodeError) as exc:
        raise _start_over(400, "invalid-cursor", "Invalid cursor", "this is not a cursor of this feed") from exc


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _start_over(status: int, kind: str, title: str, why: str) -> Problem:
    return Problem(status, kind, title,
                   f"{why}; start over: ask without 'since' and re-read the bookings you track")


# -- the feed -------------------------------------------------------------------------------------

def _limit(request: Request) -> int:
    text = request.query_params.get("limit")
    if text is None:
        return DEFAULT_LIMIT
    if not text.isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise invalid(f"'limit' must be a whole number from 1 up to {MAX_LIMIT}", field="limit")
    return int(text)


def _feed(api: Api, tenant_id: int, positions: Positions | None, limit: int) -> dict[str, Any]:
    """One page: up to ``limit`` changes, the cursor after them, and whether more are waiting."""
    with api.store.read() as session:  # one snapshot: counters and change rows agree
        tenant_calendars = sorted(calendars.calendars_with_owner(session, tenant_id), key=lambda pair: pair[0].id)
        starts = {calendar.id: _start(calendar, positions) for calendar, _ in tenant_calendars}
        served: list[dict[str, Any]] = []
        after = dict(starts)
        for calendar, owner in tenant_calendars:
            room = limit - len(served)
            if room <= 0 or calendar.change_counter <= starts[calendar.id]:
                continue
            page = changes.with_bookings(session, calendar.id, starts[calendar.id], calendar.change_counter, room)
            served.extend(_change_json(change, booking, calendar, owner) for change, booking in page)
            # A short page reached the counter (numbers without a row are property changes).
            after[calendar.id] = page[-1][0].number if len(page) == room else calendar.change_counter
        more = any(calendar.change_counter > after[calendar.id] for calendar, _ in tenant_calendars)
        cursor = encode_cursor({calendar.id: (calendar.sync_epoch, after[calendar.id])
                                for calendar, _ in tenant_calendars if after[calendar.id] > 0})
    return {"changes": served, "next": cursor, "more": more}


def _start(calendar: Calendar, positions: Positions | None) -> int:
    """The number after which this calendar's changes are new to the client; 410 if some are forgotten."""
    if positions is None:
        return calendar.changes_pruned_through
    epoch, number = positions.get(calendar.id, (calendar.sync_epoch, 0))
    if epoch != calendar.sync_epoch:  # another calendar under a reused id: all of it is new
        number = 0
    if number > calendar.change_counter:
        raise _start_over(400, "invalid-cursor", "Invalid cursor", "the cursor is ahead of the calendar")
    if number < calendar.changes_pruned_through:
        raise _start_over(410, "cursor-expired", "Cursor expired",
                          "changes since this cursor are no longer kept")
    return number


def _change_json(change: Change, booking: Booking | None, calendar: Calendar, owner: User) -> dict[str, Any]:
    return {"calendar": calendar.id, "number": change.number,
            "href": f"/dav/{owner.login}/{calendar.slug}/{change.href}", "deleted": change.deleted,
            "at": iso(change.created_at),
            "booking": {"id": booking.public_id, "status": booking.status} if booking is not None else None}
