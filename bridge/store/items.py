"""Items: reads by href, UID and time range; writes that record a change in the same transaction.

Every writer (the /dav gate, Radicale's storage plugin, the importer, bookings, the sync engine)
writes through ``write``/``write_checked``, ``delete`` and ``move`` and says who it is
(:class:`~bridge.store.writers.Writer`); those apply the origin rule of :mod:`bridge.store.writers`.
``put_checked`` and ``remove`` are the sync engine's, for items it follows as their owner.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple, cast

from sqlalchemy import Select, bindparam, insert, or_, select, type_coerce, union_all
from sqlalchemy import delete as delete_rows
from sqlalchemy.orm import Session
from sqlalchemy.types import NullType

from bridge.store import changes, writers
from bridge.store.errors import EtagMismatch, ItemExists, NotFound
from bridge.store.index import UNBOUNDED_CLASS, ItemFacts, class_reach
from bridge.store.models import EARLIEST, Calendar, Item, Occurrence, UTCDateTime, utcnow
from bridge.store.writers import Writer

_COPIED = ("tenant_id", "calendar_id", "href", "uid", "etag", "component", "text", "span_start", "span_end",
           "modified_at")
# Classes that exist in practice; rows of a class above the largest finite one are unbounded.
_FINITE_CLASSES = range(0, 23)


@dataclass(frozen=True)
class NewItem:
    """What a writer supplies; the store adds identity, change number and time."""

    href: str
    uid: str
    etag: str
    text: str
    facts: ItemFacts
    origin: str = "client"  # set by ``write`` from its writer; read only by ``put_checked``
    # Instances of a recurring event, as (start, end, busy type), complete up to ``occurrences_until``.
    occurrences: Sequence[tuple[datetime, datetime, str | None]] = ()
    occurrences_until: datetime | None = None


def etag_of(text: str) -> str:
    """The entity tag of an item's text, as Radicale computes it (a quoted SHA-256)."""
    return '"' + hashlib.sha256(text.encode()).hexdigest() + '"'


def by_href(session: Session, calendar_id: int, href: str) -> Item | None:
    return session.scalar(select(Item).where(Item.calendar_id == calendar_id, Item.href == href))


def by_hrefs(session: Session, calendar_id: int, hrefs: Sequence[str]) -> list[Item]:
    found: list[Item] = []
    wanted = list(dict.fromkeys(hrefs))
    for start in range(0, len(wanted), 500):
        chunk = wanted[start:start + 500]
        found.extend(session.scalars(select(Item).where(Item.calendar_id == calendar_id, Item.href.in_(chunk))))
    return found


def all_of(session: Session, calendar_id: int) -> list[Item]:
    return list(session.scalars(select(Item).where(Item.calendar_id == calendar_id).order_by(Item.href)))


def href_of_uid(session: Session, calendar_id: int, uid: str) -> str | None:
    return session.scalar(select(Item.href).where(Item.calendar_id == calendar_id, Item.uid == uid))


def _overlap_statement(with_component: bool) -> Select[tuple[Item]]:
    """The overlap query, built once: one range scan per span class, joined by UNION ALL
    (neither SQLite nor PostgreSQL turns an OR of ranges into range scans reliably)."""
    per_class = []
    for klass in (*_FINITE_CLASSES, UNBOUNDED_CLASS):
        query = select(Item).where(
            Item.calendar_id == bindparam("calendar_id"),
            Item.span_class == klass,
            Item.span_start >= bindparam(f"from_{klass}", type_=UTCDateTime()),
            Item.span_start < bindparam("end", type_=UTCDateTime()),
            # RFC 4791 9.9: a zero-length span matches where it starts inside the window.
            or_(Item.span_end > bindparam("start", type_=UTCDateTime()),
                Item.span_start >= bindparam("start", type_=UTCDateTime())),
        )
        if with_component:
            query = query.where(Item.component == bindparam("component"))
        per_class.append(query)
    return select(Item).from_statement(union_all(*per_class))  # type: ignore[return-value]


_OVERLAP = {flag: _overlap_statement(flag) for flag in (False, True)}


def overlapping(
    session: Session, calendar_id: int, start: datetime, end: datetime, component: str | None = None
) -> list[Item]:
    """Items whose span overlaps [start, end), reading only index ranges near the window.

    For each span class k the rows that can overlap start no earlier than
    ``start - 2**k days``, so every class is one bounded range scan of
    (calendar_id, span_class, span_start) and the cost follows the window, not
    the size of the calendar.
    """
    params: dict[str, object] = {"calendar_id": calendar_id, "start": start, "end": end,
                                 f"from_{UNBOUNDED_CLASS}": EARLIEST}
    params.update({f"from_{klass}": _earliest_start(start, klass) for klass in _FINITE_CLASSES})
    if component:
        params["component"] = component
    return list(session.scalars(_OVERLAP[bool(component)], params))


