"""Radicale ``Storage`` over bridge.store.

``acquire_lock`` opens one database transaction per request (a write one for
"w"), held in a thread-local of this storage object: Radicale serves each
request on one thread. No file locks, so several processes can share one
PostgreSQL database.
"""

from __future__ import annotations

import threading
import zoneinfo
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager as ContextManager
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from radicale import config as radicale_config
from radicale import item as radicale_item
from radicale import storage as radicale_storage
from radicale import types
from sqlalchemy.orm import Session

from bridge.ical.zones import parse_calendar
from bridge.settings import Settings
from bridge.storage_plugin.collection import SqlCollection
from bridge.storage_plugin.paths import split
from bridge.store import calendars, changes, users, writers
from bridge.store import items as item_store
from bridge.store.db import Store
from bridge.store.errors import CalendarLimitReached, CalendarProtected, ItemRefused, StoreError
from bridge.store.models import Calendar, User

T = TypeVar("T")


class SqlStorage(radicale_storage.BaseStorage):
    _is_collision_free = True
    _supports_unicode = True
    _supports_trailing_whitespace = True
    _supports_problematic_chars = True

    def __init__(self, store: Store, settings: Settings, configuration: radicale_config.Configuration) -> None:
        super().__init__(configuration)
        self._store = store
        self._settings = settings
        self._local = threading.local()

    # -- transactions -------------------------------------------------------------------

    def session(self) -> Session:
        """The request's transaction; writes outside ``acquire_lock`` are a bug."""
        session: Session | None = getattr(self._local, "session", None)
        if session is None:
            raise RuntimeError("storage written outside acquire_lock")
        return session

    def read(self, query: Callable[[Session], T]) -> T:
        """Run ``query`` in the request's transaction, or in a short one of its own: Radicale
        renders some answers (e.g. a calendar's getcontentlength) after releasing its lock."""
        session: Session | None = getattr(self._local, "session", None)
        if session is not None:
            return query(session)
        with self._store.read() as own:
            return query(own)

    @contextmanager
    def acquire_lock(self, mode: str, user: str = "", *args: Any, **kwargs: Any) -> Iterator[None]:
        if getattr(self._local, "session", None) is not None:  # nested: the outer transaction covers it
            yield
            return
        transaction = self._store.write() if mode == "w" else self._store.read()
        with transaction as session:
            if mode == "w":
                self._lock_calendars(session, kwargs.get("path"), kwargs.get("to_path"))
            self._local.session = session
            self._local.user = user
            self._local.memo = {}
            try:
                yield
            finally:
                self._local.session = None
                self._local.user = ""
                self._local.memo = {}

    def remove_client_calendar(self, session: Session, calendar: Calendar) -> None:
        """A CalDAV DELETE of a calendar the client made (it holds no bookings or connections): as
        bridge.removal ends one, each item's deletion recorded and the calendar kept, removed, for the
        change feed until its changes expire; deleting the row took the deletions out of the feed, and
        the booking engine kept every event of it as if it still were there."""
        now = datetime.now(UTC)
        item_store.empty_as_owners(session, calendar)
        calendars.mark_removed(calendar, now)
        kept = timedelta(days=self._settings.sync_token_max_age_days)
        calendars.purge_removed(session, calendar.tenant_id, now - kept)
        self.forget_calendar(calendar)

    def prune_now_and_then(self, session: Session, calendar: Calendar) -> None:
        changes.prune_now_and_then(session, calendar, self._settings.sync_token_max_age_days, datetime.now(UTC))

    @staticmethod
    def _lock_calendars(session: Session, *paths: str | None) -> None:
        """Writers of one calendar queue on its row from the start, so check-then-write is race-free."""
        calendars.lock_for_write(session, [(parts[0], parts[1]) for parts in map(split, filter(None, paths))
                                           if len(parts) >= 2])

    # -- discovery ----------------------------------------------------------------------

    def discover(
        self,
        path: str,
        depth: str = "0",
        child_context_manager: Callable[[str, str | None], ContextManager[None]] | None = None,
        user_groups: set[str] | None = None,
    ) -> Iterable[types.CollectionOrItem]:
        session = self.session()
        parts = split(path)
        if not parts:
            yield SqlCollection(self, "")
            if depth != "0":
                for principal in self._visible_principals(session):
                    yield SqlCollection(self, principal.login, principal=principal)
            return
        owner = self._user(session, parts[0])
        if owner is None:
            return
        if len(parts) == 1:
            yield SqlCollection(self, owner.login, principal=owner)
            if depth != "0":
                for calendar in calendars.calendars_of_owner(session, owner.id):
                    yield SqlCollection(self, f"{owner.login}/{calendar.slug}", owner, calendar)
            return
        calendar = self._calendar(session, owner, parts[1])
        if calendar is None or len(parts) > 3:
            return
        collection = SqlCollection(self, f"{owner.login}/{calendar.slug}", owner, calendar)
        if len(parts) == 3:
            row = item_store.by_href(session, calendar.id, parts[2])
            if row is not None:
                yield collection.to_radicale(row)
            return
        yield collection
        if depth != "0":
            yield from collection.get_all()

    def _user(self, session: Session, login: str) -> User | None:
        """The user of a login, looked up once per request (Radicale discovers a path several times)."""
        key = ("user", login)
        if key not in self._local.memo:
            self._local.memo[key] = users.user_by_login(session, login)
        user: User | None = self._local.memo[key]
        return user

    def _calendar(self, session: Session, owner: User, slug: str) -> Calendar | None:
        key = ("calendar", owner.id, slug)
        if key not in self._local.memo:
            self._local.memo[key] = calendars.calendar_of(session, owner.id, slug)
        calendar: Calendar | None = self._local.memo[key]
        return calendar

    def forget_calendar(self, calendar: Calendar) -> None:
        """Drop a created or deleted calendar from the request's lookups."""
        self._local.memo.pop(("calendar", calendar.owner_id, calendar.slug), None)

    def _visible_principals(self, session: Session) -> list[User]:
        """The principals listed under the root: the tenant's for an admin, else only one's own."""
        viewer = self._user(session, getattr(self._local, "user", "") or "")
        if viewer is None:
            return []
        if viewer.role in ("admin", "service"):
            return users.users_of_tenant(session, viewer.tenant_id)
        return [viewer]

    # -- collections --------------------------------------------------------------------

    def create_collection(
        self,
        href: str,
        items: Iterable[radicale_item.Item] | None = None,
        props: Mapping[str, str] | None = None,
    ) -> tuple[radicale_storage.BaseCollection, dict[str, radicale_item.Item], list[str]]:
        session = self.session()
        parts = split(href)
        if not parts or len(parts) > 2:
            raise ValueError("collections exist only as /<login>/ and /<login>/<calendar>/")
        owner = self._user(session, parts[0])
        if owner is None:
            raise ValueError(f"no principal {parts[0]!r}")
        if len(parts) == 1:
            if props is not None or items is not None:
                raise ValueError("a principal is not a calendar: create calendars under /<login>/<name>/")
            return SqlCollection(self, owner.login, principal=owner), {}, []
        props = dict(props) if props is not None else None
        if props is not None and props.get("tag") not in ("VCALENDAR", "VADDRESSBOOK"):
            raise ValueError("only calendars and address books can be created under a principal")
        calendar = self._calendar(session, owner, parts[1])
        replaced: dict[str, radicale_item.Item] = {}
        try:
            if calendar is None:
                self._check_limit(session, owner)
                calendar = calendars.create_calendar(
                    session, owner, parts[1], timezone=self._timezone_of(props), props=props, creator="client"
                )
                self.forget_calendar(calendar)
            elif items is None and props is None:
                return SqlCollection(self, href, owner, calendar), {}, []
            else:
                if calendars.is_protected(session, calendar):  # the /dav gate refuses first; this is the backstop
                    raise CalendarProtected(f"{owner.login}/{calendar.slug}")
                existing = SqlCollection(self, f"{owner.login}/{calendar.slug}", owner, calendar)
                replaced = {item.href: item for item in existing.get_all() if item.href}
                item_store.remove_all(session, calendar, writers.CLIENT)
                calendars.set_props(session, calendar, props or {"tag": calendar.tag})
        except ItemRefused:
            raise  # the origin rule: answered 403 by bridge.web.dav_refusal
        except StoreError as exc:
            raise ValueError(str(exc)) from exc
        collection = SqlCollection(self, f"{owner.login}/{calendar.slug}", owner, calendar)
        new_hrefs = collection.upload_all(items or [])
        return collection, replaced, new_hrefs

    def _check_limit(self, session: Session, owner: User) -> None:
        """A client may make only ``mkcalendar_limit`` calendars per user (the /dav gate answers 403 first)."""
        if calendars.client_made_count(session, owner.id, lock=True) >= self._settings.mkcalendar_limit:
            raise CalendarLimitReached(self._settings.mkcalendar_limit)

    def _timezone_of(self, props: Mapping[str, str] | None) -> str:
        """The IANA zone named by a MKCALENDAR's calendar-timezone, or the configured default."""
        text = (props or {}).get("C:calendar-timezone")
        if text:
            try:
                for component in parse_calendar(text).walk("VTIMEZONE"):
                    name = str(component.get("TZID", ""))
                    zoneinfo.ZoneInfo(name)
                    return name
            except (ValueError, zoneinfo.ZoneInfoNotFoundError):
                pass
        return self._settings.default_timezone

    def move(self, item: radicale_item.Item, to_collection: radicale_storage.BaseCollection, to_href: str) -> None:
        source = item.collection
        if not isinstance(source, SqlCollection) or not isinstance(to_collection, SqlCollection):
            raise ValueError("move between foreign collections")
        source_calendar, target_calendar = source.calendar_row, to_collection.calendar_row
        if source_calendar is None or target_calendar is None or item.href is None:
            raise ValueError("only items of calendars can be moved")
        session = self.session()
        row = item_store.by_href(session, source_calendar.id, item.href)
        if row is None:
            raise radicale_storage.ComponentNotFoundError(item.href)
        try:
            item_store.move(session, row, source_calendar, target_calendar, to_href, writers.CLIENT)
        except ItemRefused:
            raise  # the origin rule: answered 403 by bridge.web.dav_refusal
        except StoreError as exc:
            raise ValueError(str(exc)) from exc

    def verify(self) -> bool:
        return True

