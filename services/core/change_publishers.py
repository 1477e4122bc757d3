"""The publisher of the work a change concerns, for filtering by publisher.

Changes published since revision 1.1 of the event carry `publisher`; for older ones still on the
topic it is looked up in the works registry, one batched read per batch of changes, and kept in
a bounded cache (no per-work state grows with the works: DESIGN.md, invariant 7).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

from services.core.ports import WorkStore

CACHE_SIZE = 10_000


class PublisherLookup:
    """Publishers of changes, from the event or the registry (bounded LRU cache)."""

    def __init__(self, works: WorkStore, size: int = CACHE_SIZE) -> None:
        self._works = works
        self._size = size
        self._cache: OrderedDict[str, str | None] = OrderedDict()

    async def resolve(self, changes: Sequence[Mapping[str, Any]]) -> list[str | None]:
        """The publisher of each change's work, in order."""
        missing = sorted(
            {
                str(c.get("work_id"))
                for c in changes
                if "publisher" not in c and c.get("work_id") not in self._cache
            }
        )
        looked: dict[str, str | None] = {}
        if missing:
            found = await self._works.get_works(missing)
            for work_id in missing:
                work = found.get(work_id)
                looked[work_id] = work.publisher if work is not None else None
                self._remember(work_id, looked[work_id])
        out = []
        for change in changes:
            if "publisher" in change:
                publisher = change["publisher"]
                out.append(publisher if isinstance(publisher, str) else None)
                continue
            work_id = str(change.get("work_id"))
            if work_id in looked:
                out.append(looked[work_id])
            else:
                out.append(self._cache.get(work_id))
                if work_id in self._cache:
                    self._cache.move_to_end(work_id)
        return out

    def _remember(self, work_id: str, publisher: str | None) -> None:
        self._cache[work_id] = publisher
        self._cache.move_to_end(work_id)
        while len(self._cache) > self._size:
            self._cache.popitem(last=False)
