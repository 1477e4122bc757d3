"""The failed-refresh listing in Cassandra (services/core/failed_refreshes.py, migration 013).

Two tables, one partition per source: `failed_refreshes` by work id (the truth: one row per
(work, source) whose state is an error) and `failed_refreshes_by_time`, newest first. The
aggregator's first write round puts the rows of states that end a batch in an error and deletes
those of states that recovered or failed again later (`failure_writes`; the state row comes in
the next round, so a redone batch writes the same rows). A page reads at most `limit` rows of
each source's partition after the cursor and merges them: O(sources x limit), never every state.
A time-ordered row whose time the truth no longer holds (a batch cut short before it deleted
it) is skipped and deleted when a listing meets it.
"""

from __future__ import annotations

from collections.abc import Sequence

from services.adapters.cassandra.keyspace import Keyspace
from services.adapters.cassandra.rows import dt_required, position, us
from services.adapters.cassandra.session import Call, Row
from services.core.aggregation import Aggregate
from services.core.failed_refreshes import (
    FailedRefresh,
    FailureCursor,
    FailureOrder,
    FailureQuery,
    cursor_of,
    failure_changes,
    in_order,
)

_TIME = "SELECT failed_at, work_id, error FROM failed_refreshes_by_time WHERE source=?"
_WORK = "SELECT work_id, failed_at, error FROM failed_refreshes WHERE source=?"
STATEMENTS: dict[str, str] = {
    "failed_put": "INSERT INTO failed_refreshes (source, work_id, failed_at, error)"
    " VALUES (?,?,?,?)",
    "failed_del": "DELETE FROM failed_refreshes WHERE source=? AND work_id=?",
    "failed_time_put": "INSERT INTO failed_refreshes_by_time (source, failed_at, work_id, error)"
    " VALUES (?,?,?,?)",
    "failed_time_del": "DELETE FROM failed_refreshes_by_time WHERE source=? AND failed_at=?"
    " AND work_id=?",
    "failed_sources": "SELECT DISTINCT source FROM failed_refreshes",
    "failed_time": _TIME + " LIMIT ?",
    "failed_time_lt": _TIME + " AND (failed_at, work_id) < (?, ?) LIMIT ?",
    "failed_time_le": _TIME + " AND (failed_at, work_id) <= (?, ?) LIMIT ?",
    "failed_work": _WORK + " LIMIT ?",
    "failed_work_gt": _WORK + " AND work_id > ? LIMIT ?",
    "failed_work_ge": _WORK + " AND work_id >= ? LIMIT ?",
    "failed_of": "SELECT work_id, failed_at FROM failed_refreshes WHERE source=? AND work_id IN ?",
}
MAX_ROUNDS = 20  # pages of stale time-ordered rows skipped before a short page is returned


def failure_writes(items: Sequence[Aggregate]) -> list[Call]:
    """The listing's writes for a batch of aggregates (with the first round, before states)."""
    changes = failure_changes(items)
    out: list[Call] = [("failed_del", (s, w)) for w, s in changes.recovered]
    out += [("failed_time_del", (s, us(at), w)) for w, s, at in changes.replaced]
    for f in changes.put:
        out.append(("failed_put", (f.source, f.work_id, us(f.failed_at), f.error)))
        out.append(("failed_time_put", (f.source, us(f.failed_at), f.work_id, f.error)))
    return out


class CassandraFailed:
    """Reads of the failed-refresh listing."""

    def __init__(self, keyspace: Keyspace) -> None:
        self._ks = keyspace
        keyspace.add(STATEMENTS)

    async def failed_refreshes(self, query: FailureQuery) -> list[FailedRefresh]:
        """A page of the listing, each row with its due attempt."""
        cql = await self._ks.ready()
        if query.source is not None:
            sources = [query.source]
        else:
            sources = sorted(r.source for r in await cql.run("failed_sources", ()))
        out: list[FailedRefresh] = []
        after = query.after
        for _ in range(MAX_ROUNDS):
            need = query.limit - len(out)
            page = await self._merged(sources, query.order, after, need)
            out += await self._current(page) if query.order is FailureOrder.NEWEST else page
            if len(page) < need or len(out) >= query.limit:
                break  # the listing's end, or a full page
            after = cursor_of(page[-1], query.order)
        return await self._with_attempts(out[: query.limit])

    async def _merged(
        self, sources: list[str], order: FailureOrder, after: FailureCursor | None, limit: int
    ) -> list[FailedRefresh]:
        """The first `limit` rows after `after` over every source's partition, in order."""
        cql = await self._ks.ready()
        calls = [_slice(source, order, after, limit) for source in sources]
        pages = await cql.run_many(calls)
        rows = [
            _failure(source, row)
            for source, page in zip(sources, pages, strict=True)
            for row in page
        ]
        return in_order(rows, order)[:limit]

    async def _current(self, page: list[FailedRefresh]) -> list[FailedRefresh]:
        """The time-ordered rows whose time is still their work's failure; the others are
        deleted (a batch cut short between its writes left them)."""
        cql = await self._ks.ready()
        by_source: dict[str, list[str]] = {}
        for f in page:
            by_source.setdefault(f.source, []).append(f.work_id)
        reads = [("failed_of", (s, ids)) for s, ids in by_source.items()]
        truth = {
            (s, r.work_id): int(r.failed_at)
            for s, rows in zip(by_source, await cql.run_many(reads), strict=True)
            for r in rows
        }
        stale = [f for f in page if truth.get((f.source, f.work_id)) != us(f.failed_at)]
        await cql.run_many(
            ("failed_time_del", (f.source, us(f.failed_at), f.work_id)) for f in stale
        )
        return [f for f in page if f not in stale]

    async def _with_attempts(self, page: list[FailedRefresh]) -> list[FailedRefresh]:
        """The rows with their due entries' attempts (one `IN` read of the page's works)."""
        if not page:
            return page
        rows = await self._ks.read_in("states_of", "states_in", sorted({f.work_id for f in page}))
        attempts = {(r.work_id, r.source): position(r) for r in rows}
        out = []
        for f in page:
            found = attempts.get((f.work_id, f.source))
            out.append(FailedRefresh(f.work_id, f.source, f.failed_at, f.error, found and found[1]))
        return out


def _slice(source: str, order: FailureOrder, after: FailureCursor | None, limit: int) -> Call:
    """The read of `source`'s partition after `after` in the listing's order (ties between
    sources: work id, then source, both descending newest first, ascending by work)."""
    if order is FailureOrder.WORK:
        if after is None:
            return ("failed_work", (source, limit))
        name = "failed_work_ge" if source > after.source else "failed_work_gt"
        return (name, (source, after.work_id, limit))
    if after is None or after.failed_at is None:
        return ("failed_time", (source, limit))
    name = "failed_time_le" if source < after.source else "failed_time_lt"
    return (name, (source, us(after.failed_at), after.work_id, limit))


def _failure(source: str, row: Row) -> FailedRefresh:
    return FailedRefresh(row.work_id, source, dt_required(int(row.failed_at)), row.error or "")
