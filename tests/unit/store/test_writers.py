"""The origin rule, as a table: who may replace, move or delete an item of which origin."""

from __future__ import annotations

import pytest

from bridge.store import writers
from bridge.store.errors import BookingItem, ItemRefused, MirroredItem

ALLOWED = [
    (writers.CLIENT, None), (writers.CLIENT, "client"), (writers.IMPORTER, "client"), (writers.IMPORTER, None),
    (writers.BOOKING, "booking"), (writers.BOOKING, None),
    (writers.connection(3), "connection:3"), (writers.connection(3), None),
]
REFUSED = [
    (writers.CLIENT, "connection:3", MirroredItem), (writers.IMPORTER, "connection:3", MirroredItem),
    (writers.BOOKING, "connection:3", MirroredItem), (writers.connection(4), "connection:3", MirroredItem),
    (writers.CLIENT, "booking", BookingItem), (writers.IMPORTER, "booking", BookingItem),
    (writers.connection(3), "booking", BookingItem),
    (writers.BOOKING, "client", ItemRefused), (writers.connection(3), "client", ItemRefused),
]


@pytest.mark.parametrize(("writer", "origin"), ALLOWED)
def test_a_writer_changes_what_has_its_origin_or_nothing(writer: writers.Writer, origin: str | None) -> None:
    writers.check(writer, "x.ics", origin)


@pytest.mark.parametrize(("writer", "origin", "error"), REFUSED)
def test_a_writer_never_changes_another_origins_item(writer: writers.Writer, origin: str,
                                                     error: type[ItemRefused]) -> None:
    with pytest.raises(error) as refused:
        writers.check(writer, "x.ics", origin, destination=True)
    assert (refused.value.href, refused.value.origin, refused.value.destination) == ("x.ics", origin, True)


@pytest.mark.parametrize("origin", ["client", "booking", "connection:12"])
def test_the_writer_of_an_origin_stores_that_origin(origin: str) -> None:
    assert writers.for_origin(origin).origin == origin
