"""Radicale's own acceptance checks for iCalendar objects, with the reason as one line.

Used where calbridge takes iCalendar outside a Radicale PUT (the import) and where a
refused PUT must say why (the /dav gate), so that both accept exactly what a PUT does.
"""

from __future__ import annotations

from typing import Any

from radicale import item as radicale_item

from bridge.store.objects import MAX_RRULE_OCCURRENCES


class InvalidICalendar(ValueError):
    """Radicale refuses this iCalendar text; ``str()`` is the reason in one line."""


def checked_components(text: str) -> list[Any]:
    """The parsed and sanitised components of ``text``, as a PUT of it would have them."""
    try:
        components = radicale_item.read_components(text)
        if components and components[0].name == "VCALENDAR":
            radicale_item.check_and_sanitize_items(components, tag="VCALENDAR",
                                                   max_vevent_rrule_occurrence=MAX_RRULE_OCCURRENCES)
    except Exception as exc:  # Radicale's parser raises anything from ValueError to vobject's errors
        raise InvalidICalendar(_first_line(exc)) from exc
    return components


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
