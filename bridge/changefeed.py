"""The booking engine's change feed: pages of a tenant's item changes after a cursor.

Each change is one row of the change log (DESIGN.md: numbered per calendar in commit order; a
reader at number N has seen every change up to N): the calendar, the item's path, whether it was
deleted, and for a booking's event the booking's id and current status. Changes of one calendar
come in commit order; calendars are served one after another, by id.

The cursor is opaque to clients. Inside it is, per calendar, the calendar's sync epoch and the
number of the last change served (calendars with none yet are left out). A calendar missing from
the cursor, or recreated under the same id since (another epoch), is read from its first change.
A removed calendar (bridge.removal) is served until its changes expire, so the cancellations of
the bookings its removal ended reach every reader.
Without a cursor the feed starts at the oldest change still kept. A cursor behind the kept history
(changes are forgotten after ``sync_token_max_age_days``) raises :class:`CursorExpired`, a
malformed one or one ahead of a calendar :class:`InvalidCursor`; or, with ``restart=True``, such a
calendar is read again from its oldest kept change and the page says ``restarted``.

Pure store reads: the functions take the caller's session (one snapshot, so counters and change
rows agree) and never write. ``GET /api/v1/changes`` (bridge/web/api/change_routes.py) and the
webhook sender (bridge/webhooks.py) serve the same pages.
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from bridge.store import calendars, changes
from bridge.store.models import Booking, Calendar, Change, User

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
CURSOR_VERSION = 1
MAX_CURSOR_LENGTH = 64 * 1024
MAX_CURSOR_BYTES = 1024 * 1024  # unpacked: a small cursor must not unpack into a large one

Positions = dict[int, tuple[str, int]]  # calendar id -> (sync epoch, last change number served)


class CursorError(Exception):
    """The feed cannot go on from this cursor; the reader starts over (and re-reads what it tracks)."""


class InvalidCursor(CursorError):
    """Not a cursor of this feed, or one ahead of a calendar."""


class CursorExpired(CursorError):
    """Changes after the cursor are no longer kept."""


@dataclass(frozen=True)
class Page:
    """Up to ``limit`` changes, the cursor after them, whether more are waiting, and whether some
    calendar was read again from its oldest kept change (only with ``restart=True``)."""

    changes: list[dict[str, Any]]
    next: str
    more: bool
    restarted: bool = False


# -- the cursor -----------------------------------------------------------------------------------

def encode_cursor(positions: Positions) -> str:
    data = {"v": CURSOR_VERSION, "p": [[calendar_id, epoch, number]
                                       for calendar_id, (epoch, number) in sorted(positions.items())]}
    packed = zlib.compress(json.dumps(data, separators=(",", ":")).encode(), 9)
    return base64.urlsafe_b64encode(packed).decode().rstrip("=")


def decode_cursor(text: str) -> Positions:
    """The positions in a cursor; :class:`InvalidCursor` for anything that is not a cursor of this feed."""
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
        raise InvalidCursor("this is not a cursor of this feed") from exc


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def cursor_at_end(session: Session, tenant_id: int) -> str:
    """The cursor after every change the tenant's calendars have now: a reader starting here gets
    only what comes next."""
    return encode_cursor({calendar.id: (calendar.sync_epoch, calendar.change_counter)
                          for calendar, _ in calendars.calendars_with_owner(session, tenant_id, with_removed=True)
                          if calendar.change_counter > 0})


# -- the feed -------------------------------------------------------------------------------------

def page(session: Session, tenant_id: int, positions: Positions | None, limit: int = DEFAULT_LIMIT, *,
         restart: bool = False) -> Page:
    """The next page after ``positions`` (None: from the oldest kept change). Without ``restart`` an
    expired or impossible position raises; with it, that calendar is read from its oldest kept change."""
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be from 1 up to {MAX_LIMIT}")
    tenant_calendars = sorted(calendars.calendars_with_owner(session, tenant_id, with_removed=True),
                              key=lambda pair: pair[0].id)
    starts: dict[int, int] = {}
    restarted = False
    for calendar, _ in tenant_calendars:
        try:
            starts[calendar.id] = start(calendar, positions)
        except CursorError:
            if not restart:
                raise
            starts[calendar.id] = calendar.changes_pruned_through
            restarted = True
    served: list[dict[str, Any]] = []
    after = dict(starts)
    for calendar, owner in tenant_calendars:
        room = limit - len(served)
        if room <= 0 or calendar.change_counter <= starts[calendar.id]:
            continue
        rows = changes.with_bookings(session, calendar.id, starts[calendar.id], calendar.change_counter, room)
        served.extend(change_json(change, booking, calendar, owner) for change, booking in rows)
        # A short page reached the counter (numbers without a row are property changes).
        after[calendar.id] = rows[-1][0].number if len(rows) == room else calendar.change_counter
    more = any(calendar.change_counter > after[calendar.id] for calendar, _ in tenant_calendars)
    cursor = encode_cursor({calendar.id: (calendar.sync_epoch, after[calendar.id])
                            for calendar, _ in tenant_calendars if after[calendar.id] > 0})
    return Page(changes=served, next=cursor, more=more, restarted=restarted)


def start(calendar: Calendar, positions: Positions | None) -> int:
    """The number after which this calendar's changes are new to the reader of ``positions``."""
    if positions is None:
        return calendar.changes_pruned_through
    epoch, number = positions.get(calendar.id, (calendar.sync_epoch, 0))
    if epoch != calendar.sync_epoch:  # another calendar under a reused id: all of it is new
        number = 0
    if number > calendar.change_counter:
        raise InvalidCursor("the cursor is ahead of the calendar")
    if number < calendar.changes_pruned_through:
        raise CursorExpired("changes since this cursor are no longer kept")
    return number


def change_json(change: Change, booking: Booking | None, calendar: Calendar, owner: User) -> dict[str, Any]:
    return {"calendar": calendar.id, "number": change.number,
            "href": f"/dav/{owner.login}/{calendar.slug}/{change.href}", "deleted": change.deleted,
            "at": _iso(change.created_at),
            "booking": {"id": booking.public_id, "status": booking.status} if booking is not None else None}


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
