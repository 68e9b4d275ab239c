"""The schedule after a run, as a connection's owner notices it: when the next attempt comes, and whether."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from bridge.store.models import Connection
from bridge.sync import backoff
from bridge.sync.outcome import RunOutcome, RunStatus

NOW = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
SEEDS = range(50)  # each check holds for every draw of the jitter, the extremes included by FixedDraw


class FixedDraw(random.Random):
    """A jitter source that always draws the same value (0 = no jitter, just under 1 = the most)."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = value

    def random(self) -> float:
        return self.value


def rngs() -> list[random.Random]:
    return [FixedDraw(0.0), FixedDraw(0.999999), *(random.Random(seed) for seed in SEEDS)]


def connection(interval: int = 300, failures: int = 0, needs_attention: bool = False) -> Connection:
    return Connection(interval_seconds=interval, failures=failures, needs_attention=needs_attention,
                      next_due_at=None)


def ended(status: RunStatus, *, error_class: str | None = None, retry_after: float | None = None,
          auth_failed: bool = False) -> RunOutcome:
    return RunOutcome(run_id=1, status=status, error_class=error_class, retry_after=retry_after,
                      auth_failed=auth_failed)


def wait(row: Connection) -> float:
    assert row.next_due_at is not None
    return (row.next_due_at - NOW).total_seconds()


@pytest.mark.parametrize("status", ["ok", "partial", "held"])
def test_a_run_that_applied_something_resets_failures_and_comes_back_after_the_interval(status: RunStatus) -> None:
    for rng in rngs():
        row = connection(failures=4)
        backoff.reschedule(row, ended(status), NOW, rng=rng)
        assert row.failures == 0 and not row.needs_attention
        assert 300 <= wait(row) <= 330


def test_jitter_spreads_connections_that_finished_together() -> None:
    rng = random.Random(7)
    rows = [connection() for _ in range(20)]
    for row in rows:
        backoff.reschedule(row, ended("ok"), NOW, rng=rng)
    assert len({row.next_due_at for row in rows}) == 20


def test_a_429_with_retry_after_120_is_not_retried_before_120_seconds() -> None:
    for rng in rngs():
        row = connection()
        backoff.reschedule(row, ended("failed", error_class="RateLimited", retry_after=120), NOW, rng=rng)
        assert 120 <= wait(row) <= 132
        assert row.failures == 1 and not row.needs_attention


def test_retry_after_is_honoured_even_when_longer_than_the_back_off() -> None:
    row = connection(interval=60)
    backoff.reschedule(row, ended("failed", retry_after=3600), NOW, rng=FixedDraw(0.0))
    assert wait(row) == 3600


@pytest.mark.parametrize("retry_after", [0, 0.5, -5, float("nan")])
def test_a_tiny_or_nonsensical_retry_after_cannot_cause_a_retry_storm(retry_after: float) -> None:
    row = connection()
    backoff.reschedule(row, ended("failed", retry_after=retry_after), NOW, rng=FixedDraw(0.0))
    assert wait(row) == backoff.MIN_DELAY_SECONDS


def test_an_absurd_retry_after_is_asked_again_after_a_day() -> None:
    for retry_after in (10 * 86400, float("inf")):
        row = connection()
        backoff.reschedule(row, ended("failed", retry_after=retry_after), NOW, rng=FixedDraw(0.0))
        assert wait(row) == backoff.MAX_RETRY_AFTER_SECONDS


def test_a_wrong_password_stops_retries_after_one_failed_run() -> None:
    row = connection()
    backoff.reschedule(row, ended("failed", error_class="AuthExpired", auth_failed=True), NOW)
    assert row.needs_attention and row.failures == 1
    # Never NULL: NULL would mean "due now". The scheduler skips the row on needs_attention alone.
    assert row.next_due_at is not None and row.next_due_at > NOW


def test_refused_credentials_win_over_a_retry_after() -> None:
    row = connection()
    backoff.reschedule(row, ended("failed", auth_failed=True, retry_after=30), NOW)
    assert row.needs_attention


def test_an_ordinary_failure_does_not_clear_a_needs_attention_mark_but_success_does() -> None:
    row = connection(failures=1, needs_attention=True)
    backoff.reschedule(row, ended("failed", error_class="Transient"), NOW)
    assert row.needs_attention and row.failures == 2
    backoff.reschedule(row, ended("ok"), NOW)
    assert not row.needs_attention and row.failures == 0


def test_back_off_doubles_per_failure_and_is_capped_at_six_hours() -> None:
    for rng in rngs():
        row = connection(interval=300)
        waits = []
        for _ in range(12):
            backoff.reschedule(row, ended("failed", error_class="Transient"), NOW, rng=rng)
            waits.append(wait(row))
        assert row.failures == 12
        assert 270 <= waits[0] <= 300  # the first retry comes about when the next run would have
        uncapped = [w for w in waits if w < 0.9 * backoff.MAX_BACKOFF_SECONDS]
        assert uncapped == sorted(uncapped) and len(set(uncapped)) == len(uncapped)
        assert all(w <= backoff.MAX_BACKOFF_SECONDS for w in waits)
        assert all(w >= 0.9 * backoff.MAX_BACKOFF_SECONDS for w in waits[7:])  # 300 s * 2**7 > 6 h


def test_back_off_never_retries_sooner_than_a_long_interval() -> None:
    row = connection(interval=86400)
    backoff.reschedule(row, ended("failed"), NOW, rng=FixedDraw(0.0))
    assert wait(row) == 86400


def test_a_thousand_failures_do_not_overflow() -> None:
    row = connection(failures=1000)
    backoff.reschedule(row, ended("failed"), NOW, rng=FixedDraw(0.0))
    assert wait(row) == backoff.MAX_BACKOFF_SECONDS


def test_a_success_after_failures_brings_back_the_normal_rhythm() -> None:
    row = connection(failures=0)
    for _ in range(5):
        backoff.reschedule(row, ended("failed"), NOW)
    backoff.reschedule(row, ended("ok"), NOW, rng=FixedDraw(0.0))
    assert (row.failures, wait(row)) == (0, 300)
    backoff.reschedule(row, ended("failed"), NOW, rng=FixedDraw(0.0))
    assert wait(row) == 300  # the back-off starts over


def test_a_zero_interval_setting_still_waits_a_little() -> None:
    row = connection(interval=0)
    backoff.reschedule(row, ended("ok"), NOW, rng=FixedDraw(0.0))
    assert wait(row) == backoff.MIN_DELAY_SECONDS


def test_clear_attention_makes_the_connection_due_now() -> None:
    row = connection()
    backoff.reschedule(row, ended("failed", auth_failed=True), NOW)
    backoff.clear_attention(row)
    assert (row.needs_attention, row.failures, row.next_due_at) == (False, 0, None)


def test_now_must_be_aware() -> None:
    with pytest.raises(ValueError):
        backoff.reschedule(connection(), ended("ok"), NOW.replace(tzinfo=None))

