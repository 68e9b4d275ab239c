"""The mails' text, language, local times and iCalendar attachment (bridge.notify.message)."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage

import icalendar
import pytest

from bridge.notify.message import (
    ALERT_KINDS,
    KINDS,
    Appointment,
    Person,
    build_alert,
    build_message,
    language_of,
    local_date,
)

PROVIDER = Person("dr.berg@praxis.example", "Dr. Berg")
CUSTOMER = Person("kunde@example.com", "Anna Kunde")
# 29 March 2026 is the day Berlin moves to summer time: 08:00 UTC is 10:00 there.
START, END = datetime(2026, 3, 29, 8, 0, tzinfo=UTC), datetime(2026, 3, 29, 8, 45, tzinfo=UTC)


def _appointment(**changes: object) -> Appointment:
    values: dict[str, object] = {"uid": "abc-123@calbridge", "sequence": 3, "start": START, "end": END,
                                 "timezone": "Europe/Berlin", "organizer": PROVIDER, "attendee": CUSTOMER,
                                 "summary": "Termin bei Dr. Berg", "location": "Praxis <Raum 2>"}
    values.update(changes)
    return Appointment(**values)  # type: ignore[arg-type]


def _parts(message: EmailMessage) -> tuple[str, str, icalendar.Calendar, EmailMessage]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    [attachment] = list(message.iter_attachments())
    assert isinstance(attachment, EmailMessage)
    calendar = icalendar.Calendar.from_ical(attachment.get_content())
    return text.get_content(), html.get_content(), calendar, attachment


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("language", ["de", "en"])
def test_every_kind_renders_in_every_language(kind: str, language: str) -> None:
    message = build_message(kind, _appointment(previous_start=datetime(2026, 3, 28, 9, tzinfo=UTC)), language)
    text, html, calendar, attachment = _parts(message)
    assert message["To"] == "Anna Kunde <kunde@example.com>" and message["Content-Language"] == language
    assert message["Bcc"] is None and message["From"] is None  # set when queued
    assert "10:00" in message["Subject"] and "10:00–10:45" in text and "10:00–10:45" in html
    assert "{{" not in text + html
    assert calendar["METHOD"] == KINDS[kind] == attachment.get_param("method")
    [event] = calendar.walk("VEVENT")
    assert (str(event["UID"]), int(event["SEQUENCE"])) == ("abc-123@calbridge", 3)
    assert event.decoded("DTSTART") == START
    assert str(event["ORGANIZER"]) == "mailto:dr.berg@praxis.example"
    assert str(event["ATTENDEE"]) == "mailto:kunde@example.com"
    assert str(event["STATUS"]) == ("CANCELLED" if KINDS[kind] == "CANCEL" else "CONFIRMED")


def test_german_text_with_local_date_and_the_previous_time() -> None:
    message = build_message("notice_changed", _appointment(previous_start=datetime(2026, 3, 28, 9, tzinfo=UTC)), "de")
    text, html, _, _ = _parts(message)
    assert message["Subject"] == "Ihr Termin wurde verlegt: Sonntag, 29. März 2026 um 10:00 Uhr"
    assert "vom Samstag, 28. März 2026 um 10:00 Uhr" in text  # winter time the day before
    assert "Ort: Praxis <Raum 2>" in text
    assert "Praxis &lt;Raum 2&gt;" in html and "<Raum 2>" not in html  # HTML is escaped


def test_english_text() -> None:
    message = build_message("booking_confirmed", _appointment(), "en-GB")
    text, _, _, _ = _parts(message)
    assert message["Subject"] == "Appointment confirmed: Sunday, 29 March 2026 at 10:00"
    assert text.startswith("Hello Anna Kunde,") and "(Europe/Berlin)" in text


@pytest.mark.parametrize(("given", "expected"), [("de", "de"), ("EN", "en"), ("de-AT", "de"), ("en_US", "en"),
                                                 ("fr", "de"), ("", "de"), (None, "de")])
def test_language_falls_back_to_german(given: str | None, expected: str) -> None:
    assert language_of(given) == expected


def test_local_date_in_another_zone() -> None:
    assert local_date(datetime(2026, 1, 1, 2, tzinfo=UTC), "America/New_York", "en") == "Wednesday, 31 December 2025"


def test_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown kind"):
        build_message("spam", _appointment(), "de")


@pytest.mark.parametrize("kind", ALERT_KINDS)
@pytest.mark.parametrize("language", ["de", "en"])
def test_every_alert_renders_in_every_language(kind: str, language: str) -> None:
    context = {"connection": "Google <praxis>", "calendar": "praxis", "provider_name": "Google",
               "since": "Dienstag, 24. November 2026, 10:00", "failures": 5}
    message = build_alert(kind, [PROVIDER, Person("chefin@praxis.example")], language, context)
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    assert message["To"] == '"Dr. Berg" <dr.berg@praxis.example>, chefin@praxis.example'
    assert "Google <praxis>" in message["Subject"] and "Google <praxis>" in text.get_content()
    assert "Google &lt;praxis&gt;" in html.get_content() and "{{" not in text.get_content() + html.get_content()
    assert list(message.iter_attachments()) == [] and message["Content-Language"] == language
