"""The change log numbers writes per calendar and answers sync tokens, including expired ones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from radicale import item as radicale_item

from bridge.store import calendars, changes, items, users, writers
from bridge.store.db import Store
from bridge.store.errors import EtagMismatch, InvalidSyncToken, ItemExists
from bridge.store.index import describe
from bridge.store.models import Calendar
from tests.ics import event

T0 = datetime(2026, 12, 1, 9, tzinfo=UTC)


def _new(uid: str, href: str | None = None, summary: str = "x") -> items.NewItem:
    text = event(uid, T0, T0 + timedelta(hours=1), summary)
    item = radicale_item.Item(collection_path="u/c", text=text)
    return items.NewItem(href=href or f"{uid}.ics", uid=uid, etag=item.etag, text=text,
                         facts=describe(text, item.time_range, "UTC").facts)


@pytest.fixture
def calendar_id(store: Store) -> int:
    with store.write() as session:
        tenant = users.create_tenant(session, "T")
        owner = users.create_user(session, tenant, login="olga", email="o@example.org", password_hash="x")
        return calendars.create_calendar(session, owner, "cal", timezone="UTC").id


def _calendar(session, calendar_id: int) -> Calendar:
    calendar = session.get(Calendar, calendar_id)
    assert calendar is not None
    return calendar


def test_each_write_and_delete_gets_the_next_number(store: Store, calendar_id: int) -> None:
    with store.write() as session:
        calendar = _calendar(session, calendar_id)
        start = changes.token(calendar)
        items.write(session, calendar, _new("a"), writers.CLIENT)
        items.write(session, calendar, _new("b"), writers.CLIENT)
        items.write(session, calendar, _new("a", summary="changed"), writers.CLIENT)
        items.delete(session, calendar, "b.ics", writers.CLIENT)
        assert calendar.change_counter == 4
    with store.read() as session:
        calendar = _calendar(session, calendar_id)
        after = changes.parse_token(calendar, start)
        assert changes.hrefs_changed(session, calendar, after, calendar.change_counter) == ["a.ics", "b.ics"]
        assert changes.hrefs_changed(session, calendar, 3, 4) == ["b.ics"]


def test_uid_conflict_and_etag_mismatch_change_nothing(store: Store, calendar_id: int) -> None:
    with store.write() as session:
        items.write(session, _calendar(session, calendar_id), _new("a"), writers.CLIENT)
    with pytest.raises(ItemExists), store.write() as session:
        items.write(session, _calendar(session, calendar_id), _new("a", href="other.ics"), writers.CLIENT)
    with pytest.raises(EtagMismatch), store.write() as session:
        items.write(session, _calendar(session, calendar_id), _new("a", summary="y"), writers.CLIENT,
                    if_match='"stale"')
    with store.read() as session:
        assert _calendar(session, calendar_id).change_counter == 1


def test_tokens_of_other_calendars_future_or_pruned_are_invalid(store: Store, calendar_id: int) -> None:
    with store.write() as session:
        calendar = _calendar(session, calendar_id)
        items.write(session, calendar, _new("a"), writers.CLIENT)
        old = changes.token(calendar)
        items.write(session, calendar, _new("b"), writers.CLIENT)
        items.write(session, calendar, _new("c"), writers.CLIENT)
    with store.write() as session:
        calendar = _calendar(session, calendar_id)
        for bad in ("garbage", changes.token(calendar).replace(calendar.sync_epoch, "000000000000"),
                    changes.token(calendar, calendar.change_counter + 1)):
            with pytest.raises(InvalidSyncToken):
                changes.parse_token(calendar, bad)
        changes.prune(session, calendar, older_than=datetime.now(UTC) + timedelta(seconds=1))
        with pytest.raises(InvalidSyncToken, match="expired"):
            changes.parse_token(calendar, old)
        assert changes.parse_token(calendar, changes.token(calendar)) == 3
