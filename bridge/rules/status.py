"""Always on: cancelled events and invitations the owner declined are never busy.

At ingest such an event is dropped. For an override that means "this one
instance is gone"; :mod:`bridge.rules.ingest` turns that into an EXDATE on
the master so that the series is not affected.
"""

from __future__ import annotations

from icalendar import Event

from bridge.rules.markers import read_markers
from bridge.rules.options import ConnectionOptions


def apply_status(event: Event, options: ConnectionOptions) -> Event | None:
    """Drop ``STATUS:CANCELLED`` and owner-``PARTSTAT=DECLINED`` events; keep the rest unchanged."""
    markers = read_markers(event, options.owner_addresses)
    if markers.cancelled or markers.declined:
        return None
    return event.copy(recursive=True)
