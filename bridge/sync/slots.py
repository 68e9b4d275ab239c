"""Per-provider concurrency: at most ``provider_concurrency`` runs of one provider talk to it at once in a
process, so a burst of due connections (a restart, a worker catching up) stays within what the provider's
rate limits allow, whatever the worker's own concurrency."""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class ProviderSlots:
    """One bounded semaphore per provider, made on first use."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("a provider needs at least one slot")
        self.limit = limit
        self._lock = threading.Lock()
        self._semaphores: dict[str, threading.BoundedSemaphore] = {}

    @contextmanager
    def slot(self, provider: str) -> Iterator[None]:
        """Wait for a free slot of ``provider`` and hold it for the block."""
        with self._lock:
            semaphore = self._semaphores.setdefault(provider, threading.BoundedSemaphore(self.limit))
        with semaphore:
            yield


@functools.cache
def process_slots(limit: int) -> ProviderSlots:
    """The slots every engine of this process shares (engines are cheap and made per request)."""
    return ProviderSlots(limit)