def _earliest_start(start: datetime, klass: int) -> datetime:
    reach = class_reach(klass)
    return start - reach if start - EARLIEST > reach else EARLIEST


def write(session: Session, calendar: Calendar, new: NewItem, writer: Writer, *,
          if_match: str | None = None) -> tuple[Item, Item | None]:
    """Create or replace the item at ``new.href`` as ``writer``, recording the change: the one
    write path of items (the origin rule of :mod:`bridge.store.writers`, the UID's uniqueness in
    the calendar, the If-Match precondition).

    The stored origin is the writer's (``new.origin`` is not read). Returns the stored row and,
    if one was replaced, a detached copy of its previous state.
    """
    current = by_href(session, calendar.id, new.href)
    if if_match is not None and (current is None or (if_match != "*" and current.etag != if_match)):
        raise EtagMismatch(new.href, if_match, current.etag if current else None)
    writers.check(writer, new.href, current.origin if current is not None else None)
    holder = href_of_uid(session, calendar.id, new.uid)
    if holder is not None and holder != new.href:
        raise ItemExists(new.uid, holder)
    return _store(session, calendar, dataclasses.replace(new, origin=writer.origin), current)


def write_checked(session: Session, calendar: Calendar, new: NewItem, writer: Writer,
                  current: Item | None) -> tuple[Item, Item | None]:
    """``write`` for a caller that has already read ``current`` (the row at ``new.href``) and
    checked the UID and preconditions in this transaction (the /dav gate's PUT); the origin rule
    is still applied here."""
    writers.check(writer, new.href, current.origin if current is not None else None)
    return _store(session, calendar, dataclasses.replace(new, origin=writer.origin), current)


def put_checked(session: Session, calendar: Calendar, new: NewItem, current: Item | None) -> tuple[Item, Item | None]:
    """``write_checked`` as the writer of ``new.origin``: for the sync engine, which applies a remote
    change to an item it does not own as that item's owner (``bridge.sync.apply``)."""
    return write_checked(session, calendar, new, writers.for_origin(new.origin), current)


def _store(session: Session, calendar: Calendar, new: NewItem, current: Item | None) -> tuple[Item, Item | None]:
    facts = new.facts
    values = {
        "uid": new.uid,
        "etag": new.etag,
        "text": new.text,
        "component": facts.component,
        "dtstart": facts.dtstart,
        "dtend": facts.dtend,
        "span_start": facts.span_start,
        "span_end": facts.span_end,
        "span_class": facts.span_class,
        "recurring": facts.recurring,
        "transparency": facts.transparency,
        "klass": facts.klass,
        "status": facts.status,
        "busy": facts.busy,
        "origin": new.origin,
        "occurrences_until": new.occurrences_until,
        "modified_at": utcnow(),
    }
    previous: Item | None = None
    if current is None:
        current = Item(tenant_id=calendar.tenant_id, calendar_id=calendar.id, href=new.href, **values)
        session.add(current)
    else:
        previous = Item(**{column: getattr(current, column) for column in _COPIED})
        for key, value in values.items():
            setattr(current, key, value)
    changes.record(session, calendar, new.href, deleted=False)
    session.flush()
    _store_occurrences(session, current, new, replacing=previous is not None)
    return current, previous


def _store_occurrences(session: Session, item: Item, new: NewItem, replacing: bool = True) -> None:
    if replacing:
        session.execute(delete_rows(Occurrence).where(Occurrence.item_id == item.id))
    if new.occurrences:
        session.execute(insert(Occurrence), [
            {"tenant_id": item.tenant_id, "item_id": item.id, "start": start, "end": end, "busy": busy}
            for start, end, busy in new.occurrences])


def with_occurrence_in(session: Session, item_ids: Sequence[int], start: datetime, end: datetime) -> set[int]:
    """Which of these recurring items have an instance overlapping [start, end)."""
    if not item_ids:
        return set()
    return set(session.scalars(
        select(Occurrence.item_id).distinct()
        .where(Occurrence.item_id.in_(list(item_ids)), Occurrence.start < end,
               or_(Occurrence.end > start, Occurrence.start >= start))))


