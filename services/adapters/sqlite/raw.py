"""SQLite adapters of the RawResponses port (upstream calls kept until their TTL passes, with the
works each concerns) and of the CallArchive port (kept calls by the refs a state holds)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from services.adapters.sqlite.connection import SqliteFile, sortable
from services.core.provenance import CallRef, RawResponse, identified
from services.core.timeutil import from_iso

RAW_COLS = (
    "r.id, r.source, r.retrieved_at, r.url, r.status, r.body, r.raw_key, r.digest, r.method,"
    " r.redacted"
)


def raw_response(conn: sqlite3.Connection, row: Sequence[Any]) -> RawResponse:
    """A kept call from a raw_responses row (RAW_COLS), with the works it concerns."""
    rowid, source, at, url, status, body, raw_key, digest, method, redacted = row
    works = conn.execute("SELECT work_id FROM raw_response_works WHERE raw_id=?", (rowid,))
    ids = tuple(r[0] for r in works)
    raw = RawResponse(source, from_iso(at), url, status, body, ids, raw_key or "", digest or "")
    return identified(replace(raw, method=method or "GET", redacted=bool(redacted)))


class SqliteRaw(SqliteFile):
    """Kept upstream calls in the embedded store's file, dropped once past `raw_ttl`."""

    def __init__(self, path: Path | str, raw_ttl: timedelta = timedelta(days=7)) -> None:
        super().__init__(path)
        self._raw_ttl = raw_ttl

    async def add_raw_responses(self, raws: Sequence[RawResponse]) -> None:
        """Keep upstream responses until the TTL passes; expired ones are dropped here."""
        now = datetime.now(UTC)

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "DELETE FROM raw_response_works WHERE raw_id IN"
                " (SELECT id FROM raw_responses WHERE expires_at < ?)",
                (sortable(now),),
            )
            conn.execute("DELETE FROM raw_responses WHERE expires_at < ?", (sortable(now),))
            for raw in map(identified, raws):
                expires = raw.retrieved_at + self._raw_ttl
                if expires < now:
                    continue  # already past the TTL (ALM_RAW_TTL_DAYS=0 keeps none)
                cur = conn.execute(
                    "INSERT INTO raw_responses (source, retrieved_at, url, status, body,"
                    " expires_at, raw_key, digest, method, redacted) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (
                        raw.source,
                        sortable(raw.retrieved_at),
                        raw.url,
                        raw.status,
                        raw.body,
                        sortable(expires),
                        raw.raw_id,
                        raw.digest,
                        raw.method,
                        int(raw.redacted),
                    ),
                )
                conn.executemany(
                    "INSERT OR IGNORE INTO raw_response_works VALUES (?,?,?)",
                    [(cur.lastrowid, w, raw.source) for w in raw.work_ids],
                )

        await self.run(write)

    async def raw_responses(self, source: str, work_id: str, limit: int) -> list[RawResponse]:
        """The latest kept responses of `source` concerning `work_id`, newest first."""

        def read(conn: sqlite3.Connection) -> list[RawResponse]:
            rows = conn.execute(
                f"SELECT {RAW_COLS} FROM raw_responses r"
                " JOIN raw_response_works w ON w.raw_id = r.id"
                " WHERE w.work_id=? AND w.source=? AND r.expires_at >= ?"
                " ORDER BY r.retrieved_at DESC LIMIT ?",
                (work_id, source, sortable(datetime.now(UTC)), limit),
            ).fetchall()
            return [raw_response(conn, row) for row in rows]

        return await self.run(read)


class SqliteCallArchive:
    """Kept calls looked up by id in the store's `raw_responses`."""

    def __init__(self, store: SqliteFile) -> None:
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
