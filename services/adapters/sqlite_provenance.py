"""SQLite adapter of the CallArchive port: kept raw responses by the refs a state holds, from
the embedded store's file (services/adapters/sqlite_store.py keeps them)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime

from services.adapters.sqlite_store import RAW_COLS, SqliteStore, raw_response, sortable
from services.core.provenance import CallRef, RawResponse


class SqliteCallArchive:
    """Kept calls looked up by id in the SqliteStore's `raw_responses`."""

    def __init__(self, store: SqliteStore) -> None:
        self._store = store

    async def kept_calls(self, source: str, refs: Sequence[CallRef]) -> dict[str, RawResponse]:
        """The raw responses of `refs` still kept (not past their TTL), by raw id."""
        ids = [r.raw_id for r in refs]
        now = sortable(datetime.now(UTC))

        def read(conn: sqlite3.Connection) -> dict[str, RawResponse]:
            out: dict[str, RawResponse] = {}
            for raw_id in ids:
                row = conn.execute(
                    f"SELECT {RAW_COLS} FROM raw_responses r"
                    " WHERE r.raw_key=? AND r.source=? AND r.expires_at >= ?",
                    (raw_id, source, now),
                ).fetchone()
                if row is not None:
                    out[raw_id] = raw_response(conn, row)
            return out

        return await self._store.run(read)
