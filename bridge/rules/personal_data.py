"""Option ``no_personal_data``: only the timing of an event is stored.

Kept: the timing (DTSTART, DTEND, DURATION, RRULE, RDATE, EXDATE,
RECURRENCE-ID), what busy-ness depends on (TRANSP, STATUS), and the
structural UID, DTSTAMP, SEQUENCE and CLASS, which carry no personal data
(CLASS stays so that the private rule decides the same way on every re-run),
and calbridge's own marker X-CALBRIDGE-MADE-BUSY (see the transparency rule).
Their parameters are cut to TZID, VALUE and RANGE. SUMMARY becomes ``n/a``,
as the product's help page promises. Everything else goes: DESCRIPTION,
LOCATION, ATTENDEE, ORGANIZER, ATTACH, CONTACT, URL, CATEGORIES, CREATED,
LAST-MODIFIED, every X- property (busy-status included: after the
transparency rule it can only say TENTATIVE/BUSY/OOF, which are all busy),
and every subcomponent (VALARM, VLOCATION, ...).

The external UID may itself identify a person (some servers put an address
or a name into it), so it is replaced by ``HMAC-SHA256(uid_salt, UID)`` in hex
plus ``@calbridge``: the same UID and salt always give the same value, so a
re-ingest finds the same item. A UID already in that form is kept as it is,
so that re-applying the rules to a stored item (after an option was
tightened) changes nothing.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import re

from icalendar import Event

from bridge.rules.options import ConnectionOptions

TIMING_PROPERTIES = ("DTSTART", "DTEND", "DURATION", "RRULE", "RDATE", "EXDATE", "RECURRENCE-ID")
KEPT_PROPERTIES = frozenset((*TIMING_PROPERTIES, "TRANSP", "STATUS", "CLASS", "UID", "DTSTAMP", "SEQUENCE",
                             "X-CALBRIDGE-MADE-BUSY"))
KEPT_PARAMETERS = frozenset({"TZID", "VALUE", "RANGE"})
NOT_AVAILABLE = "n/a"
HASHED_UID_DOMAIN = "@calbridge"
_HASHED_UID = re.compile(r"[0-9a-f]{64}" + re.escape(HASHED_UID_DOMAIN))


def is_hashed_uid(uid: str) -> bool:
    """Whether ``uid`` already has the form :func:`hashed_uid` produces."""
    return _HASHED_UID.fullmatch(uid) is not None


def hashed_uid(uid: str, salt: bytes) -> str:
    """The stable, per-connection replacement of an external UID (kept if already hashed)."""
    if is_hashed_uid(uid):
        return uid
    return hmac.new(salt, uid.encode("utf-8"), hashlib.sha256).hexdigest() + HASHED_UID_DOMAIN


def trimmed_copy(value: object) -> object:
    """A deep copy of a property value with only the TZID, VALUE and RANGE parameters (X- ones may hold anything)."""
    result = copy.deepcopy(value)  # the input keeps its parameters
    params = getattr(result, "params", None)
    if params is not None:
        for key in [key for key in params if key.upper() not in KEPT_PARAMETERS]:
            del params[key]
    return result


def strip_details(event: Event, summary: str = NOT_AVAILABLE) -> Event:
    """A new event with only the kept properties and ``SUMMARY:<summary>``; the UID is untouched."""
    result = Event()
    for name, value in event.property_items(recursive=False, sorted=False):
        if name.upper() not in KEPT_PROPERTIES:
            continue
        result.add(name, trimmed_copy(value), encode=False)
    result.add("SUMMARY", summary)
    return result


def apply_personal_data(event: Event, options: ConnectionOptions) -> Event | None:
    """Keep only the timing and hash the UID when ``no_personal_data`` is on."""
    if not options.no_personal_data:
        return event.copy(recursive=True)
    result = strip_details(event)
    if "UID" in result:
        uid = hashed_uid(str(result["UID"]), options.uid_salt)
        del result["UID"]
        result.add("UID", uid)
    return result
