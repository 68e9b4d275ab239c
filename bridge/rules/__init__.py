"""Connection rules: what an external calendar's events may leave in the store, and what readers see.

Pure functions over icalendar objects; no I/O, no clock, no content in logs.
Write time (:func:`ingest` and the per-event ``apply_*`` rules) removes what
a connection's options forbid before anything is stored; read time
(:func:`apply_view`) only ever removes more.
"""

from __future__ import annotations

from bridge.rules.allday import apply_allday
from bridge.rules.ingest import EVENT_RULES, Rule, apply_rules, ingest
from bridge.rules.location import apply_location
from bridge.rules.markers import Markers, is_all_day, read_markers
from bridge.rules.options import ConnectionOptions
from bridge.rules.personal_data import apply_personal_data, hashed_uid
from bridge.rules.private import apply_private
from bridge.rules.status import apply_status
from bridge.rules.timezones import apply_timezone, normalize_timezones
from bridge.rules.transparency import apply_transparency
from bridge.rules.views import View, apply_view, view_event

__all__ = [
    "EVENT_RULES",
    "ConnectionOptions",
    "Markers",
    "Rule",
    "View",
    "apply_allday",
    "apply_location",
    "apply_personal_data",
    "apply_private",
    "apply_rules",
    "apply_status",
    "apply_timezone",
    "apply_transparency",
    "apply_view",
    "hashed_uid",
    "ingest",
    "is_all_day",
    "normalize_timezones",
    "read_markers",
    "view_event",
]
