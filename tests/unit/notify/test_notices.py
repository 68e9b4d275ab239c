"""Which change of a hand-written event tells the customer what (bridge.notify.notices)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import icalendar
import pytest

from bridge.notify.message import Person
from bridge.notify.notices import Sender, Slot, customer_in_event, notice_kind, slot_of
from bridge.secrets import Secrets, new_key
from bridge.settings import Settings

NINE = datetime(2026, 12, 1, 8, tzinfo=UTC)
TEN = datetime(2026, 12, 1, 9, tzinfo=UTC)
ELEVEN = datetime(2026, 12, 1, 10, tzinfo=UTC)


@pytest.mark.parametrize(("before", "after", "expected"), [
    (None, Slot(NINE, TEN), "notice_created"),
    (Slot(NINE, TEN), None, "notice_cancelled"),
    (Slot(NINE, TEN), Slot(TEN, ELEVEN), "notice_changed"),
    (Slot(NINE, TEN), Slot(NINE, ELEVEN), "notice_changed"),  # longer
    (Slot(NINE, TEN, "Raum 1"), Slot(NINE, TEN, "Raum 2"), "notice_changed"),  # elsewhere
    (Slot(NINE, TEN, "Raum 1"), Slot(NINE, TEN, "Raum 1"), None),  # a new description, say
    (None, None, None),
])
def test_notice_kind(before: Slot | None, after: Slot | None, expected: str | None) -> None:
    assert notice_kind(before, after) == expected


def _event(**properties: object) -> icalendar.Calendar:
    calendar = icalendar.Calendar()
    event = icalendar.Event()
    event.add("uid", "e1")
    for name, value in properties.items():
        event.add(name.replace("_", "-"), value)
    calendar.add_component(event)
    return calendar


def test_slot_of_reads_floating_times_in_the_zone() -> None:
    calendar = _event(dtstart=datetime(2026, 12, 1, 9, 0), dtend=datetime(2026, 12, 1, 10, 0), location=" Raum 2 ")
    assert slot_of(calendar, ZoneInfo("Europe/Berlin")) == Slot(NINE, TEN, "Raum 2")


def test_a_cancelled_event_has_no_slot() -> None:
    assert slot_of(_event(dtstart=NINE, dtend=TEN, status="CANCELLED"), ZoneInfo("UTC")) is None


@pytest.fixture
def sender() -> Sender:
    settings = Settings(mail_from="Praxis <kalender@praxis.example>", smtp_host="127.0.0.1")
    return Sender(settings, Secrets([new_key()]), tenant_id=1, timezone="Europe/Berlin",
                  provider=Person("dr.berg@praxis.example", "Dr. Berg"), language="de",
                  excluded=frozenset({"info@praxis.example"}))


@pytest.mark.parametrize(("summary", "description", "expected"), [
    ("Kontrolle kunde@example.com", "", "kunde@example.com"),
    ("Kontrolle", "Dr. Berg <dr.berg@praxis.example>, Rückfragen: info@praxis.example", None),
    ("kalender@praxis.example", "https://meet.example/?u=a@b.example", None),
    ("Kontrolle", "Kunde: kunde@example.com", "kunde@example.com"),
])
def test_the_customer_is_neither_the_provider_nor_the_tenant(sender: Sender, summary: str, description: str,
                                                             expected: str | None) -> None:
    assert customer_in_event(sender, _event(dtstart=NINE, summary=summary, description=description)) == expected
