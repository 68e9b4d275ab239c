"""Bookings: create (idempotent, 409 when busy), read, reschedule, cancel.

Each change queues the customer's confirmation (with the iCalendar attachment) in its own
transaction, and a blind copy to the calendar owner when the calendar's ``bcc_provider`` is on;
an idempotent replay queues nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from bridge import bookings
from bridge.notify.booking_changes import confirm_booking_change
from bridge.store import bookings as booking_store
from bridge.store import calendars, changes
from bridge.store.models import Booking, Calendar, User
from bridge.web.api.auth import caller
from bridge.web.api.context import Api, Keys, booking_json, iso
from bridge.web.api.inputs import field, instant, invalid, json_body, window
from bridge.web.api.problems import Problem, not_found


def routes(api: Api) -> list[Route]:
    keys = Keys(api.settings)

    async def create(request: Request) -> Response:
        who = await caller(request, api.store)
        key = request.headers.get("idempotency-key", "").strip()
        if not key or len(key) > 255:
            raise invalid("the Idempotency-Key header is required (1 to 255 characters)", field="Idempotency-Key")
        data = await json_body(request, api.body_limit)
        calendar_id = field(data, "calendar", int)
        start, end = instant(data, "start"), instant(data, "end")
        customer = field(data, "customer", dict)
        wish = bookings.BookingRequest(
            start=start, end=end, customer_name=field(customer, "name", str),
            customer_email=field(customer, "email", str),
            customer_language=field(customer, "language", str, required=False, default="de"),
            notes=field(data, "notes", str, required=False, default=""))
        try:
            wish.validate()
        except ValueError as exc:
            raise invalid(str(exc)) from exc
        body, created = await run_in_threadpool(_create, api, keys, who.tenant_id, calendar_id, wish, key)
        headers = {"Location": f"/api/v1/bookings/{body['id']}"}
        if not created:
            headers["Idempotent-Replayed"] = "true"
        return JSONResponse(body, status_code=201 if created else 200, headers=headers)

    async def read(request: Request) -> Response:
        who = await caller(request, api.store)
        return JSONResponse(await run_in_threadpool(_read, api, who.tenant_id, request.path_params["booking_id"]))

    async def reschedule(request: Request) -> Response:
        who = await caller(request, api.store)
        data = await json_body(request, api.body_limit)
        start, end = window(data, api.settings.max_query_window_days)
        return JSONResponse(await run_in_threadpool(
            _reschedule, api, keys, who.tenant_id, request.path_params["booking_id"], start, end))

    async def cancel(request: Request) -> Response:
        who = await caller(request, api.store)
        return JSONResponse(await run_in_threadpool(_cancel, api, keys, who.tenant_id,
                                                    request.path_params["booking_id"]))

    return [
        Route("/bookings", create, methods=["POST"]),
        Route("/bookings/{booking_id}", read, methods=["GET"]),
        Route("/bookings/{booking_id}", reschedule, methods=["PATCH"]),
        Route("/bookings/{booking_id}", cancel, methods=["DELETE"]),
    ]


def _locked_calendar(api: Api, session: Session, tenant_id: int, calendar_id: int) -> tuple[Calendar, User]:
    calendar, owner = api.calendar(session, tenant_id, calendar_id)
    calendars.lock_for_write(session, [(owner.login, calendar.slug)])
    return calendar, owner


def _busy_problem(exc: bookings.SlotBusy) -> Problem:
    return Problem(409, "slot-busy", "The slot is not free", "the requested time overlaps busy time",
                   conflicts=[{"start": iso(p.start), "end": iso(p.end), "type": p.busy} for p in exc.periods])


def _confirm(api: Api, keys: Keys, session: Session, booking: Booking, calendar: Calendar, owner: User, kind: str,
             now: datetime, previous_start: datetime | None = None) -> None:
    """Queue the customer's confirmation of ``kind`` in the change's transaction (none without mail settings)."""
    if not api.settings.mail_enabled:
        return
    confirm_booking_change(session, api.settings, keys.get(), booking, calendar, owner, kind,
                           uid=bookings.event_uid(booking), now=now, previous_start=previous_start,
                           bcc_provider=calendar.bcc_provider)


def _create(api: Api, keys: Keys, tenant_id: int, calendar_id: int, wish: bookings.BookingRequest,
            key: str) -> tuple[dict[str, Any], bool]:
    now = datetime.now(UTC)
    with api.store.write() as session:
        calendar, owner = _locked_calendar(api, session, tenant_id, calendar_id)
        try:
            booking, created = bookings.create(session, calendar, wish, key, now)
        except bookings.SlotBusy as exc:
            raise _busy_problem(exc) from exc
        except bookings.IdempotencyKeyReused as exc:
            raise Problem(422, "idempotency-key-reused", "Idempotency key reused",
                          "this key was used for a different request") from exc
        if created:
            _confirm(api, keys, session, booking, calendar, owner, "booking_confirmed", now)
        changes.prune_now_and_then(session, calendar, api.settings.sync_token_max_age_days, now)
        return booking_json(booking, owner, calendar), created


def _booking(api: Api, session: Session, tenant_id: int, public_id: str,
             lock: bool) -> tuple[Booking, Calendar, User]:
    booking = booking_store.by_public_id(session, tenant_id, public_id)
    if booking is None:
        raise not_found("booking")
    kept = calendars.calendar_in_tenant(session, tenant_id, booking.calendar_id, with_removed=True)
    if kept is not None and kept[0].removed_at is not None:  # its calendar was removed, and it was cancelled then
        return booking, *kept
    if lock:
        calendar, owner = _locked_calendar(api, session, tenant_id, booking.calendar_id)
    else:
        calendar, owner = api.calendar(session, tenant_id, booking.calendar_id)
    return booking, calendar, owner


def _read(api: Api, tenant_id: int, public_id: str) -> dict[str, Any]:
    with api.store.read() as session:
        booking, calendar, owner = _booking(api, session, tenant_id, public_id, lock=False)
        return booking_json(booking, owner, calendar)


def _reschedule(api: Api, keys: Keys, tenant_id: int, public_id: str, start: datetime, end: datetime) -> dict[str, Any]:
    now = datetime.now(UTC)
    with api.store.write() as session:
        booking, calendar, owner = _booking(api, session, tenant_id, public_id, lock=True)
        previous = booking.start, booking.end
        try:
            bookings.reschedule(session, calendar, booking, start, end, now)
        except bookings.SlotBusy as exc:
            raise _busy_problem(exc) from exc
        except ValueError as exc:
            raise Problem(409, "booking-cancelled", "Booking cancelled", str(exc)) from exc
        if (booking.start, booking.end) != previous:
            _confirm(api, keys, session, booking, calendar, owner, "booking_rescheduled", now, previous[0])
        changes.prune_now_and_then(session, calendar, api.settings.sync_token_max_age_days, now)
        return booking_json(booking, owner, calendar)


def _cancel(api: Api, keys: Keys, tenant_id: int, public_id: str) -> dict[str, Any]:
    now = datetime.now(UTC)
    with api.store.write() as session:
        booking, calendar, owner = _booking(api, session, tenant_id, public_id, lock=True)
        if booking.status == "confirmed":  # cancelling twice is harmless and mails once
            bookings.cancel(session, calendar, booking, now)
            _confirm(api, keys, session, booking, calendar, owner, "booking_cancelled", now)
        return booking_json(booking, owner, calendar)
