"""/admin/busy, "Why is this slot busy?", as a practice's staff uses it: a booking, a weekly series
from a CalDAV client and a mirrored event each named as the cause at the calendar's local time, a free
slot said to be free, the event's own words never shown, bad input answered in German, and another
tenant's or a colleague's calendar out of reach."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import icalendar

from bridge.store import connections, users
from bridge.store.models import Calendar, Item
from bridge.sync import mirror
from tests.conftest import Bridge
from tests.integration.admin_client import sign_in

MONDAY = datetime(2026, 12, 7, tzinfo=UTC)  # 7 December 2026, a Monday; Europe/Berlin is UTC+1
CAL = "/dav/anna/praxis/"


def _practice(bridge: Bridge) -> int:
    bridge.add_user("A", "anna", role="admin")
    bridge.add_calendar("anna", "praxis", timezone="Europe/Berlin")
    return bridge.calendar_id("anna", "praxis")


def _ask(client: httpx.Client, calendar: int, day: str, time: str, minutes: int = 30) -> httpx.Response:
    return client.get("/busy", params={"calendar": calendar, "date": day, "time": time, "minutes": minutes})


def _series(uid: str, first: str, summary: str) -> str:
    """A weekly series from 09:00 to 10:00 Berlin time, as a CalDAV client writes it."""
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//calbridge//tests//EN\r\n"
            "BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\n"
            "BEGIN:DAYLIGHT\r\nTZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nTZNAME:CEST\r\nDTSTART:19700329T020000\r\n"
            "RRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\nEND:DAYLIGHT\r\n"
            "BEGIN:STANDARD\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nTZNAME:CET\r\nDTSTART:19701025T030000\r\n"
            "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"
            f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20261124T080000Z\r\n"
            f"DTSTART;TZID=Europe/Berlin:{first}T090000\r\nDTEND;TZID=Europe/Berlin:{first}T100000\r\n"
            f"RRULE:FREQ=WEEKLY\r\nSUMMARY:{summary}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")


def test_a_booking_is_named_as_the_cause_at_the_calendars_local_time(bridge: Bridge) -> None:
    calendar = _practice(bridge)
    with bridge.api(bridge.add_token("A")) as engine:
        booked = engine.post("/bookings", headers={"Idempotency-Key": "k1"}, json={
            "calendar": calendar, "start": "2026-12-07T09:30:00Z", "end": "2026-12-07T10:00:00Z",
            "customer": {"name": "Erika Mustermann", "email": "erika@example.com", "language": "de"},
            "notes": "Wurzelbehandlung"})
        assert booked.status_code == 201, booked.text
    with sign_in(bridge, "anna") as anna:
        answer = _ask(anna, calendar, "2026-12-07", "10:45")  # 10:45 in Berlin is 09:45 UTC
        assert answer.status_code == 200
        assert "Belegt." in answer.text and "Buchung" in answer.text
        assert booked.json()["id"] in answer.text
        assert "07.12.2026 10:30 – 07.12.2026 11:00" in answer.text  # the whole booking, in Berlin time
        assert "Erika" not in answer.text and "Wurzelbehandlung" not in answer.text
        assert "Frei:" in _ask(anna, calendar, "2026-12-07", "11:00").text  # it ends at 11:00 Berlin time


def test_a_weekly_series_is_busy_on_its_third_occurrence_after_the_clocks_change_and_free_an_hour_later(
        bridge: Bridge) -> None:
    calendar = _practice(bridge)
    with bridge.client("anna") as dav:
        assert dav.put(CAL + "jour-fixe.ics", content=_series("jour-fixe", "20260316", "Jour fixe")).status_code == 201
    with sign_in(bridge, "anna") as anna:
        third = _ask(anna, calendar, "2026-03-30", "09:15")  # summer time since 29 March: 07:15 UTC
        assert third.status_code == 200
        assert "Termin aus einem Kalenderprogramm (CalDAV)" in third.text
        assert "30.03.2026 09:00 – 30.03.2026 10:00" in third.text
        assert "Jour fixe" not in third.text
        later = _ask(anna, calendar, "2026-03-30", "10:15")
        assert later.status_code == 200 and "Frei:" in later.text and "Termin aus" not in later.text
        assert "Frei:" in _ask(anna, calendar, "2026-03-30", "08:00", minutes=60).text  # ends as it starts


def test_a_mirrored_event_names_its_provider_and_connection_but_not_its_content(bridge: Bridge) -> None:
    calendar = _practice(bridge)
    ics = icalendar.Calendar.from_ical(
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Google Inc//Google Calendar 70.9054//EN\r\n"
        "BEGIN:VEVENT\r\nUID:evt-1@google.com\r\nDTSTAMP:20261124T080000Z\r\n"
        "DTSTART:20261207T130000Z\r\nDTEND:20261207T140000Z\r\nSUMMARY:Arzt Dr. Geheim\r\n"
        "DESCRIPTION:Blutabnahme\r\nLOCATION:Praxis Geheim\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
    with bridge.store.write() as session:
        row = session.get(Calendar, calendar)
        owner = users.user_by_login(session, "anna")
        assert row is not None and owner is not None
        connection = connections.create_connection(session, row, "google")
        connections.set_account(session, connection, server_url="https://www.googleapis.com",
                                remote_calendar="anna@example.org", remote_name="Anna privat")
        item = mirror.store_remote(session, connection, row, owner, ics, "r1", MONDAY)
        assert item is not None
        connection_id, item_id = connection.id, item.id
    with bridge.store.read() as session:  # the content is stored (the rules keep it by default) ...
        stored = session.get(Item, item_id)
        assert stored is not None and "Geheim" in stored.text
    with sign_in(bridge, "anna") as anna:
        answer = _ask(anna, calendar, "2026-12-07", "14:30")
        assert answer.status_code == 200
        assert "Verbindung" in answer.text and "Google" in answer.text and "Anna privat" in answer.text
        assert f'href="/admin/connections/{connection_id}"' in answer.text
        assert "07.12.2026 14:00 – 07.12.2026 15:00" in answer.text
        for private in ("Geheim", "Blutabnahme", "Arzt"):  # ... but the page does not show it
            assert private not in answer.text


def test_a_free_slot_is_said_to_be_free(bridge: Bridge) -> None:
    calendar = _practice(bridge)
    with sign_in(bridge, "anna") as anna:
        empty = anna.get("/busy")  # the form, the calendar chosen, nothing asked yet
        assert empty.status_code == 200 and "Warum ist dieser Termin belegt?" in empty.text
        assert f'<option value="{calendar}" selected>' in empty.text and "Frei:" not in empty.text
        answer = _ask(anna, calendar, "2026-12-07", "09:00", minutes=120)
        assert answer.status_code == 200
        assert "Frei: In dieser Zeit ist nichts eingetragen" in answer.text and "Belegt." not in answer.text
        assert "07.12.2026 09:00 – 07.12.2026 11:00 (Europe/Berlin)" in answer.text


def test_bad_input_is_answered_with_400_and_a_german_message(bridge: Bridge) -> None:
    calendar = _practice(bridge)
    with sign_in(bridge, "anna") as anna:
        answer = _ask(anna, calendar, "2026-13-40", "10:00")
        assert answer.status_code == 400
        assert "Bitte geben Sie ein gültiges Datum an (JJJJ-MM-TT)." in answer.text
        assert 'value="2026-13-40"' in answer.text  # the form is shown again as entered
        for day, time, minutes, message in (
                ("2026-12-07", "25:00", 30, "gültige Uhrzeit"), ("2026-12-07", "10:00", 3, "zwischen 5 und 1440"),
                ("2026-03-29", "02:30", 30, "Die Uhr wird dann vorgestellt")):
            wrong = _ask(anna, calendar, day, time, minutes)
            assert wrong.status_code == 400 and message in wrong.text, (day, time, minutes)


def test_another_tenants_calendar_and_a_colleagues_are_404(bridge: Bridge) -> None:
    calendar = _practice(bridge)
    bridge.add_user("A", "bea")
    bridge.add_user("A", "carl")
    bridge.add_calendar("bea", "bea-termine")
    bridge.add_calendar("carl", "carl-termine")
    bridge.add_user("B", "bert", role="admin")
    bridge.add_calendar("bert", "salon-geheim")
    theirs = bridge.calendar_id("bert", "salon-geheim")
    mine, colleagues = bridge.calendar_id("bea", "bea-termine"), bridge.calendar_id("carl", "carl-termine")
    with sign_in(bridge, "anna") as anna:
        answer = _ask(anna, theirs, "2026-12-07", "10:00")
        assert answer.status_code == 404 and "salon-geheim" not in answer.text
        assert anna.get("/busy", params={"calendar": theirs}).status_code == 404
        assert "salon-geheim" not in anna.get("/busy").text
        assert _ask(anna, colleagues, "2026-12-07", "10:00").status_code == 200  # the admin sees the tenant's
    with sign_in(bridge, "bea") as bea:
        assert _ask(bea, colleagues, "2026-12-07", "10:00").status_code == 404
        assert _ask(bea, calendar, "2026-12-07", "10:00").status_code == 404
        assert _ask(bea, mine, "2026-12-07", "10:00").status_code == 200
        listing = bea.get("/busy").text
        assert "bea-termine" in listing and "carl-termine" not in listing and "praxis" not in listing
