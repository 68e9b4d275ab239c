"""Which alert the end of a run calls for: only a transition into a state mails, never its repetition."""

from __future__ import annotations

import pytest

from bridge.store.models import Connection
from bridge.sync.alerting import FAILING_AFTER, Before, alert_kind

CASES = [
    # (before, after: needs_attention, failures; status; previous run's status) -> kind
    (Before(False, 0), (True, 1), "failed", "ok", "alert_auth"),
    (Before(True, 1), (True, 2), "failed", "failed", None),  # refused again: mailed already
    (Before(False, FAILING_AFTER - 1), (False, FAILING_AFTER), "failed", "failed", "alert_failing"),
    (Before(False, FAILING_AFTER), (False, FAILING_AFTER + 1), "failed", "failed", None),
    (Before(False, 0), (False, 1), "failed", "ok", None),  # one failure is normal
    (Before(False, FAILING_AFTER - 1), (True, FAILING_AFTER), "failed", "failed", "alert_auth"),
    (Before(False, 0), (False, 0), "held", "ok", "alert_held"),
    (Before(False, 0), (False, 0), "held", None, "alert_held"),  # the first run is held
    (Before(False, 0), (False, 0), "held", "held", None),
    (Before(False, 5), (False, 0), "ok", "failed", None),  # recovered: nothing to tell
]


@pytest.mark.parametrize(("before", "after", "status", "previous", "expected"), CASES)
def test_only_entering_a_state_calls_for_an_alert(before: Before, after: tuple[bool, int], status: str,
                                                  previous: str | None, expected: str | None) -> None:
    connection = Connection(needs_attention=after[0], failures=after[1])
    assert alert_kind(before, connection, status, previous) == expected
