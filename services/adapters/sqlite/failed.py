"""SQLite adapter of the failed-refresh listing (services/core/failed_refreshes.py): the table
`failed_refreshes`, a row per (work, source) whose state is an error, written in the
aggregator's transaction (`write_failures`) and read a page at a time through its indexes, with
each row's due attempt (`failed_refreshes`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from services.adapters.sqlite.connection import SqliteFile, sortable
from services.core.aggregation import Aggregate
from services.core.failed_refreshes import (
    FailedRefresh,
    FailureOrder,
    FailureQuery,
    failure_changes,
)
from services.core.timeutil import from_iso

SELECT = (
    "SELECT f.work_id, f.source, f.failed_at, f.error, d.attempt FROM failed_refreshes f"
    " LEFT JOIN due d ON d.source = f.source AND d.work_id = f.work_id"
)


def write_failures(conn: sqlite3.Connection, items: Sequence[Aggregate]) -> None:
    """Put the rows of states that end the batch in an error, delete those that recovered (in
    `conn`'s transaction: the aggregator's writes store them with the states)."""
    changes = failure_changes(items)
    conn.executemany(
        "DELETE FROM failed_refreshes WHERE source=? AND work_id=?",
        [(source, work_id) for work_id, source in changes.recovered],
    )
    conn.executemany(
        "INSERT OR REPLACE INTO failed_refreshes VALUES (?,?,?,?)",
        [(f.source, f.work_id, sortable(f.failed_at), f.error) for f in changes.put],
    )


class SqliteFailed(SqliteFile):
    """The failed-refresh listing in the embedded store's file."""

    async def failed_refreshes(self, query: FailureQuery) -> list[FailedRefresh]:
        """A page of the listing, through the index of its order."""
        where: list[str] = []
        args: list[object] = []
        if query.source is not None:
            where.append("f.source = ?")
            args.append(query.source)
        after = query.after
        if query.order is FailureOrder.WORK:
            order = "f.work_id, f.source"
            if after is not None:
                where.append("(f.work_id, f.source) > (?, ?)")
                args += [after.work_id, after.source]
        else:
            order = "f.failed_at DESC, f.work_id DESC, f.source DESC"
            if after is not None and after.failed_at is not None:
                where.append("(f.failed_at, f.work_id, f.source) < (?, ?, ?)")
                args += [sortable(after.failed_at), after.work_id, after.source]
        sql = SELECT + (" WHERE " + " AND ".join(where) if where else "")
        sql += f" ORDER BY {order} LIMIT ?"
        args.append(query.limit)

        def read(conn: sqlite3.Connection) -> list[FailedRefresh]:
            return [
                FailedRefresh(w, s, from_iso(at), error, attempt)
                for w, s, at, error, attempt in conn.execute(sql, args)
            ]

        return await self.run(read)
