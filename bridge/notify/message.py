"""The mails themselves: a plain-text and an HTML part from Jinja2 templates (one pair per kind and
language, ``templates/<language>/<kind>.txt|.html``), and an iCalendar attachment (RFC 5546 over
RFC 6047: METHOD REQUEST or CANCEL, the provider as ORGANIZER, the customer as ATTENDEE, SEQUENCE)
so that the customer's own calendar follows. Times are shown in the calendar's time zone.

Alerts to providers (a connection that needs attention, a held run) use the same templates without
an attachment. The first line of a text template is the subject; the body starts after the blank line below it.
Unknown languages fall back to German, the product's default.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

TEMPLATES = Path(__file__).with_name("templates")
LANGUAGES = ("de", "en")
DEFAULT_LANGUAGE = "de"
PRODID = "-//calbridge//notify//EN"

# kind -> iTIP method of the attachment
KINDS = {
    "notice_created": "REQUEST",
    "notice_changed": "REQUEST",
    "notice_cancelled": "CANCEL",
    "booking_confirmed": "REQUEST",
    "booking_rescheduled": "REQUEST",
    "booking_cancelled": "CANCEL",
}

ALERT_KINDS = ("alert_auth", "alert_failing", "alert_held")

_WEEKDAYS = {
    "de": ("Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag", "Sonntag"),
    "en": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
}
_MONTHS = {
    "de": ("Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August", "September", "Oktober",
           "November", "Dezember"),
    "en": ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"),
}


@dataclass(frozen=True)
class Person:
    email: str
    name: str = ""


@dataclass(frozen=True)
class Appointment:
    """What a mail says about one appointment; ``start`` and ``end`` are aware datetimes."""

    uid: str
    sequence: int
    start: datetime
    end: datetime
    timezone: str  # the calendar's IANA zone: the times the customer reads
    organizer: Person  # the provider
    attendee: Person  # the customer
    summary: str = ""
    location: str = ""
    previous_start: datetime | None = None  # a moved appointment: when it was
    extra: dict[str, str] = field(default_factory=dict)  # further template values (e.g. a booking reference)


def language_of(language: str | None) -> str:
    """``language`` if there are templates for it (``de-AT`` counts as ``de``), else German."""
    code = (language or "").lower().replace("_", "-").split("-")[0]
    return code if code in LANGUAGES else DEFAULT_LANGUAGE


def local_date(moment: datetime, timezone: str, language: str) -> str:
    """``Mittwoch, 25. November 2026`` / ``Wednesday, 25 November 2026`` in ``timezone``."""
    local = moment.astimezone(ZoneInfo(timezone))
    weekday, month = _WEEKDAYS[language][local.weekday()], _MONTHS[language][local.month - 1]
    if language == "de":
        return f"{weekday}, {local.day}. {month} {local.year}"
    return f"{weekday}, {local.day} {month} {local.year}"


def local_time(moment: datetime, timezone: str) -> str:
    """``10:00`` in ``timezone`` (24-hour clock in both languages)."""
    return moment.astimezone(ZoneInfo(timezone)).strftime("%H:%M")


def build_message(kind: str, appointment: Appointment, language: str | None, *,
                  now: datetime | None = None) -> EmailMessage:
    """The mail of ``kind`` to the appointment's attendee (To only: From, Message-ID and Date are set
    when it is queued, blind copies go into the envelope)."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind of mail {kind!r}")
    language = language_of(language)
    message = _rendered(kind, language, _context(appointment, language), [appointment.attendee])
    method = KINDS[kind]
    message.add_attachment(calendar_text(appointment, method, now=now).encode(), maintype="text",
                           subtype="calendar", params={"method": method, "charset": "utf-8"},
                           filename="invite.ics" if method == "REQUEST" else "cancel.ics")
    message["Content-Language"] = language  # last: set_content and add_* move Content-* headers into parts
    return message


def build_alert(kind: str, recipients: Sequence[Person], language: str | None,
                context: Mapping[str, object]) -> EmailMessage:
    """An alert to providers (no attachment): ``recipients`` in To, ``context`` fills the template."""
    if kind not in ALERT_KINDS:
        raise ValueError(f"unknown kind of alert {kind!r}")
    if not recipients:
        raise ValueError("an alert needs a recipient")
    message = _rendered(kind, language_of(language), context, recipients)
    message["Content-Language"] = language_of(language)
    return message


def _rendered(kind: str, language: str, context: Mapping[str, object], to: Sequence[Person]) -> EmailMessage:
    """A message with the subject, text and HTML of the templates of ``kind`` in ``language``."""
    subject, _, text = _environment().get_template(f"{language}/{kind}.txt").render(context).partition("\n\n")
    html = _environment().get_template(f"{language}/{kind}.html").render(context)
    message = EmailMessage()
    message["To"] = [Address(person.name, addr_spec=person.email) for person in to]
    message["Subject"] = subject.strip()
    message.set_content(text.strip() + "\n")
    message.add_alternative(html, subtype="html")
    return message


def calendar_text(appointment: Appointment, method: str, *, now: datetime | None = None) -> str:
    """The iTIP object (RFC 5546) of the appointment: one VEVENT in UTC with ORGANIZER and ATTENDEE."""
    calendar = icalendar.Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("method", method)
    event = icalendar.Event()
    event.add("uid", appointment.uid)
    event.add("dtstamp", (now or datetime.now(UTC)).astimezone(UTC))
    event.add("sequence", appointment.sequence)
    event.add("dtstart", appointment.start.astimezone(UTC))
    event.add("dtend", appointment.end.astimezone(UTC))
    if appointment.summary:
        event.add("summary", appointment.summary)
    if appointment.location:
        event.add("location", appointment.location)
    event.add("status", "CANCELLED" if method == "CANCEL" else "CONFIRMED")
    organizer = icalendar.vCalAddress(f"mailto:{appointment.organizer.email}")
    if appointment.organizer.name:
        organizer.params["CN"] = appointment.organizer.name
    event.add("organizer", organizer)
    attendee = icalendar.vCalAddress(f"mailto:{appointment.attendee.email}")
    if appointment.attendee.name:
        attendee.params["CN"] = appointment.attendee.name
    attendee.params.update({"ROLE": "REQ-PARTICIPANT", "PARTSTAT": "ACCEPTED", "RSVP": "FALSE"})
    event.add("attendee", attendee)
    calendar.add_component(event)
    return calendar.to_ical().decode()


def _context(appointment: Appointment, language: str) -> dict[str, object]:
    zone = appointment.timezone
    previous = appointment.previous_start
    return {
        "summary": appointment.summary,
        "location": appointment.location,
        "provider": appointment.organizer.name or appointment.organizer.email,
        "provider_email": appointment.organizer.email,
        "customer": appointment.attendee.name,
        "date": local_date(appointment.start, zone, language),
        "start_time": local_time(appointment.start, zone),
        "end_time": local_time(appointment.end, zone),
        "timezone": zone,
        "previous_date": local_date(previous, zone, language) if previous else "",
        "previous_time": local_time(previous, zone) if previous else "",
        **appointment.extra,
    }


@cache
def _environment() -> Environment:
    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]),
                       undefined=StrictUndefined, keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
