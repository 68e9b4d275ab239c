"""Option ``allday_as_busy``: all-day events (birthdays, reminders, holidays, vacations).

By default they are not transferred. With the option on they are kept as
DATE values (the free/busy layer reads a date as midnight to midnight in the
calendar's time zone) and made ``OPAQUE``, whatever free marker the provider
put on them by default; see :mod:`bridge.rules.transparency` for the one
exception, working locations.
"""

from __future__ import annotations

from icalendar import Event

from bridge.rules.markers import is_all_day
from bridge.rules.options import ConnectionOptions
from bridge.rules.transparency import make_opaque


def apply_allday(event: Event, options: ConnectionOptions) -> Event | None:
    """Drop an all-day event, or keep it as busy when ``allday_as_busy`` is on."""
    if not is_all_day(event):
        return event.copy(recursive=True)
    if not options.allday_as_busy:
        return None
    return make_opaque(event, mark=False)