def delete(session: Session, calendar: Calendar, href: str, writer: Writer) -> None:
    """Delete the item at ``href`` as ``writer`` (the origin rule), recording the change;
    ``NotFound`` if there is none."""
    current = by_href(session, calendar.id, href)
    if current is None:
        raise NotFound("item", href)
    writers.check(writer, href, current.origin)
    remove(session, calendar, href)


def remove(session: Session, calendar: Calendar, href: str) -> None:
    """Delete whatever is at ``href``, without the origin rule: for the sync engine removing an item
    it follows as the item's owner (``bridge.sync.apply``); every other writer uses ``delete``."""
    deleted = session.execute(delete_rows(Item).where(Item.calendar_id == calendar.id, Item.href == href))
    if deleted.rowcount == 0:  # type: ignore[attr-defined]
        raise NotFound("item", href)
    changes.record(session, calendar, href, deleted=True)


def remove_all(session: Session, calendar: Calendar, writer: Writer) -> list[str]:
    """Delete every item of the calendar as ``writer``, recording each deletion; nothing at all if
    one of them is not the writer's to delete (the origin rule)."""
    foreign = session.execute(select(Item.href, Item.origin).where(
        Item.calendar_id == calendar.id, Item.origin != writer.origin).limit(1)).first()
    if foreign is not None:
        writers.check(writer, foreign.href, foreign.origin)
    hrefs = list(session.scalars(select(Item.href).where(Item.calendar_id == calendar.id)))
    session.execute(delete_rows(Item).where(Item.calendar_id == calendar.id))
    for href in hrefs:
        changes.record(session, calendar, href, deleted=True)
    return hrefs


def empty_as_owners(session: Session, calendar: Calendar) -> None:
    """Delete every item of a calendar that is being removed, each as its owner would (so the origin
    rule holds and every deletion is recorded for the change feed): the end of a calendar, whoever
    asked for it (bridge.removal, or a CalDAV client deleting a calendar it made)."""
    for item in all_of(session, calendar.id):
        delete(session, calendar, item.href, writers.for_origin(item.origin))


def move(session: Session, item: Item, source: Calendar, target: Calendar, to_href: str, writer: Writer) -> None:
    """Move ``item`` to ``target`` under ``to_href`` as ``writer``, replacing what is there; the origin
    rule holds for the moved item and for the one it would replace."""
    writers.check(writer, item.href, item.origin)
    if source.id == target.id and item.href == to_href:
        return
    replaced = by_href(session, target.id, to_href)
    if replaced is not None:
        writers.check(writer, to_href, replaced.origin, destination=True)
    holder = href_of_uid(session, target.id, item.uid)
    if holder is not None and holder != to_href and not (source.id == target.id and holder == item.href):
        raise ItemExists(item.uid, holder)
    session.execute(delete_rows(Item).where(Item.calendar_id == target.id, Item.href == to_href))
    old_href = item.href
    item.calendar_id = target.id
    item.tenant_id = target.tenant_id
    item.href = to_href
    item.modified_at = utcnow()
    session.flush()
    changes.record(session, source, old_href, deleted=True)
    changes.record(session, target, to_href, deleted=False)


class StoredTimes:
    """Times as this database hands them back when their column type's processing is skipped:
    on SQLite the stored text (``YYYY-MM-DD HH:MM:SS.ffffff``, naive UTC, the form every write
    and the span index's range comparisons already rely on), on PostgreSQL naive UTC datetimes.
    Within one database they order like the instants, so free/busy compares, clips and sorts them
    as they come and turns only what it answers into ISO text or aware datetimes."""

    def __init__(self, dialect_name: str) -> None:
        self.is_text = dialect_name == "sqlite"

    def of(self, moment: datetime) -> Any:
        """The stored form of an aware datetime."""
        utc = moment.astimezone(UTC)
        if not self.is_text:
            return utc.replace(tzinfo=None)
        return (f"{utc.year:04d}-{utc.month:02d}-{utc.day:02d} {utc.hour:02d}:{utc.minute:02d}:{utc.second:02d}"
                f".{utc.microsecond:06d}")

    def aware(self, stored: Any) -> datetime:
        moment: datetime = datetime.fromisoformat(stored) if self.is_text else stored
        return moment.replace(tzinfo=UTC)

    def iso(self, stored: Any) -> str:
        """ISO 8601 in UTC with a ``Z``, as ``moment.isoformat()`` writes it (fractions only when not 0)."""
        if not self.is_text:
            return f"{stored.isoformat()}Z"
        if stored.endswith(".000000"):
            return f"{stored[:10]}T{stored[11:19]}Z"
        return f"{stored[:10]}T{stored[11:]}Z"


