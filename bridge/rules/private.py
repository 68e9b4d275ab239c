"""Option ``private_without_details`` (on by default): events marked private keep only their times.

``CLASS:PRIVATE`` and ``CLASS:CONFIDENTIAL`` (from Google visibility and
Outlook sensitivity) get the ``no_personal_data`` treatment even where that
option is off; see :mod:`bridge.rules.personal_data` for what survives.

The UID is not touched per event, because all components of one item must
share one UID. :mod:`bridge.rules.ingest` hashes the UID of the whole item
when *any* of its components is private. "Any" rather than "the master"
keeps ingest idempotent: a master dropped by another rule would otherwise
change the decision on the next run, and it also keeps the series UID of a
private instance from being stored in clear.
"""

from __future__ import annotations

from icalendar import Component, Event

from bridge.rules.markers import read_markers
from bridge.rules.options import ConnectionOptions
from bridge.rules.personal_data import strip_details


def is_private(component: Component, options: ConnectionOptions) -> bool:
    """Whether this rule applies to ``component``."""
    return options.private_without_details and read_markers(component).private


def apply_private(event: Event, options: ConnectionOptions) -> Event | None:
    """Strip a private event down to its timing; other events pass unchanged."""
    if is_private(event, options):
        return strip_details(event)
    return event.copy(recursive=True)
