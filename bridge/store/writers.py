"""Who writes an item, and the origin rule every item write passes (``bridge.store.items``).

Each writer says who it is: a CalDAV client, the file importer, the booking engine, or the sync
engine for one connection. An item keeps the origin of the writer that created it, and only a
writer of that origin may replace, move or delete it: a client (or an import) never touches a
mirrored item (its source is the external calendar) nor a booking's event (it changes through
the booking, so the booking row and its event never disagree). The rule lives here, once, so that
no route (the /dav gate, Radicale's PUT, DELETE and MOVE, an import, the API, the sync engine) can
differ from another.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bridge.store.errors import BookingItem, ItemRefused, MirroredItem

CLIENT_ORIGIN = "client"
BOOKING_ORIGIN = "booking"
CONNECTION_PREFIX = "connection:"


@dataclass(frozen=True)
class Writer:
    """Who asks for a write; ``origin`` is what an item it creates is stored as."""

    kind: Literal["client", "importer", "booking", "connection"]
    connection_id: int | None = None

    @property
    def origin(self) -> str:
        if self.kind == "connection":
            return f"{CONNECTION_PREFIX}{self.connection_id}"
        return BOOKING_ORIGIN if self.kind == "booking" else CLIENT_ORIGIN

    def __str__(self) -> str:
        return self.origin if self.kind == "connection" else self.kind


CLIENT = Writer("client")
IMPORTER = Writer("importer")
BOOKING = Writer("booking")


def connection(connection_id: int) -> Writer:
    """The sync engine writing for one connection."""
    return Writer("connection", connection_id)


def for_origin(origin: str) -> Writer:
    """The writer whose items have ``origin``: for callers that write an item as its owner."""
    if origin.startswith(CONNECTION_PREFIX):
        return connection(int(origin[len(CONNECTION_PREFIX):]))
    return BOOKING if origin == BOOKING_ORIGIN else CLIENT


def check(writer: Writer, href: str, current_origin: str | None, *, destination: bool = False) -> None:
    """Raise unless ``writer`` may replace, move or delete the item of ``current_origin`` at ``href``
    (None: nothing there, anyone may create)."""
    if current_origin is None or current_origin == writer.origin:
        return
    if current_origin.startswith(CONNECTION_PREFIX):
        raise MirroredItem(href, current_origin, str(writer), destination=destination)
    if current_origin == BOOKING_ORIGIN:
        raise BookingItem(href, current_origin, str(writer), destination=destination)
    raise ItemRefused(href, current_origin, str(writer), destination=destination)
