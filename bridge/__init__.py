"""calbridge: a CalDAV/iCalendar bridge server for appointment-booking systems."""

__version__ = "0.1.0"

# Before anything parses iCalendar in this process: each resource's time zones are its own
# (icalendar's and vobject's process-wide VTIMEZONE tables switched off; see the module).
from bridge.ical import zones as _per_resource_zones  # noqa: E402, F401
