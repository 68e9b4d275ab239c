"""What the engine keeps between runs beside the adapter's state: enough to skip a quiet run's plan.

A run whose fetch reports nothing (an incremental delta with no change and no deletion) still had to
plan, because something may have changed *here*: a booking, a client's PUT. The calendar's change
counter says whether anything did (every item write bumps it, DESIGN.md), so the checkpoint keeps the
counter as read when the last complete plan was made, with the direction it planned for. A quiet run
whose calendar counter still equals it has nothing to do but save the adapter's new state. The plan
is made anyway once an hour, because the sync window rolls: a booking far ahead enters it with time,
not with a write.

Stored in ``connection.sync_state`` as JSON; a value that is not a checkpoint is an adapter state from
before checkpoints (or written by hand), and simply means "plan".
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

REPLAN_AFTER = timedelta(hours=1)
_MARK = "calbridge-checkpoint"


@dataclass(frozen=True)
class Checkpoint:
    adapter_state: str | None
    local_counter: int | None = None  # the calendar's change counter when the last complete plan was made
    direction: str | None = None
    planned_at: datetime | None = None

    def allows_skip(self, counter: int, direction: str, now: datetime) -> bool:
        """Whether a run that fetched nothing may skip planning (module docstring)."""
        return (self.local_counter == counter and self.direction == direction and self.planned_at is not None
                and now - self.planned_at < REPLAN_AFTER)


def decode(text: str | None) -> Checkpoint:
    if text is None:
        return Checkpoint(None)
    try:
        data = json.loads(text)
    except ValueError:
        return Checkpoint(text)
    if not isinstance(data, dict) or data.get("k") != _MARK:
        return Checkpoint(text)
    try:
        planned = datetime.fromisoformat(data["p"]) if data.get("p") else None
        counter = data.get("n")
        return Checkpoint(data.get("a"), counter if isinstance(counter, int) else None, data.get("d"), planned)
    except (TypeError, ValueError):
        return Checkpoint(data.get("a") if isinstance(data.get("a"), str) else None)


def encode(checkpoint: Checkpoint) -> str | None:
    if checkpoint.adapter_state is None:
        return None  # no state: the next run is a baseline, whatever else was known
    return json.dumps({"k": _MARK, "a": checkpoint.adapter_state, "n": checkpoint.local_counter,
                       "d": checkpoint.direction,
                       "p": checkpoint.planned_at.isoformat() if checkpoint.planned_at else None},
                      separators=(",", ":"), sort_keys=True)
