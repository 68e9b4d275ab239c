"""Time zone names as Microsoft's services give them (Graph and EWS: Windows names, sometimes IANA) read as
zones, through icalendar's CLDR table; one reading for both adapters."""

from __future__ import annotations

import logging
import zoneinfo
from datetime import UTC, tzinfo

from icalendar.timezone.windows_to_olson import WINDOWS_TO_OLSON

log = logging.getLogger(__name__)

_UTC_NAMES = frozenset({"UTC", "Etc/UTC", "Etc/GMT", "tzone://Microsoft/Utc"})


def zone_named(name: str | None) -> tzinfo:
    """A Windows or IANA time zone name as a zone; UTC for none, a UTC alias, or a name zoneinfo does not know
    (logged without the event)."""
    if not name or name.strip() in _UTC_NAMES:
        return UTC
    iana = WINDOWS_TO_OLSON.get(name.strip(), name.strip())
    if iana in _UTC_NAMES:
        return UTC
    try:
        return zoneinfo.ZoneInfo(iana)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        log.warning("an event names a time zone zoneinfo does not know; read as UTC")
        return UTC
