"""Option ``transparent_as_busy``: events marked available ("Verfügbar").

Such events do not block booking, so by default they are not transferred at
all. With the option on they are kept and made busy for every later reader:
``TRANSP`` is set to ``OPAQUE`` and a free busy-status (FREE,
WORKINGELSEWHERE) is removed, while TENTATIVE/BUSY/OOF stay because they
still say *how* busy the time is.

All-day events are the ``allday_as_busy`` option's business: providers mark
them available by default (Google and Outlook both do), so their
``TRANSP``/FREE marker is no user choice and is ignored here. A working
location (WORKINGELSEWHERE) is never an appointment, all-day or not, and
always needs this option.

An event made busy keeps ``X-CALBRIDGE-MADE-BUSY``, calbridge's own marker,
so that turning the option off again can drop it from what is stored
without fetching it anew (the original free marker is gone by then).
"""

from __future__ import annotations

from icalendar import Event
from icalendar.enums import TRANSP

from bridge.rules.markers import BUSYSTATUS, FREE_BUSYSTATUSES, marker_text, read_markers
from bridge.rules.options import ConnectionOptions

MADE_BUSY = "X-CALBRIDGE-MADE-BUSY"


def counts_as_free(event: Event) -> bool:
    """Whether this option decides about ``event`` (see the module docstring)."""
    if MADE_BUSY in event:
        return True
    markers = read_markers(event)
    return markers.working_elsewhere or (markers.free_marked and not markers.all_day)


def make_opaque(event: Event, *, mark: bool) -> Event:
    """A copy of ``event`` that every reader counts as busy.

    ``mark`` adds :data:`MADE_BUSY`; only this option marks, since the
    all-day option needs no marker to undo itself (a date value says it all)
    and a marker of its own would make this option drop the event when it is
    ingested again.
    """
    result = event.copy(recursive=True)
    result.pop("TRANSP", None)
    result.add("TRANSP", TRANSP.OPAQUE.value)
    if marker_text(result.get(BUSYSTATUS)) in FREE_BUSYSTATUSES:
        result.pop(BUSYSTATUS)
    if mark:
        result.pop(MADE_BUSY, None)
        result.add(MADE_BUSY, "TRUE")
    return result


def apply_transparency(event: Event, options: ConnectionOptions) -> Event | None:
    """Drop a free-marked event, or keep it as busy when ``transparent_as_busy`` is on."""
    if not counts_as_free(event):
        return event.copy(recursive=True)
    if not options.transparent_as_busy:
        return None
    return make_opaque(event, mark=True)
