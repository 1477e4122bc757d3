"""Metric state, history, events and leaderboards in Cassandra (the MetricStore port, less
the raw responses: raw.py).

Aggregates: history points, events and leaderboard rows are written first and the state row
last, so a crash in between is repaired by the redelivered observation (the state, which
decides whether an observation is new, is only stored once everything else is). The state rows
carry each work's new due position (due.py's `write_rounds`), read by `states` into the
caller's Handoff so the write needs no read of its own.

Batching: the driver's per-request CPU is what limits a Python writer, so the aggregator's
reads are `IN` queries over up to 50 partitions of one replica set, and its writes go as
UNLOGGED batches grouped by replica set (`CqlSession.batches`). History, events, leaderboard
and failed-refresh rows (failed.py) go in one round, the state rows in the next, so the state
is still stored last. Upserts only, every write can be retried; but for the per-source counts
(summary.py), counters added after the states, which a recount repairs.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from services.adapters.cassandra.due import CassandraDue
from services.adapters.cassandra.failed import failure_writes
from services.adapters.cassandra.keyspace import Keyspace
from services.adapters.cassandra.rows import SHARDS, day, position, shard, state
from services.adapters.cassandra.session import Call
from services.adapters.cassandra.summary import summary_writes
from services.core.aggregation import Aggregate, HistoryPoint, SourceState
from services.core.events import SourceEvent
from services.core.ports import DueEntry, Handoff

STATEMENTS: dict[str, str] = {
    "states_of": "SELECT * FROM source_totals WHERE work_id=?",
    "states_in": "SELECT * FROM source_totals WHERE work_id IN ?",
    "history_put": "INSERT INTO source_history (work_id, source, day, metrics) VALUES (?,?,?,?)",
    "history_get": "SELECT day, metrics FROM source_history WHERE work_id=? AND source=?",
    "event_put": "INSERT INTO source_events (work_id, source, event_id, event) VALUES (?,?,?,?)",
    "history_in": "SELECT source, day, metrics FROM source_history WHERE work_id=? AND source IN ?",
    "events_get": "SELECT event FROM source_events WHERE work_id=? AND source=?",
    "events_in": "SELECT source, event FROM source_events WHERE work_id=? AND source IN ?",
    "board_put": "INSERT INTO leaderboard (source, metric, shard, value, work_id)"
    " VALUES (?,?,?,?,?)",
    "board_del": "DELETE FROM leaderboard WHERE source=? AND metric=? AND shard=? AND value=?"
    " AND work_id=?",
    "board_top": "SELECT value, work_id FROM leaderboard WHERE source=? AND metric=? AND shard=?"
    " LIMIT ?",
    # a keyset page after (value, work id): the ties after the work id, then the lower values
    "board_tie": "SELECT value, work_id FROM leaderboard WHERE source=? AND metric=? AND shard=?"
    " AND value=? AND work_id>? LIMIT ?",
    "board_below": "SELECT value, work_id FROM leaderboard WHERE source=? AND metric=?"
    " AND shard=? AND value<? LIMIT ?",
}


class CassandraMetrics:
    """Per-(work, source) state, its daily history, its events, and the leaderboards."""

    def __init__(self, keyspace: Keyspace, due: CassandraDue) -> None:
        self._ks = keyspace
        self._due = due
        keyspace.add(STATEMENTS)

    async def states(
        self, keys: Sequence[tuple[str, str]], handoff: Handoff | None = None
    ) -> dict[tuple[str, str], SourceState]:
        """The stored state of each (work id, source) that has one; with `handoff`, the due
        position of every key (None: no entry) for `write_aggregates`."""
        wanted = set(keys)
        rows = await self._ks.read_in("states_of", "states_in", [w for w, _ in keys])
        found = {(r.work_id, r.source): r for r in rows if (r.work_id, r.source) in wanted}
        if handoff is not None:
            handoff.positions.update({k: position(found.get(k)) for k in wanted})
        return {k: state(r) for k, r in found.items() if r.status}

    async def states_for(self, work_ids: Sequence[str]) -> dict[str, list[SourceState]]:
        """Every source's state for each of `work_ids`."""
        out: dict[str, list[SourceState]] = {w: [] for w in work_ids}
        for row in await self._ks.read_in("states_of", "states_in", work_ids):
            if row.status:  # not a row holding only a due position
                out[row.work_id].append(state(row))
        return out

    async def write_aggregates(
        self,
        items: Sequence[Aggregate],
        due: Mapping[str, Sequence[DueEntry]] | None = None,
        handoff: Handoff | None = None,
    ) -> None:
        """Persist applied aggregates: history, events, leaderboard and new due rows first,
        then the states (with their due positions), then the replaced due rows' deletion and
        the per-source counters (summary.py)."""
        applied = [item for item in items if item.applied]
        first: dict[tuple[Any, ...], Call] = {}  # by primary key: the last write of a row wins
        for item in applied:
            st = item.state
            if item.history is not None:
                h = item.history
                history = (h.work_id, h.source, h.day, dict(h.metrics))
                first[("h", h.work_id, h.source, h.day)] = ("history_put", history)
            for e in item.events:
                event = (st.work_id, st.source, e.event_id, json.dumps(e.to_dict()))
                first[("e", st.work_id, st.source, e.event_id)] = ("event_put", event)
        final = {(i.state.work_id, i.state.source): i.state for i in applied}
        writes = [*first.values(), *_leaderboard_writes(applied), *failure_writes(applied)]
        await self._due.write_rounds(writes, final, due or {}, handoff)
        # the per-source counts' transitions, once the states are stored (summary.py)
        await (await self._ks.ready()).run_many(summary_writes(applied))

    async def history(self, work_id: str, source: str | None) -> list[HistoryPoint]:
        """Daily snapshots of a work (one source or all), oldest first."""
        cql = await self._ks.ready()
        if source:
            sources = [source]
        else:
            rows = await cql.run("states_of", (work_id,))
            sources = sorted(r.source for r in rows if r.status)
        return await self.history_of(work_id, sources)

    async def history_of(self, work_id: str, sources: Sequence[str]) -> list[HistoryPoint]:
        """Daily snapshots of a work from each of `sources` (one partition each), by source,
        oldest first: one `IN` read per replica set."""
        asked = sorted(set(sources))
        by_source: dict[str, list[HistoryPoint]] = {s: [] for s in asked}
        for r in await self._ks.read_in("history_get", "history_in", asked, work_id):
            point = HistoryPoint(
                work_id, r.source, day(r.day), {k: int(v) for k, v in r.metrics.items()}
            )
            by_source[r.source].append(point)
        return [p for s in asked for p in by_source[s]]

    async def events(self, work_id: str, source: str) -> list[SourceEvent]:
        """The deduplicated events of a work from one source."""
        rows = await (await self._ks.ready()).run("events_get", (work_id, source))
        return [SourceEvent.from_dict(json.loads(r.event)) for r in rows]

    async def events_by_source(
        self, work_id: str, sources: Sequence[str]
    ) -> dict[str, list[SourceEvent]]:
        """The deduplicated events of a work from each of `sources`: one partition each,
        read by one `IN` request per replica set."""
        out: dict[str, list[SourceEvent]] = {s: [] for s in sources}
        if not out:
            return {}
        for r in await self._ks.read_in("events_get", "events_in", list(out), work_id):
            out[r.source].append(SourceEvent.from_dict(json.loads(r.event)))
        return out

    async def top_works(
        self, source: str, metric: str, limit: int, after: tuple[int, str] | None = None
    ) -> list[tuple[str, int]]:
        """The works with the highest value of `metric` from `source`, after the (value, work
        id) `after` in board order: every shard's next `limit` rows (each a clustering-order
        slice), merged; `limit` rows a shard at most, so a page costs the same at any depth."""
        cql = await self._ks.ready()
        calls: list[Call]
        if after is None:
            calls = [("board_top", (source, metric, s, limit)) for s in range(SHARDS)]
        else:
            value, work_id = after
            calls = [
                call
                for s in range(SHARDS)
                for call in (
                    ("board_tie", (source, metric, s, value, work_id, limit)),
                    ("board_below", (source, metric, s, value, limit)),
                )
            ]
        pages = await cql.run_many(calls)
        rows = sorted((-int(r.value), r.work_id) for page in pages for r in page)[:limit]
        return [(work_id, -neg) for neg, work_id in rows]


def _leaderboard_writes(applied: Sequence[Aggregate]) -> list[Call]:
    """Insert each work's final values; delete values it held before (previous or in between)."""
    seen: dict[tuple[str, str], set[tuple[str, int]]] = {}
    final: dict[tuple[str, str], dict[str, int]] = {}
    for item in applied:
        if item.changed is None and item.history is None:
            continue  # an error, or the same totals again: the board already holds them
        key = (item.state.work_id, item.state.source)
        held = seen.setdefault(key, set())
        if item.changed is not None:
            held.update(item.changed.previous.items())
        held.update(item.state.metrics.items())
        final[key] = dict(item.state.metrics)
    out: list[Call] = []
    for (work_id, source), metrics in final.items():
        board = shard(work_id)
        for metric, value in seen[(work_id, source)] - set(metrics.items()):
            out.append(("board_del", (source, metric, board, value, work_id)))
        for metric, value in metrics.items():
            out.append(("board_put", (source, metric, board, value, work_id)))
    return out
