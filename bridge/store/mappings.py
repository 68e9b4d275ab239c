"""The mapping table of a connection: which item is which remote event, as of the last sync.

The sync engine reads all rows of a connection before it plans a run and writes one row in
the same transaction as the item change it belongs to, so a crash never leaves a row that
claims more than the store holds. Callers own the transaction; nothing here commits.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from bridge.store.models import Connection, Mapping, utcnow


@dataclass(frozen=True)
class MappingValues:
    """One row's content (the engine's and the planner's view of it)."""

    item_href: str
    remote_id: str
    remote_etag: str
    local_etag: str
    content_hash: str
    owner: str  # local | remote


def of_connection(session: Session, connection_id: int) -> list[MappingValues]:
    """Every row of the connection, read as plain columns (every run reads them all)."""
    rows = session.execute(select(Mapping.item_href, Mapping.remote_id, Mapping.remote_etag, Mapping.local_etag,
                                  Mapping.content_hash, Mapping.owner).where(Mapping.connection_id == connection_id))
    return [MappingValues(*row) for row in rows]


def save(session: Session, connection: Connection, values: MappingValues) -> None:
    """Insert or replace the row of ``values.item_href``; a row of the same remote id under
    another href is dropped first (one remote event maps to one item)."""
    session.execute(delete(Mapping).where(Mapping.connection_id == connection.id,
                                          Mapping.remote_id == values.remote_id,
                                          Mapping.item_href != values.item_href))
    row = session.scalar(select(Mapping).where(Mapping.connection_id == connection.id,
                                               Mapping.item_href == values.item_href))
    if row is None:
        row = Mapping(tenant_id=connection.tenant_id, connection_id=connection.id, item_href=values.item_href)
        session.add(row)
    row.remote_id = values.remote_id
    row.remote_etag = values.remote_etag
    row.local_etag = values.local_etag
    row.content_hash = values.content_hash
    row.owner = values.owner
    row.updated_at = utcnow()
    session.flush()


def remote_etag_of(session: Session, connection_id: int, item_href: str) -> str | None:
    """The remote version a mapping row last saw, if the row exists."""
    return session.scalar(select(Mapping.remote_etag).where(Mapping.connection_id == connection_id,
                                                            Mapping.item_href == item_href))


def forget(session: Session, connection_id: int, *, item_href: str | None = None,
           remote_id: str | None = None) -> None:
    """Drop the row of an item or of a remote event (whichever is given)."""
    statement = delete(Mapping).where(Mapping.connection_id == connection_id)
    if item_href is not None:
        statement = statement.where(Mapping.item_href == item_href)
    if remote_id is not None:
        statement = statement.where(Mapping.remote_id == remote_id)
    if item_href is None and remote_id is None:
        raise ValueError("forget needs an item href or a remote id")
    session.execute(statement)


def forget_all(session: Session, connection_id: int) -> int:
    """Drop every row of the connection (disconnect); returns how many there were."""
    result = session.execute(delete(Mapping).where(Mapping.connection_id == connection_id))
    return int(getattr(result, "rowcount", 0) or 0)


def set_local_etag(session: Session, connection_id: int, item_href: str, local_etag: str) -> None:
    """Record that the bridge itself rewrote a mirrored item (an option change), so the next run
    does not take the new etag for a change made by a client."""
    session.execute(update(Mapping).where(Mapping.connection_id == connection_id, Mapping.item_href == item_href)
                    .values(local_etag=local_etag))


def set_versions(session: Session, connection_id: int, item_href: str, remote_etag: str, local_etag: str,
                 content_hash: str) -> None:
    """New etags over content both sides still agree on (nothing to write anywhere else)."""
    session.execute(update(Mapping).where(Mapping.connection_id == connection_id, Mapping.item_href == item_href)
                    .values(remote_etag=remote_etag, local_etag=local_etag, content_hash=content_hash,
                            updated_at=utcnow()))
