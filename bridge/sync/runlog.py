"""The sync log: one row per run, with counts and errors a person can read and no personal data.

Counts are grouped by side: ``in`` (what the external calendar changed here: mirrored events
created, updated, deleted, dropped by the rules), ``out`` (what we wrote there), ``bookings``
(moved or cancelled from the external calendar), plus conflicts, held deletions, item errors and
actions skipped because their item changed here while the run was going (``skipped_stale``).
An item error names the action and the error class only: summaries, addresses and remote ids
(which may be file names a person chose) never reach the log.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import SQLAlchemyError

from bridge.store.db import Store
from bridge.store.models import SyncRun

log = logging.getLogger(__name__)
MAX_ERRORS = 20
MAX_HELD = 200
PROGRESS_INTERVAL = 1.0  # seconds between two progress writes of one run


@dataclass
class RunLog:
    """What one run did, filled while it runs and written once at its end."""

    counts: Counter[str] = field(default_factory=Counter)
    errors: list[dict[str, str]] = field(default_factory=list)
    held: list[dict[str, str]] = field(default_factory=list)
    stale: list[dict[str, str]] = field(default_factory=list)
    fetched: int = 0
    remote_deleted: int = 0
    token_invalid: bool = False

    def count(self, key: str, amount: int = 1) -> None:
        self.counts[key] += amount

    def item_error(self, action: str, error: BaseException) -> None:
        self.counts["errors"] += 1
        if len(self.errors) < MAX_ERRORS:
            self.errors.append({"action": action, "error": type(error).__name__})

    def skip_stale(self, action: str) -> None:
        """An action skipped because its item or booking changed here after the plan (named by kind only)."""
        self.counts["skipped_stale"] += 1
        if len(self.stale) < MAX_ERRORS:
            self.stale.append({"action": action})

    def hold(self, action: str, item_href: str) -> None:
        """A deletion held back; the item's href is ours (a hash or a booking id), never a remote name."""
        self.counts["held"] += 1
        if len(self.held) < MAX_HELD:
            self.held.append({"action": action, "item_href": item_href})

    def to_json(self) -> str:
        data: dict[str, Any] = {"fetched": self.fetched, "remote_deleted": self.remote_deleted}
        for key, value in sorted(self.counts.items()):
            side, _, kind = key.partition(".")
            if kind:
                data.setdefault(side, {})[kind] = value
            else:
                data[key] = value
        if self.errors:
            data["item_errors"] = self.errors
        if self.held:
            data["held_deletions"] = self.held
        if self.stale:
            data["stale_actions"] = self.stale
        if self.token_invalid:
            data["token_invalid"] = True
        return json.dumps(data, sort_keys=True, separators=(",", ":"))


def progress_recorder(store: Store, connection_id: int) -> Callable[[int, int], None]:
    """A progress callback (the engine's ``progress``) that keeps (done, total) on the connection's running row
    (there is one at a time: the run holds the connection's lease), at most once a second and only once the run
    has taken a second, so that the log page shows how far a long run has come and a short one costs no write;
    the run's final counts replace it."""
    last = [time.monotonic()]

    def record(done: int, total: int) -> None:
        moment = time.monotonic()
        if moment - last[0] < PROGRESS_INTERVAL:
            return
        last[0] = moment
        try:
            with store.write() as session:
                session.execute(update(SyncRun)
                                .where(SyncRun.connection_id == connection_id, SyncRun.status == "running")
                                .values(counts=json.dumps({"progress": {"done": done, "total": total}}))
                                .execution_options(synchronize_session=False))
        except SQLAlchemyError as exc:  # a busy database: the bar stands still a moment, the run goes on
            log.warning("progress of connection %s not kept: %s", connection_id, type(exc).__name__)

    return record
