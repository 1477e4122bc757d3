"""The failed-refresh listing in Cassandra (services/core/failed_refreshes.py, migration 015).

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
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from services.adapters.cassandra.rows import dt_required, position, us
from services.adapters.cassandra.session import Call, CqlSession, Row
from services.core.aggregation import Aggregate
from services.core.events import Status
from services.core.failed_refreshes import (
    FailedRefresh,
    FailureCursor,
    FailureOrder,
    FailureQuery,
    cursor_of,
    failure_changes,
    in_order,
)

_TIME = (
    "SELECT failed_at, work_id, error, WRITETIME(error) AS wt FROM failed_refreshes_by_time"
    " WHERE source=?"
)
_WORK = (
    "SELECT work_id, failed_at, error, WRITETIME(error) AS wt FROM failed_refreshes WHERE source=?"
)
_STATE = (
    "SELECT work_id, source, status, error, last_attempt_at, due_at, due_attempt,"
    " WRITETIME(status) AS wt FROM source_totals"
)
STATEMENTS: dict[str, str] = {
    "failed_put": "INSERT INTO failed_refreshes (source, work_id, failed_at, error)"
    " VALUES (?,?,?,?)",
    "failed_del": "DELETE FROM failed_refreshes WHERE source=? AND work_id=?",
    "failed_time_put": "INSERT INTO failed_refreshes_by_time (source, failed_at, work_id, error)"
    " VALUES (?,?,?,?)",
    "failed_time_del": "DELETE FROM failed_refreshes_by_time WHERE source=? AND failed_at=?"
    " AND work_id=?",
    "failed_sources": "SELECT DISTINCT source FROM failed_refreshes",
    "failed_fix_put": "INSERT INTO failed_refreshes (source, work_id, failed_at, error)"
    " VALUES (?,?,?,?) USING TIMESTAMP ?",
    "failed_fix_del": "DELETE FROM failed_refreshes USING TIMESTAMP ? WHERE source=? AND work_id=?",
    "failed_time_fix_put": "INSERT INTO failed_refreshes_by_time"
    " (source, failed_at, work_id, error) VALUES (?,?,?,?) USING TIMESTAMP ?",
    "failed_time_fix_del": "DELETE FROM failed_refreshes_by_time USING TIMESTAMP ?"
    " WHERE source=? AND failed_at=? AND work_id=?",
    "failed_state_of": _STATE + " WHERE work_id=?",
    "failed_states_in": _STATE + " WHERE work_id IN ?",
    "failed_time": _TIME + " LIMIT ?",
    "failed_time_lt": _TIME + " AND (failed_at, work_id) < (?, ?) LIMIT ?",
    "failed_time_le": _TIME + " AND (failed_at, work_id) <= (?, ?) LIMIT ?",
    "failed_work": _WORK + " LIMIT ?",
    "failed_work_gt": _WORK + " AND work_id > ? LIMIT ?",
    "failed_work_ge": _WORK + " AND work_id >= ? LIMIT ?",
}
MIGRATION = 15  # 015_failed_refreshes.cql, then `backfill`
MAX_ROUNDS = 20  # pages of stale time-ordered rows skipped before a short page is returned


def failure_writes(items: Sequence[Aggregate]) -> list[Call]:
    """The listing's writes for a batch of aggregates (with the first round, before states)."""
    changes = failure_changes(items)
    out: list[Call] = [("failed_del", (s, w)) for w, s in changes.recovered]
    out += [("failed_time_del", (s, us(at), w)) for w, s, at in changes.replaced]
    for f in changes.put:
        out += _puts(f)
    return out


def _puts(f: FailedRefresh) -> list[Call]:
    return [
        ("failed_put", (f.source, f.work_id, us(f.failed_at), f.error)),
        ("failed_time_put", (f.source, us(f.failed_at), f.work_id, f.error)),
    ]


if TYPE_CHECKING:  # keyspace.py imports migrations.py, which imports this module's backfill
    from services.adapters.cassandra.keyspace import Keyspace


