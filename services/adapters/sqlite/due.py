"""SQLite adapter of the DueIndex port: when each (work, source) is next due, in the `due` table
(indexed by source and time, so a scan reads only what is due)."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from operator import itemgetter

from services.adapters.sqlite.bulk import insert_rows
from services.adapters.sqlite.connection import SqliteFile, sortable
from services.core.ports import DueEntry, Handoff
from services.core.timeutil import from_iso


class SqliteDue(SqliteFile):
    """The due index in the embedded store's file."""

    async def set_due(
        self, source: str, entries: Sequence[DueEntry], handoff: Handoff | None = None
    ) -> None:
        """Set when each work is next due from `source` (replacing its previous entry; one
        transaction: no handoff needed)."""

        await self.run(lambda conn: put_due_rows(conn, source, entries))

    async def due(
        self, source: str, now: datetime, limit: int, handoff: Handoff | None = None
    ) -> list[DueEntry]:
        """Entries of `source` due at `now`, earliest first (an index scan: no handoff)."""

        def read(conn: sqlite3.Connection) -> list[DueEntry]:
            rows = conn.execute(
                "SELECT work_id, due_at, attempt, leased FROM due WHERE source=? AND due_at<=?"
                " ORDER BY due_at LIMIT ?",
                (source, sortable(now), limit),
            )
            return [DueEntry(w, from_iso(at), int(n), bool(leased)) for w, at, n, leased in rows]

        return await self.run(read)

    async def add_missing_due(self, due: Mapping[str, Sequence[DueEntry]]) -> int:
        """Set each entry only where its work has none from that source; how many were added."""
        return await self.run(lambda conn: add_missing_due_rows(conn, due))

    async def release_leases(self, now: datetime, within: timedelta) -> int:
        """Make every lease running out by `now + within` due at `now`; how many."""

        def write(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "UPDATE due SET due_at=?, leased=0 WHERE leased=1 AND due_at<=?",
                (sortable(now), sortable(now + within)),
            )
            return cur.rowcount

        return await self.run(write)


def put_due_rows(conn: sqlite3.Connection, source: str, entries: Sequence[DueEntry]) -> None:
    """Set the entries of `source`, replacing their works' previous ones (in `conn`'s
    transaction: the aggregator's writes store them with the states)."""
    conn.executemany(
        "INSERT OR REPLACE INTO due VALUES (?,?,?,?,?)",
        [(source, e.work_id, sortable(e.at), e.attempt, int(e.leased)) for e in entries],
    )


def add_missing_due_rows(conn: sqlite3.Connection, due: Mapping[str, Sequence[DueEntry]]) -> int:
    """Set each entry only where its work has none from that source (in `conn`'s transaction:
    registration writes them with the works); how many were added."""
    before = conn.total_changes
    stamps: dict[datetime, str] = {}  # most entries of one write share their time
    for source, entries in due.items():
        rows = [
            (
                source,
                e.work_id,
                stamps.get(e.at) or stamps.setdefault(e.at, sortable(e.at)),
                e.attempt,
                int(e.leased),
            )
            for e in entries
        ]
        rows.sort(key=itemgetter(1))  # in key order (see `SqliteWorks.register`); stable
        insert_rows(conn, "INSERT OR IGNORE INTO due", 5, rows)
    return conn.total_changes - before
