"""Failed refreshes: the (work, source) pairs whose last refresh failed, as operators list them
(`GET /admin/failures`, `GET /api/v1/failures`). Pure: no store, no clock.

A store keeps one listing row per (work, source) whose state's status is an error, written with
the state by the aggregator and removed when the state recovers (`failure_changes` says which
rows a batch of aggregates puts and deletes; every write is idempotent, so a batch redone after
a crash writes the same rows). The listing is read a page at a time in one of two orders:

- `newest`: by failure time, newest first (then work id and source, descending);
- `work`: by work id, then source.

A cursor is the last row's key in that order; the next page starts after it (keyset paging: the
last page costs what the first does).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Protocol

from services.core.aggregation import Aggregate
from services.core.events import Status
from services.core.timeutil import to_iso


class FailureOrder(StrEnum):
    """The two orders of the listing."""

    NEWEST = "newest"
    WORK = "work"


@dataclass(frozen=True, slots=True)
class FailedRefresh:
    """A work whose last refresh from `source` failed at `failed_at` with `error`; `attempt`:
    the next attempt's number in the due index (failed tries since the last success + 1; None
    when the work has no due entry from that source)."""

    work_id: str
    source: str
    failed_at: datetime
    error: str
    attempt: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "work_id": self.work_id,
            "source": self.source,
            "failed_at": to_iso(self.failed_at),
            "error": self.error,
            "attempt": self.attempt,
        }


@dataclass(frozen=True, slots=True)
class FailureCursor:
    """A position in the listing: the key of the last row of a page."""

    failed_at: datetime | None  # set in the `newest` order
    work_id: str
    source: str


@dataclass(frozen=True, slots=True)
class FailureQuery:
    """Up to `limit` failures (of `source` only, if set) in `order`, after `after`."""

    order: FailureOrder = FailureOrder.NEWEST
    source: str | None = None
    limit: int = 100
    after: FailureCursor | None = None


def in_order(rows: Sequence[FailedRefresh], order: FailureOrder) -> list[FailedRefresh]:
    """`rows` sorted in the listing's `order`."""
    if order is FailureOrder.WORK:
        return sorted(rows, key=lambda f: (f.work_id, f.source))
    return sorted(rows, key=lambda f: (f.failed_at, f.work_id, f.source), reverse=True)


def cursor_of(failure: FailedRefresh, order: FailureOrder) -> FailureCursor:
    """The cursor standing for `failure` in `order`."""
    at = failure.failed_at if order is FailureOrder.NEWEST else None
    return FailureCursor(at, failure.work_id, failure.source)


@dataclass(frozen=True, slots=True)
class FailureChanges:
    """What a batch of aggregates does to the listing: the rows to put (the final failure of
    each (work, source) that ends in an error), the (work, source) pairs that recovered (no
    row any more), and the failure times replaced (work, source, time) whose time-ordered
    rows are deleted. A time being put is never among the deleted."""

    put: list[FailedRefresh]
    recovered: list[tuple[str, str]]
    replaced: list[tuple[str, str, datetime]]


def failure_changes(items: Sequence[Aggregate]) -> FailureChanges:
    """The net effect of `items` (in order, several per key possible) on the listing."""
    final: dict[tuple[str, str], FailedRefresh | None] = {}
    seen: dict[tuple[str, str], set[datetime]] = {}
    for item in items:
        if not item.applied:
            continue
        st = item.state
        key = (st.work_id, st.source)
        times = seen.setdefault(key, set())
        if item.failed_before is not None:
            times.add(item.failed_before)
        if st.status is Status.ERROR and st.last_attempt_at is not None:
            failure = FailedRefresh(st.work_id, st.source, st.last_attempt_at, st.error or "")
            final[key] = failure
            times.add(failure.failed_at)
        elif item.failed_before is not None or key in final:
            final[key] = None
    put = [f for f in final.values() if f is not None]
    recovered = [k for k, f in final.items() if f is None]
    replaced = []
    for key, times in seen.items():
        kept = final.get(key)
        for at in sorted(times):
            if kept is None or at != kept.failed_at:
                replaced.append((*key, at))
    return FailureChanges(put, recovered, replaced)


class FailedRefreshes(Protocol):
    """The listing of failed refreshes (the store writes it with the states)."""

    async def failed_refreshes(self, query: FailureQuery) -> list[FailedRefresh]:
        """Up to `query.limit` failures matching `query`, in its order, after its cursor, each
        with its due entry's attempt. Bounded: reads O(limit) rows per source, never every
        state."""
        ...
