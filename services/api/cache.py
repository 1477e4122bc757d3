"""Whole-store counts, kept for a few seconds per API process.

They read summary rows, not the tables they count (`count_works`, the listing totals: the 16
`works_count` counters since migration 014; `source_summary`, the sources pages: sources x 16
counters since migration 016, a row a source in SQLite), but status pages are requested often
and a busy deployment need not read them on every request. Each figure is recomputed at most
once per ALM_STATUS_CACHE_SECONDS (default 30; 0 = always exact) and shared by concurrent
requests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from time import monotonic
from typing import Any

from services.core.ports import Store


class TotalsCache:
    """A few seconds' memory of the store's whole-table counts (a TTL cache per name)."""

    def __init__(self, max_age: float) -> None:
        self.max_age = max_age
        self._kept: dict[str, tuple[float, Any]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def get(self, name: str, compute: Callable[[], Awaitable[Any]]) -> Any:
        """The figure `name`, recomputed by `compute` when older than `max_age`."""
        if self.max_age <= 0:
            return await compute()
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:  # one computation at a time; the others wait and share it
            kept = self._kept.get(name)
            if kept is not None and monotonic() - kept[0] < self.max_age:
                return kept[1]
            value = await compute()
            self._kept[name] = (monotonic(), value)
            return value

    async def works_total(self, store: Store) -> int:
        """How many works `store` has registered (at most `max_age` old)."""
        return int(await self.get("works", store.count_works))

    async def source_summary(self, store: Store) -> dict[str, dict[str, int]]:
        """Per source: works with a state and works whose last attempt failed (same age)."""
        summary: dict[str, dict[str, int]] = await self.get("sources", store.source_summary)
        return summary
