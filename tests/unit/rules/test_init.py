"""The package's public API, its import boundary, and the purity of every per-event rule."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import bridge.rules
from bridge.rules import EVENT_RULES, ConnectionOptions, Rule
from tests.unit.rules._ics import TIMED, event

PUBLIC = {
    "EVENT_RULES", "ConnectionOptions", "Markers", "Rule", "View", "apply_allday", "apply_location",
    "apply_personal_data", "apply_private", "apply_rules", "apply_status", "apply_timezone", "apply_transparency",
    "apply_view", "hashed_uid", "ingest", "is_all_day", "normalize_timezones", "read_markers", "view_event",
}


def test_exported_members() -> None:
    assert set(bridge.rules.__all__) == PUBLIC
    assert all(hasattr(bridge.rules, name) for name in PUBLIC)


@pytest.mark.parametrize("path", sorted(Path(bridge.rules.__file__).parent.glob("*.py")), ids=lambda p: p.name)
def test_imports_only_icalendar_and_the_stdlib(path: Path) -> None:
    """rules stay pure: no I/O libraries, no other calbridge package but the leaf iCalendar core (bridge.ical)."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            allowed = (top in sys.stdlib_module_names or top == "icalendar" or name.startswith("bridge.rules")
                       or name.startswith("bridge.ical"))
            assert allowed and top not in ("logging", "os", "socket", "time"), f"{path.name} imports {name}"


EVERYTHING = ConnectionOptions(
    transparent_as_busy=True, allday_as_busy=True, anonymize_location=True, no_personal_data=True, uid_salt=b"x"
)


@pytest.mark.parametrize("rule", EVENT_RULES, ids=lambda r: r.__name__)
@pytest.mark.parametrize("options", [ConnectionOptions(), EVERYTHING], ids=["defaults", "all-on"])
def test_every_rule_returns_a_new_event_and_leaves_its_input(rule: Rule, options: ConnectionOptions) -> None:
    source = event(f"{TIMED}\nSUMMARY:Lunch\nLOCATION:Canteen\nCLASS:PRIVATE\nTRANSP:TRANSPARENT")
    before = source.to_ical()
    result = rule(source, options)
    assert result is not source
    assert source.to_ical() == before
