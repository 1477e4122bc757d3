"""SQLite adapter of the SourceControl port: paused and running sources (`source_status`)."""

from __future__ import annotations

import sqlite3

from services.adapters.sqlite.connection import SqliteFile
from services.core.health import SourceStatus
from services.core.timeutil import from_iso, to_iso


class SqliteControl(SqliteFile):
    """The sources' paused status in the embedded store's file."""

    async def source_statuses(self) -> dict[str, SourceStatus]:
        """The status of every source that was ever paused or resumed."""

        def read(conn: sqlite3.Connection) -> dict[str, SourceStatus]:
            rows = conn.execute("SELECT source, paused, reason, since FROM source_status")
            return {
                s: SourceStatus(s, bool(p), r, from_iso(at) if at else None) for s, p, r, at in rows
            }

        return await self.run(read)

    async def set_source_status(self, status: SourceStatus) -> None:
        """Record that a source is paused (with its reason) or running again."""
        since = to_iso(status.since) if status.since else None

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR REPLACE INTO source_status VALUES (?,?,?,?)",
                (status.source, int(status.paused), status.reason, since),
            )

        await self.run(write)
