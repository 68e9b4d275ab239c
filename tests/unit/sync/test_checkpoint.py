"""The engine's checkpoint: it round-trips, and anything else in sync_state is an adapter's own state."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bridge.sync.checkpoint import REPLAN_AFTER, Checkpoint, decode, encode

NOW = datetime(2026, 11, 24, 8, tzinfo=UTC)


def test_round_trip_and_skip_rule() -> None:
    saved = decode(encode(Checkpoint('{"v":1,"t":"tok"}', 41, "both", NOW)))
    assert saved == Checkpoint('{"v":1,"t":"tok"}', 41, "both", NOW)
    assert saved.allows_skip(41, "both", NOW + timedelta(minutes=5))
    assert not saved.allows_skip(42, "both", NOW)  # something was written here
    assert not saved.allows_skip(41, "outbound", NOW)  # the direction changed
    assert not saved.allows_skip(41, "both", NOW + REPLAN_AFTER)  # the window rolled


def test_an_adapter_state_from_before_checkpoints_is_kept_and_means_plan() -> None:
    for raw in ('{"v":1,"t":"tok"}', "not json", '["x"]'):
        saved = decode(raw)
        assert saved.adapter_state == raw and not saved.allows_skip(0, "both", NOW)
    assert decode(None) == Checkpoint(None)
    assert encode(Checkpoint(None, 3, "both", NOW)) is None
