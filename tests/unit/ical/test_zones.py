"""bridge.ical.zones: every resource's times come from its own definitions (the module's rules 1-4)."""

from __future__ import annotations

import ast
import concurrent.futures
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from icalendar.timezone import tzp

import bridge.ical
from bridge.ical import zones
from bridge.ical.zones import parse_calendar


def resource(tzid: str, offset: str, uid: str = "u", extra: str = "") -> str:
    return (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\n"
        f"BEGIN:VTIMEZONE\r\nTZID:{tzid}\r\nBEGIN:STANDARD\r\nDTSTART:19700101T000000\r\n"
        f"TZOFFSETFROM:{offset}\r\nTZOFFSETTO:{offset}\r\nEND:STANDARD\r\nEND:VTIMEZONE\r\n"
        f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTAMP:20261201T000000Z\r\nDTSTART;TZID={tzid}:20261208T090000\r\n"
        f"DTEND;TZID={tzid}:20261208T100000\r\nRRULE:FREQ=DAILY;COUNT=3\r\n"
        f"EXDATE;TZID={tzid}:20261209T090000\r\nRDATE;TZID={tzid}:20261220T090000\r\n{extra}"
        "END:VEVENT\r\nEND:VCALENDAR\r\n"
    )


def start_utc(text: str) -> datetime:
    return parse_calendar(text).walk("VEVENT")[0]["DTSTART"].dt.astimezone(UTC)


def test_the_same_custom_name_means_each_resource_s_own_definition_in_any_order() -> None:
    for _ in range(2):
        assert start_utc(resource("Customized Time Zone", "+1400")) == datetime(2026, 12, 7, 19, tzinfo=UTC)
        assert start_utc(resource("Customized Time Zone", "+0100")) == datetime(2026, 12, 8, 8, tzinfo=UTC)


def test_lists_and_recurrence_ids_are_bound_too() -> None:
    event = parse_calendar(resource("Office", "+0300")).walk("VEVENT")[0]
    assert event["EXDATE"].dts[0].dt.utcoffset() == timedelta(hours=3)
    assert event["RDATE"].dts[0].dt.utcoffset() == timedelta(hours=3)


def test_an_iana_name_is_zoneinfo_s_zone_whatever_the_vtimezone_says() -> None:
    assert start_utc(resource("Europe/Berlin", "+1400")) == datetime(2026, 12, 8, 8, tzinfo=UTC)


def test_a_windows_name_is_the_cldr_zone_whatever_the_vtimezone_says() -> None:
    assert start_utc(resource("W. Europe Standard Time", "+1400")) == datetime(2026, 12, 8, 8, tzinfo=UTC)


def test_a_globally_unique_name_without_definition_is_its_iana_tail() -> None:
    text = resource("Unused", "+0500").replace("TZID=Unused", "TZID=/mozilla.org/20050126_1/America/New_York")
    assert start_utc(text) == datetime(2026, 12, 8, 14, tzinfo=UTC)


def test_a_broken_or_missing_definition_leaves_the_time_floating() -> None:
    text = resource("Broken", "+0100")
    broken = text.replace(text[text.index("BEGIN:STANDARD"):text.index("END:VTIMEZONE")], "")  # no rules at all
    missing = resource("Defined", "+0100").replace("TZID=Defined", "TZID=Nowhere")
    for text in (broken, missing):
        assert parse_calendar(text).walk("VEVENT")[0]["DTSTART"].dt == datetime(2026, 12, 8, 9)


def test_a_new_zone_name_on_every_resource_does_not_grow_memory() -> None:
    table = tzp._TZP__tz_cache  # type: ignore[attr-defined]
    before = len(table)
    for n in range(zones.DEFINITION_CACHE_SIZE + zones.NAME_CACHE_SIZE + 50):
        parse_calendar(resource(f"Zone {n}", f"+{n % 12:02d}00", extra=f"X-N:{n}\r\n"))
        parse_calendar(resource(f"/vendor{n}/Europe/Berlin", "+0100"))
    assert len(table) == before
    assert zones._cached_zone.cache_info().currsize <= zones.DEFINITION_CACHE_SIZE
    assert zones._cached_named_zone.cache_info().currsize <= zones.NAME_CACHE_SIZE


def test_parallel_parses_of_clashing_definitions_never_mix() -> None:
    texts = {"+1400": resource("Clash", "+1400"), "+0100": resource("Clash", "+0100")}
    expected = {"+1400": datetime(2026, 12, 7, 19, tzinfo=UTC), "+0100": datetime(2026, 12, 8, 8, tzinfo=UTC)}
    jobs = [key for _ in range(200) for key in texts]
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        found = list(pool.map(lambda key: (key, start_utc(texts[key])), jobs))
    assert all(moment == expected[key] for key, moment in found)


def test_serialising_keeps_the_resource_s_own_name_and_definition() -> None:
    text = parse_calendar(resource("Office", "+0300")).to_ical().decode()
    assert "DTSTART;TZID=Office:20261208T090000" in text and "TZOFFSETTO:+0300" in text


@pytest.mark.parametrize("path", sorted(Path(bridge.ical.__file__).parent.glob("*.py")), ids=lambda p: p.name)
def test_the_core_is_a_leaf(path: Path) -> None:
    """store, rules and adapters all import it, so it imports none of them."""
    for node in ast.walk(ast.parse(path.read_text())):
        names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                 else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
        for name in names:
            top = name.split(".")[0]
            assert top in sys.stdlib_module_names or top in ("icalendar", "vobject", "dateutil") \
                or name.startswith("bridge.ical"), f"{path.name} imports {name}"


def test_radicale_s_reader_vobject_also_reads_each_resource_s_own_definition() -> None:
    import vobject

    for offset, hours in (("+1400", 14), ("+0100", 1), ("+1400", 14)):
        read = vobject.readOne(resource("Customized Time Zone", offset))
        assert read.vevent.dtstart.value.utcoffset() == timedelta(hours=hours)