async def backfill(cql: CqlSession) -> None:
    """Migration 015: the listing's rows of every state that is an error, written with the
    state's write time (a state changed meanwhile wins; a rerun writes the same rows)."""
    await cql.prepare({**STATEMENTS, "failed_states_all": _STATE})
    async for rows in cql.pages(cql.stmt("failed_states_all"), (), fetch_size=5000):
        calls: list[Call] = []
        for r in rows:
            if r.status == Status.ERROR.value and r.last_attempt_at is not None and r.wt:
                at = dt_required(int(r.last_attempt_at))
                calls += _fixes(FailedRefresh(r.work_id, r.source, at, r.error or ""), int(r.wt))
        await cql.run_many(cql.batches(calls))


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
            out += await self._checked(page, query.order)
            if len(page) < need or len(out) >= query.limit:
                break  # the listing's end, or a full page
            after = cursor_of(page[-1].failure, query.order)
        return out[: query.limit]

    async def _merged(
        self, sources: list[str], order: FailureOrder, after: FailureCursor | None, limit: int
    ) -> list[Found]:
        """The first `limit` rows after `after` over every source's partition, in order."""
        cql = await self._ks.ready()
        calls = [_slice(source, order, after, limit) for source in sources]
        pages = await cql.run_many(calls)
        found = {
            (source, row.work_id, int(row.failed_at)): _found(source, row)
            for source, page in zip(sources, pages, strict=True)
            for row in page
        }
        ordered = in_order([f.failure for f in found.values()], order)[:limit]
        return [found[(f.source, f.work_id, us(f.failed_at))] for f in ordered]

    async def _checked(self, page: list[Found], order: FailureOrder) -> list[FailedRefresh]:
        """The rows of `page` their states hold, with the due entries' attempts (one batched
        read of the page's works). A row of a failure its state has moved on from (a batch cut
        short between its writes, or a state a process older than migration 015 changed) is
        not listed and is repaired: deleted, and written at the state's failure if it has one
        (listed in place when the order is by work). The repairs carry the write times of
        what they were read from, so a newer write (an aggregator's, in flight) wins over
        them; a row newer than its state (the state's write still to come) is skipped."""
        if not page:
            return []
        ids = sorted({f.failure.work_id for f in page})
        rows = await self._ks.read_in("failed_state_of", "failed_states_in", ids)
        states = {(r.work_id, r.source): r for r in rows}
        out: list[FailedRefresh] = []
        repairs: list[Call] = []
        for found in page:
            f, at = found.failure, us(found.failure.failed_at)
            row = states.get((f.work_id, f.source))
            if row is None or row.last_attempt_at is None or int(row.last_attempt_at) < at:
                continue  # its state is still to be written
            due = position(row)
            failing = row.status == Status.ERROR.value
            if failing and int(row.last_attempt_at) == at:
                out.append(replace(f, error=row.error or f.error, attempt=due and due[1]))
                continue
            if order is FailureOrder.NEWEST:
                repairs.append(("failed_time_fix_del", (found.written, f.source, at, f.work_id)))
            else:
                repairs.append(("failed_fix_del", (found.written, f.source, f.work_id)))
            if failing and row.wt is not None:
                now = dt_required(int(row.last_attempt_at))
                current = FailedRefresh(f.work_id, f.source, now, row.error or "", due and due[1])
                repairs += _fixes(current, int(row.wt))
                if order is FailureOrder.WORK:
                    out.append(current)
        if repairs:
            cql = await self._ks.ready()
            await cql.run_many(repairs)
        return out


@dataclass(frozen=True, slots=True)
class Found:
    """A listing row as read, with the write time of its cells."""

    failure: FailedRefresh
    written: int


def _fixes(f: FailedRefresh, written: int) -> list[Call]:
    at = us(f.failed_at)
    return [
        ("failed_fix_put", (f.source, f.work_id, at, f.error, written)),
        ("failed_time_fix_put", (f.source, at, f.work_id, f.error, written)),
    ]


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


def _found(source: str, row: Row) -> Found:
    at = dt_required(int(row.failed_at))
    return Found(FailedRefresh(row.work_id, source, at, row.error or ""), int(row.wt or 0))
