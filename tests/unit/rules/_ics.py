"""iCalendar text builders for the rules tests: tests read like the text an adapter hands over."""

from __future__ import annotations

from icalendar import Calendar, Component, Event

BERLIN_VTIMEZONE = """BEGIN:VTIMEZONE
TZID:Europe/Berlin
X-LIC-LOCATION:Europe/Berlin
BEGIN:STANDARD
DTSTART:19701025T030000
RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
TZNAME:CET
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:19700329T020000
RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
TZNAME:CEST
END:DAYLIGHT
END:VTIMEZONE"""

WINDOWS_VTIMEZONE = """BEGIN:VTIMEZONE
TZID:W. Europe Standard Time
BEGIN:STANDARD
DTSTART:16010101T030000
TZOFFSETFROM:+0200
TZOFFSETTO:+0100
RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=10
END:STANDARD
BEGIN:DAYLIGHT
DTSTART:16010101T020000
TZOFFSETFROM:+0100
TZOFFSETTO:+0200
RRULE:FREQ=YEARLY;INTERVAL=1;BYDAY=-1SU;BYMONTH=3
END:DAYLIGHT
END:VTIMEZONE"""

CUSTOM_VTIMEZONE = """BEGIN:VTIMEZONE
TZID:Customized Time Zone
BEGIN:STANDARD
DTSTART:16010101T000000
TZOFFSETFROM:+0300
TZOFFSETTO:+0300
END:STANDARD
END:VTIMEZONE"""

TIMED = "DTSTART;TZID=Europe/Berlin:20261207T090000\nDTEND;TZID=Europe/Berlin:20261207T100000"
ALL_DAY = "DTSTART;VALUE=DATE:20261207\nDTEND;VALUE=DATE:20261208"
OWNER = "owner@example.org"


def vevent(body: str, uid: str = "event-1@example.com") -> str:
    """A VEVENT with UID and DTSTAMP around ``body`` (one property per line)."""
    return f"BEGIN:VEVENT\nUID:{uid}\nDTSTAMP:20261124T080000Z\n{body.strip()}\nEND:VEVENT"


def text(*parts: str) -> str:
    """A VCALENDAR around VTIMEZONE/VEVENT texts, with CRLF line ends."""
    lines = ["BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//Example//Provider//EN", *parts, "END:VCALENDAR"]
    return "\r\n".join("\n".join(lines).splitlines()) + "\r\n"


def calendar(*parts: str) -> Calendar:
    parsed = Calendar.from_ical(text(*parts))
    assert isinstance(parsed, Calendar)
    return parsed


def event(
    body: str = TIMED, uid: str = "event-1@example.com", timezones: tuple[str, ...] = (BERLIN_VTIMEZONE,)
) -> Event:
    """One parsed VEVENT; its VTIMEZONEs are parsed along so zoned values resolve as in a real item."""
    events = calendar(*timezones, vevent(body, uid)).walk("VEVENT")
    assert isinstance(events[0], Event)
    return events[0]


def unfolded(ical: bytes | str) -> str:
    """Serialized iCalendar with folded lines joined, so a search cannot miss a split value."""
    data = ical.decode() if isinstance(ical, bytes) else ical
    return data.replace("\r\n ", "").replace("\r\n\t", "")


def lines(component: Component) -> list[str]:
    """The unfolded content lines of a component."""
    return unfolded(component.to_ical()).split("\r\n")


def value(component: Component, name: str) -> str | None:
    """One property's serialized value (with parameters), e.g. ``;TZID=Europe/Berlin:20261207T090000``."""
    for line in lines(component):
        head = line.split(":", 1)[0]
        if head.split(";", 1)[0] == name:
            return line[len(name):]
    return None
