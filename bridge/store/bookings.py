"""Bookings: the booking engine's appointments, each pointing at its item."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from bridge.store.models import Booking


def by_public_id(session: Session, tenant_id: int, public_id: str) -> Booking | None:
    return session.scalar(select(Booking).where(Booking.tenant_id == tenant_id, Booking.public_id == public_id))


def by_idempotency_key(session: Session, tenant_id: int, key: str) -> Booking | None:
    return session.scalar(select(Booking).where(Booking.tenant_id == tenant_id, Booking.idempotency_key == key))


def of_calendar(session: Session, calendar_id: int, limit: int = 500) -> list[Booking]:
    return list(session.scalars(select(Booking).where(Booking.calendar_id == calendar_id)
                                .order_by(Booking.start).limit(limit)))


def add(session: Session, booking: Booking) -> Booking:
    session.add(booking)
    session.flush()
    return booking


def by_item(session: Session, calendar_id: int, item_href: str) -> Booking | None:
    """The booking whose event is the item at ``item_href`` (the sync engine knows items, not bookings)."""
    return session.scalar(select(Booking).where(Booking.calendar_id == calendar_id,
                                                Booking.item_href == item_href))
