"""SQLite adapter of the per-source status counts (services/core/summary.py): the table
`source_summary`, a row per source, moved by the aggregator's transitions in its transaction
(`write_summary`: exact, the states and their counts commit together) and read whole: one row a
source, not one a state. `recount_summary` rebuilds it from the states (`alm db
recount-summary`; the migration that made the table filled it the same way)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from services.adapters.sqlite.connection import SqliteFile
from services.core.aggregation import Aggregate
from services.core.summary import Counts, add, by_source, corrections, summary_changes

# the counts of the states themselves: one pass over `source_totals` (for a recount only)
RECOUNT = (
    "SELECT source, count(*), coalesce(sum(json_extract(state, '$.status') = 'error'), 0)"
    " FROM source_totals GROUP BY source"
)
ADD = (
    "INSERT INTO source_summary VALUES (?,?,?) ON CONFLICT (source) DO UPDATE"
    " SET works = works + excluded.works, errors = errors + excluded.errors"
)


def write_summary(conn: sqlite3.Connection, items: Sequence[Aggregate]) -> None:
    """Add the transitions of `items` to their sources' rows (in `conn`'s transaction)."""
    sums: dict[str, Counts] = {}
    for change in summary_changes(items):
        add(sums, change.source, change.works, change.errors)
    conn.executemany(ADD, [(source, w, e) for source, (w, e) in sums.items()])


class SqliteSummary(SqliteFile):
    """The per-source status counts in the embedded store's file."""

    async def source_summary(self) -> dict[str, dict[str, int]]:
        """Per source: works with a state, works whose last attempt failed (a row a source)."""

        def read(conn: sqlite3.Connection) -> dict[str, dict[str, int]]:
            return by_source(conn.execute("SELECT source, works, errors FROM source_summary"))

        return await self.run(read)

    async def recount_summary(self) -> dict[str, dict[str, int]]:
        """Make the rows the counts of the states (one transaction: exact); what was added."""

        def recount(conn: sqlite3.Connection) -> dict[str, dict[str, int]]:
            truth = {s: (int(w), int(e)) for s, w, e in conn.execute(RECOUNT)}
            kept = {
                s: (int(w), int(e))
                for s, w, e in conn.execute("SELECT source, works, errors FROM source_summary")
            }
            fixes = corrections(truth, kept)
            conn.executemany(ADD, [(s, w, e) for s, (w, e) in fixes.items()])
            return by_source((s, w, e) for s, (w, e) in fixes.items())

        return await self.run(recount)