def stored_times(session: Session) -> StoredTimes:
    return StoredTimes(session.get_bind().dialect.name)


class BusyCandidate(NamedTuple):
    """What free/busy needs of an item overlapping a window, without its text; times in their
    stored form (``StoredTimes``)."""

    item_id: int
    calendar_id: int
    origin: str
    dtstart: Any
    dtend: Any
    busy: str | None
    recurring: bool
    occurrences_until: Any


def _stored(column: Any) -> Any:
    """The column's value as the driver returns it, without the type's result processing
    (``UTCDateTime`` would build an aware datetime per value: most of a free/busy answer's cost)."""
    return type_coerce(column, NullType())


def _busy_statement() -> Select[tuple[Any, ...]]:
    """Like the overlap query, for many calendars at once and only the columns free/busy reads."""
    columns = (Item.id.label("item_id"), Item.calendar_id, Item.origin, _stored(Item.dtstart).label("dtstart"),
               _stored(Item.dtend).label("dtend"), Item.busy, Item.recurring,
               _stored(Item.occurrences_until).label("occurrences_until"))
    per_class = [
        select(*columns).where(
            Item.calendar_id.in_(bindparam("calendar_ids", expanding=True)),
            Item.span_class == klass,
            Item.span_start >= bindparam(f"from_{klass}", type_=UTCDateTime()),
            Item.span_start < bindparam("end", type_=UTCDateTime()),
            Item.span_end > bindparam("start", type_=UTCDateTime()),
            Item.component == "VEVENT",
            or_(Item.recurring, Item.busy.is_not(None)),
        )
        for klass in (*_FINITE_CLASSES, UNBOUNDED_CLASS)
    ]
    return union_all(*per_class)  # type: ignore[return-value]


_BUSY = _busy_statement()
_BATCH = 500  # rows fetched at a time by the free/busy reads


def busy_candidates(session: Session, calendar_ids: Sequence[int], start: datetime,
                    end: datetime) -> Iterator[BusyCandidate]:
    """Events of these calendars whose span overlaps [start, end) and that can be busy in it,
    times in their stored form (``stored_times(session)``); read them inside the session."""
    if not calendar_ids:
        return iter(())
    params: dict[str, object] = {"calendar_ids": list(calendar_ids), "start": start, "end": end,
                                 f"from_{UNBOUNDED_CLASS}": EARLIEST}
    params.update({f"from_{klass}": _earliest_start(start, klass) for klass in _FINITE_CLASSES})
    # The rows themselves, fetched in batches: they unpack and answer to the field names like a
    # BusyCandidate, and free/busy reads thousands per request; copying them, or holding them all
    # at once, costs time and makes Python's collector promote them and run full collections.
    rows = session.execute(_BUSY, params, execution_options={"yield_per": _BATCH})
    return cast("Iterator[BusyCandidate]", iter(rows))


def busy_occurrences(session: Session, item_ids: Sequence[int], start: datetime,
                     end: datetime) -> list[tuple[int, Any, Any, str]]:
    """(item id, start, end, busy type) of stored busy instances overlapping [start, end),
    times in their stored form (``stored_times(session)``)."""
    found: list[tuple[int, Any, Any, str]] = []
    wanted = list(item_ids)
    for first in range(0, len(wanted), 500):
        rows = session.execute(
            select(Occurrence.item_id, _stored(Occurrence.start), _stored(Occurrence.end), Occurrence.busy)
            .where(Occurrence.item_id.in_(wanted[first:first + 500]), Occurrence.start < end,
                   Occurrence.end > start, Occurrence.busy.is_not(None)),
            execution_options={"yield_per": _BATCH})
        found.extend((item_id, first, last, busy) for item_id, first, last, busy in rows)
    return found


def texts(session: Session, item_ids: Sequence[int]) -> dict[int, str]:
    """The iCalendar text of these items, for the few that must be expanded on the fly."""
    if not item_ids:
        return {}
    return dict(session.execute(select(Item.id, Item.text).where(Item.id.in_(list(item_ids)))).all())


def of_origin(session: Session, calendar_id: int, origin: str) -> list[Item]:
    """Every item of the calendar written by one origin (e.g. a connection's mirrored items), by href."""
    return list(session.scalars(select(Item).where(Item.calendar_id == calendar_id, Item.origin == origin)
                                .order_by(Item.href)))
