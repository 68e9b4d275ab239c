"""When a connection runs next, decided from how its last sync run ended. Pure: no I/O, no clock.

The engine calls :func:`reschedule` on the connection row inside the run's last transaction;
:mod:`bridge.sync.scheduler` only reads the result. The row's scheduling columns mean:

- ``next_due_at``: the earliest time the scheduler may start the next run; NULL means due now.
- ``failures``: consecutive failed runs (the exponent of the back-off, and what an admin sees).
- ``needs_attention``: the provider refused the credentials. Retrying cannot help and may lock the
  owner's account, so :func:`bridge.sync.scheduler.claim` never picks such a row, whatever its
  ``next_due_at`` says (that keeps the time the failed run would have been retried, for display
  only). Only :func:`clear_attention` (the owner re-entered credentials) or a successful manual run
  takes the mark away.

Jitter only ever delays: a successful run is repeated no sooner than the connection's interval and
a Retry-After is honoured in full, yet connections scheduled together drift apart. Back-off jitter
shortens instead (by up to 10 %), so that the cap holds and capped connections still spread out.
"""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta

from bridge.store.models import Connection
from bridge.sync.outcome import RunOutcome

JITTER = 0.1
MIN_DELAY_SECONDS = 30  # the shortest wait after any run, whatever a provider or a setting says
MAX_BACKOFF_SECONDS = 6 * 3600
MAX_RETRY_AFTER_SECONDS = 24 * 3600  # a longer Retry-After is taken as this: asking again then is cheap


def reschedule(connection: Connection, outcome: RunOutcome, now: datetime, *, rng: random.Random | None = None) -> None:
    """Set ``next_due_at``, ``failures`` and ``needs_attention`` on the row after a run ended at ``now``."""
    _check_aware(now)
    draw = rng.random() if rng is not None else random.random()
    if outcome.status != "failed":
        connection.failures = 0
        connection.needs_attention = False
        connection.next_due_at = now + _seconds(_interval(connection) * (1 + JITTER * draw))
    elif outcome.auth_failed:
        connection.failures = (connection.failures or 0) + 1
        connection.needs_attention = True
        connection.next_due_at = now + _seconds(_interval(connection))
    elif outcome.retry_after is not None:
        connection.failures = (connection.failures or 0) + 1
        wait = _retry_after(outcome.retry_after)
        connection.next_due_at = now + _seconds(wait * (1 + JITTER * draw))
    else:
        record_failure(connection, now, rng=rng)
    if connection.push_pending and outcome.status != "failed":  # a notice came in during the run
        connection.next_due_at = now


def record_failure(connection: Connection, now: datetime, *, rng: random.Random | None = None) -> None:
    """A failed run that told nothing more (no Retry-After, credentials not refused), or a run that
    crashed before it could reschedule: one more failure, exponential back-off with jitter."""
    _check_aware(now)
    draw = rng.random() if rng is not None else random.random()
    connection.failures = (connection.failures or 0) + 1
    connection.next_due_at = now + _seconds(backoff_seconds(connection) * (1 - JITTER * draw))


def backoff_seconds(connection: Connection) -> float:
    """The back-off after ``connection.failures`` failed runs, before jitter: the interval doubled
    per failure after the first, capped at :data:`MAX_BACKOFF_SECONDS` (or at the interval when that
    is longer: failing never makes a connection run more often than succeeding)."""
    exponent = min(max((connection.failures or 0) - 1, 0), 32)  # 2**32 intervals exceed any cap
    return float(min(_interval(connection) * 2**exponent, max(MAX_BACKOFF_SECONDS, _interval(connection))))


def clear_attention(connection: Connection) -> None:
    """The owner acted (new credentials): forget the failures and make the connection due now."""
    connection.needs_attention = False
    connection.failures = 0
    connection.next_due_at = None


def _interval(connection: Connection) -> int:
    interval = connection.interval_seconds if connection.interval_seconds is not None else 300
    return max(interval, MIN_DELAY_SECONDS)


def _retry_after(seconds: float) -> float:
    if not math.isfinite(seconds):
        return MAX_RETRY_AFTER_SECONDS if seconds > 0 else MIN_DELAY_SECONDS
    return min(max(seconds, MIN_DELAY_SECONDS), MAX_RETRY_AFTER_SECONDS)


def _seconds(seconds: float) -> timedelta:
    # Whole milliseconds: a due time never lands a rounding error before the delay it stands for.
    return timedelta(milliseconds=math.ceil(seconds * 1000))


def _check_aware(now: datetime) -> None:
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError("now must be an aware datetime")
