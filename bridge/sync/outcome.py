"""What one sync run tells the scheduler: how it ended and what the provider asked for.

The engine (:mod:`bridge.sync.engine`) returns it; the schedule
(:mod:`bridge.sync.backoff`) turns it into the connection's next due time, its
failure count and its needs-attention mark. It holds no event content.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeAlias

RunStatus: TypeAlias = Literal["ok", "partial", "held", "failed"]
"""ok: everything applied; partial: some items failed and are listed in the log, or were skipped because
they changed here while the run was going (the state is not saved: the next run tries them again);
held: deletions held back (fail closed), the rest applied; failed: nothing or not all applied
because the connection itself failed (authentication, network, provider)."""


@dataclass(frozen=True)
class RunOutcome:
    run_id: int
    status: RunStatus
    error_class: str | None = None  # the AdapterError subclass' name, or another exception's
    retry_after: float | None = None  # seconds the provider asked to wait (429 / 503 Retry-After)
    auth_failed: bool = False  # credentials refused or revoked: no retries until the owner acts
