"""Option ``anonymize_location``: where an event takes place is never stored.

Removed from the VEVENT and from its subcomponents (Apple puts a structured
location into location-based VALARMs):

- ``LOCATION`` and ``GEO`` (RFC 5545), ``VLOCATION`` subcomponents (RFC 9073);
- ``CONFERENCE`` (RFC 7986): a video-call link is the virtual place, and its
  URL often carries the meeting id and passcode;
- Apple: ``X-APPLE-STRUCTURED-LOCATION``, ``X-APPLE-TRAVEL-START`` (holds the
  start address) and the ``X-APPLE-PROXIMITY`` of location alarms;
- Microsoft: every ``X-MICROSOFT-LOCATION*`` (display name, street, city,
  coordinates, ``X-MICROSOFT-LOCATIONS`` JSON), ``X-MICROSOFT-LATITUDE`` /
  ``-LONGITUDE``, and the online-meeting links ``X-MICROSOFT-SKYPETEAMSMEETINGURL``,
  ``X-MICROSOFT-ONLINEMEETINGCONFLINK``, ``X-MICROSOFT-ONLINEMEETINGINFORMATION``;
- Google: ``X-GOOGLE-CONFERENCE``.

VTIMEZONE's ``X-LIC-LOCATION`` names a time zone, not a place; VTIMEZONEs are
never touched. A location written into SUMMARY or DESCRIPTION is beyond reach
here; ``no_personal_data`` removes those.
"""

from __future__ import annotations

from icalendar import Component, Event

from bridge.rules.options import ConnectionOptions

LOCATION_PROPERTIES = frozenset({
    "LOCATION",
    "GEO",
    "CONFERENCE",
    "X-APPLE-STRUCTURED-LOCATION",
    "X-APPLE-TRAVEL-START",
    "X-APPLE-PROXIMITY",
    "X-MICROSOFT-LATITUDE",
    "X-MICROSOFT-LONGITUDE",
    "X-MICROSOFT-SKYPETEAMSMEETINGURL",
    "X-MICROSOFT-ONLINEMEETINGCONFLINK",
    "X-MICROSOFT-ONLINEMEETINGINFORMATION",
    "X-GOOGLE-CONFERENCE",
})
LOCATION_PREFIXES = ("X-MICROSOFT-LOCATION",)
LOCATION_COMPONENTS = frozenset({"VLOCATION"})


def is_location_property(name: str) -> bool:
    upper = name.upper()
    return upper in LOCATION_PROPERTIES or upper.startswith(LOCATION_PREFIXES)


def strip_location(component: Component) -> None:
    """Remove every location property and VLOCATION, recursively and in place (callers pass a copy)."""
    for name in [key for key in component if is_location_property(key)]:
        del component[name]
    component.subcomponents = [c for c in component.subcomponents if c.name not in LOCATION_COMPONENTS]
    for sub in component.subcomponents:
        strip_location(sub)


def apply_location(event: Event, options: ConnectionOptions) -> Event | None:
    """Remove the location when ``anonymize_location`` is on; never drops the event."""
    result = event.copy(recursive=True)
    if options.anonymize_location:
        strip_location(result)
    return result
