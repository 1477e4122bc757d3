"""SQLite adapter of the WorkSearch port: a page of works read from the FTS5 index
(search_index.py) in rowid order after the cursor, which is the last work's number: the index
seeks to it, so a deep page costs what the first does (no offset, no sort)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from services.adapters.sqlite.connection import SqliteFile
from services.adapters.sqlite.search_index import match_expression
from services.adapters.sqlite.works import WORK_COLUMNS, work_of
from services.core.search import InvalidQuery
from services.core.works import Work


class SqliteSearch(SqliteFile):
    """Searching the embedded store's works."""

    async def search_works(
        self, words: Sequence[str], after: str | None, limit: int, publisher_id: str | None = None
    ) -> tuple[list[Work], str | None]:
        """A page of the works having every word (and the publisher), in registration order,
        and the next page's cursor (the last work's number)."""
        if after is not None and not after.isdigit():
            raise InvalidQuery(f"cursor {after[:40]!r} is not one a search page gave")
        expression = match_expression(words, publisher_id)
        cols = ", ".join("w." + c.strip() for c in WORK_COLUMNS.split(","))

        def read(conn: sqlite3.Connection) -> tuple[list[Work], str | None]:
            rows = conn.execute(
                f"SELECT s.rowid, {cols} FROM works_search s"
                " JOIN search_docs d ON d.doc = s.rowid JOIN works w ON w.work_id = d.work_id"
                " WHERE works_search MATCH ? AND s.rowid > ? ORDER BY s.rowid LIMIT ?",
                (expression, int(after or 0), limit),
            ).fetchall()
            works = [work_of(r[1:]) for r in rows]
            return works, str(rows[-1][0]) if len(rows) == limit else None

        return await self.run(read)
