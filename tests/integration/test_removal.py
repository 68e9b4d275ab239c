"""bridge.removal: the one removal of a calendar or user that the CLI, the API and the admin page share.

It asks first when bookings or connections are at stake, cancels each booking as a booking
cancellation does, keeps the removed calendar (hidden) for the change feed, lets a new calendar or
user take the name at once, and deletes the kept rows once their changes have expired.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from bridge import bookings, changefeed, removal
from bridge.secrets import Secrets, new_key
from bridge.store import calendars, connections, users
from bridge.store.db import Store
from bridge.store.models import Booking, Calendar, Connection, User

T0 = datetime(2030, 3, 4, 9, tzinfo=UTC)
KEPT_DAYS = 30


def _setup(store: Store) -> tuple[int, int]:
    """Tenant Praxis: weber's calendar praxis with one booking and one connection; (tenant id, calendar id)."""
    with store.write() as session:
        tenant = users.create_tenant(session, "Praxis")
        weber = users.create_user(session, tenant, login="weber", email="weber@example.org", password_hash="!")
        calendar = calendars.create_calendar(session, weber, "praxis", timezone="Europe/Berlin")
        bookings.create(session, calendar, bookings.BookingRequest(
            T0, T0 + timedelta(minutes=30), "Erika Mustermann", "erika@example.com"), "k1", T0)
        connections.create_connection(session, calendar, "caldav")
        return tenant.id, calendar.id


def _count(store: Store, model: type[object]) -> int:
    with store.read() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


KEYS = removal.ChannelKeys(Secrets([new_key()]))


def _remove_calendar(store: Store, calendar_id: int, now: datetime, *, confirmed: bool) -> removal.Consequences:
    with store.write() as session:
        calendar = session.get(Calendar, calendar_id)
        assert calendar is not None
        owner = session.get(User, calendar.owner_id)
        assert owner is not None
        return removal.remove_calendar(session, calendar, owner, now, confirmed=confirmed,
                                       changes_kept_days=KEPT_DAYS, keys=KEYS).consequences


def test_without_confirmation_nothing_changes(store: Store) -> None:
    _, calendar_id = _setup(store)
    with pytest.raises(removal.ConfirmationNeeded) as asked:
        _remove_calendar(store, calendar_id, T0, confirmed=False)
    assert asked.value.consequences == removal.Consequences(calendars=1, bookings=1, connections=1)
    assert "cancels 1 booking(s)" in str(asked.value) and "Erika" not in str(asked.value)
    with store.read() as session:
        assert session.scalars(select(Booking.status)).all() == ["confirmed"]
        assert calendars.calendar_by_path(session, "weber", "praxis") is not None
    assert _count(store, Connection) == 1


def test_the_removed_calendar_is_kept_for_the_feed_until_its_changes_expire(store: Store) -> None:
    tenant_id, calendar_id = _setup(store)
    assert _remove_calendar(store, calendar_id, T0, confirmed=True).bookings == 1
    assert _count(store, Connection) == 0
    with store.write() as session:
        assert calendars.calendar_by_path(session, "weber", "praxis") is None
        weber = users.user_by_login(session, "weber")
        assert weber is not None
        again = calendars.create_calendar(session, weber, "praxis", timezone="UTC")  # the name is free at once
        assert again.id != calendar_id
        ended = [c for c in changefeed.page(session, tenant_id, None).changes if c["deleted"]]
        # Its changes stay readable; the old path moved aside for the new calendar of the same name.
        assert [(c["calendar"], c["href"].startswith(f"/dav/weber/-removed-{calendar_id}/"), c["booking"]["status"])
                for c in ended] == [(calendar_id, True, "cancelled")]

    _remove_calendar(store, again.id, T0 + timedelta(days=KEPT_DAYS + 1), confirmed=True)
    with store.read() as session:
        assert session.get(Calendar, calendar_id) is None  # purged: its changes had expired
        assert session.get(Calendar, again.id) is not None  # kept: just removed
        assert session.scalar(select(func.count()).select_from(Booking)) == 0


def test_a_removed_user_signs_in_nowhere_and_gives_the_login_up(store: Store) -> None:
    tenant_id, _ = _setup(store)
    with store.write() as session:
        weber = users.user_by_login(session, "weber")
        assert weber is not None
        done = removal.remove_user(session, weber, T0, confirmed=True, changes_kept_days=KEPT_DAYS, keys=KEYS)
        assert done.consequences == removal.Consequences(calendars=1, bookings=1, connections=1)
    with store.write() as session:
        assert users.user_by_login(session, "weber") is None
        assert [u.login for u in users.users_of_tenant(session, tenant_id)] == []
        kept = session.scalars(select(User)).one()
        assert (kept.email, kept.password_hash, kept.role) == ("", "!", "removed")
        users.create_user(session, users.tenant_by_name(session, "Praxis"), login="weber",
                          email="new@example.org", password_hash="!")
        assert sorted(u.login for u in session.scalars(select(User))) == [f"-removed-{kept.id}", "weber"]
        assert len([c for c in changefeed.page(session, tenant_id, None).changes if c["deleted"]]) == 1
