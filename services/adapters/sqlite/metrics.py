"""SQLite adapter of the MetricState and MetricStore ports: per-source states (`source_totals`,
one JSON state a row), daily history and deduplicated events; the aggregator's writes store the
next due entries, the failed-refresh listing (failed.py) and the per-source status counts
(summary.py) in the same transaction."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping, Sequence
from datetime import date

from services.adapters.sqlite.connection import SqliteFile
from services.adapters.sqlite.due import put_due_rows
from services.adapters.sqlite.failed import write_failures
from services.adapters.sqlite.summary import write_summary
from services.core.aggregation import Aggregate, HistoryPoint, SourceState
from services.core.events import SourceEvent
from services.core.ports import DueEntry, Handoff


class SqliteMetrics(SqliteFile):
    """States, history and events in the embedded store's file."""

    async def states(
        self, keys: Sequence[tuple[str, str]], handoff: Handoff | None = None
    ) -> dict[tuple[str, str], SourceState]:
        """The stored state of each (work id, source) that has one (no handoff needed)."""

        def read(conn: sqlite3.Connection) -> dict[tuple[str, str], SourceState]:
            out = {}
            for work_id, source in keys:
                row = conn.execute(
                    "SELECT state FROM source_totals WHERE work_id=? AND source=?",
                    (work_id, source),
                ).fetchone()
                if row:
                    out[(work_id, source)] = SourceState.from_dict(json.loads(row[0]))
            return out

        return await self.run(read)

    async def states_for(self, work_ids: Sequence[str]) -> dict[str, list[SourceState]]:
        """Every source's state for each of `work_ids`."""

        def read(conn: sqlite3.Connection) -> dict[str, list[SourceState]]:
            out: dict[str, list[SourceState]] = {w: [] for w in work_ids}
            for work_id in work_ids:
                for (raw,) in conn.execute(
                    "SELECT state FROM source_totals WHERE work_id=? ORDER BY source", (work_id,)
                ):
                    out[work_id].append(SourceState.from_dict(json.loads(raw)))
            return out

        return await self.run(read)

    async def write_aggregates(
        self,
        items: Sequence[Aggregate],
        due: Mapping[str, Sequence[DueEntry]] | None = None,
        handoff: Handoff | None = None,
    ) -> None:
        """Persist states, history points and events of applied aggregates, and the next due
        times in `due`, in one transaction."""

        def write(conn: sqlite3.Connection) -> None:
            for source, entries in (due or {}).items():
                put_due_rows(conn, source, entries)
            for item in items:
                if not item.applied:
                    continue
                st = item.state
                conn.execute(
                    "INSERT OR REPLACE INTO source_totals VALUES (?,?,?)",
                    (st.work_id, st.source, json.dumps(st.to_dict())),
                )
                conn.execute(
                    "DELETE FROM leaderboard WHERE work_id=? AND source=?", (st.work_id, st.source)
                )
                conn.executemany(
                    "INSERT INTO leaderboard VALUES (?,?,?,?)",
                    [
                        (st.work_id, st.source, m, int(v))
                        for m, v in st.metrics.items()
                        if v is not None
                    ],
                )
                if item.history is not None:
                    h = item.history
                    conn.execute(
                        "INSERT OR REPLACE INTO source_history VALUES (?,?,?,?)",
                        (h.work_id, h.source, h.day.isoformat(), json.dumps(h.metrics)),
                    )
                conn.executemany(
                    "INSERT OR REPLACE INTO source_events VALUES (?,?,?,?)",
                    [
                        (st.work_id, st.source, e.event_id, json.dumps(e.to_dict()))
                        for e in item.events
                    ],
                )
            write_failures(conn, items)
            write_summary(conn, items)

        await self.run(write)

    async def history(self, work_id: str, source: str | None) -> list[HistoryPoint]:
        """Daily snapshots of a work (one source or all), oldest first."""

        def read(conn: sqlite3.Connection) -> list[HistoryPoint]:
            sql = "SELECT work_id, source, day, metrics FROM source_history WHERE work_id=?"
            args: tuple[str, ...] = (work_id,)
            if source:
                sql += " AND source=?"
                args += (source,)
            rows = conn.execute(sql + " ORDER BY source, day", args)
            return [HistoryPoint(w, s, date.fromisoformat(d), json.loads(m)) for w, s, d, m in rows]

        return await self.run(read)

    async def history_of(self, work_id: str, sources: Sequence[str]) -> list[HistoryPoint]:
        """Daily snapshots of a work from each of `sources`, by source, oldest first."""
        asked = list(dict.fromkeys(sources))

        def read(conn: sqlite3.Connection) -> list[HistoryPoint]:
            marks = ",".join("?" * len(asked))
            rows = conn.execute(
                "SELECT work_id, source, day, metrics FROM source_history WHERE work_id=?"
                f" AND source IN ({marks}) ORDER BY source, day",
                (work_id, *asked),
            )
            return [HistoryPoint(w, s, date.fromisoformat(d), json.loads(m)) for w, s, d, m in rows]

        return await self.run(read) if asked else []

    async def events(self, work_id: str, source: str) -> list[SourceEvent]:
        """The deduplicated events of a work from one source."""

        def read(conn: sqlite3.Connection) -> list[SourceEvent]:
            rows = conn.execute(
                "SELECT event FROM source_events WHERE work_id=? AND source=? ORDER BY event_id",
                (work_id, source),
            )
            return [SourceEvent.from_dict(json.loads(r[0])) for r in rows]

        return await self.run(read)

    async def events_by_source(
        self, work_id: str, sources: Sequence[str]
    ) -> dict[str, list[SourceEvent]]:
        """The deduplicated events of a work from each of `sources`, in one query."""
        asked = list(dict.fromkeys(sources))

        def read(conn: sqlite3.Connection) -> dict[str, list[SourceEvent]]:
            out: dict[str, list[SourceEvent]] = {s: [] for s in asked}
            marks = ",".join("?" * len(asked))
            rows = conn.execute(
                "SELECT source, event FROM source_events WHERE work_id=?"
                f" AND source IN ({marks}) ORDER BY source, event_id",
                (work_id, *asked),
            )
            for source, event in rows:
                out[source].append(SourceEvent.from_dict(json.loads(event)))
            return out

        return await self.run(read) if asked else {}

    async def top_works(
        self, source: str, metric: str, limit: int, after: tuple[int, str] | None = None
    ) -> list[tuple[str, int]]:
        """The works with the highest value of `metric` from `source`, after the (value,
        work id) `after` in board order: the rest of `after`'s tie, then the lower values,
        each one range of the board's index (no offset, no scan of a long tie)."""

        def read(conn: sqlite3.Connection) -> list[tuple[str, int]]:
            sql = "SELECT work_id, value FROM leaderboard WHERE source=? AND metric=?"
            if after is None:
                rows = conn.execute(
                    sql + " ORDER BY value DESC, work_id LIMIT ?", (source, metric, limit)
                ).fetchall()
            else:
                value, work_id = after
                rows = conn.execute(
                    sql + " AND value=? AND work_id>? ORDER BY work_id LIMIT ?",
                    (source, metric, value, work_id, limit),
                ).fetchall()
                if len(rows) < limit:
                    rows += conn.execute(
                        sql + " AND value<? ORDER BY value DESC, work_id LIMIT ?",
                        (source, metric, value, limit - len(rows)),
                    ).fetchall()
            return [(w, int(v)) for w, v in rows]

        return await self.run(read)
