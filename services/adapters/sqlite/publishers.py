"""SQLite adapter of the PublisherStore port (services/core/publishers.py), in the embedded
mode's file: the `publishers` and `catalogue_imports` tables (JSON records, one row each), and
the works table's `publisher_id` column, indexed, for each publisher's works. Runs on the
store file's connection thread (`SqliteFile.run`), reading works through `SqliteWorks`."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import UTC, datetime

from services.adapters.sqlite.works import SqliteWorks
from services.core.catalogue_state import ImportState, Scope
from services.core.publishers import Publisher
from services.core.timeutil import to_iso
from services.core.works import Work


class SqlitePublishers:
    """Publishers, their imports and their works in the embedded SQLite file."""

    def __init__(self, store: SqliteWorks) -> None:
        self.store = store

    async def put_publisher(self, publisher: Publisher) -> None:
        """Store `publisher` (replacing what was known of it)."""
        record = json.dumps(publisher.to_dict())
        now = to_iso(datetime.now(UTC))
        await self.store.run(
            lambda conn: conn.execute(
                "INSERT OR REPLACE INTO publishers VALUES (?,?,?)",
                (publisher.member_id, record, now),
            )
        )

    async def get_publisher(self, member_id: str) -> Publisher | None:
        """The publisher with this Crossref member id."""

        def read(conn: sqlite3.Connection) -> Publisher | None:
            row = conn.execute(
                "SELECT record FROM publishers WHERE member_id=?", (member_id,)
            ).fetchone()
            return Publisher.from_dict(json.loads(row[0])) if row else None

        return await self.store.run(read)

    async def list_publishers(self) -> list[Publisher]:
        """Every publisher, by name."""

        def read(conn: sqlite3.Connection) -> list[Publisher]:
            rows = conn.execute("SELECT record FROM publishers")
            return [Publisher.from_dict(json.loads(r[0])) for r in rows]

        found = await self.store.run(read)
        return sorted(found, key=lambda p: (p.name.casefold(), p.member_id))

    async def put_import(self, state: ImportState) -> None:
        """Store the state of the import of `state.scope`."""
        record = json.dumps(state.to_dict())
        now = to_iso(datetime.now(UTC))
        await self.store.run(
            lambda conn: conn.execute(
                "INSERT OR REPLACE INTO catalogue_imports VALUES (?,?,?,?)",
                (state.scope.key, state.member_id, record, now),
            )
        )

    async def get_import(self, scope: Scope) -> ImportState | None:
        """The latest import of `scope`, complete or not."""

        def read(conn: sqlite3.Connection) -> ImportState | None:
            row = conn.execute(
                "SELECT state FROM catalogue_imports WHERE scope=?", (scope.key,)
            ).fetchone()
            return ImportState.from_dict(json.loads(row[0])) if row else None

        return await self.store.run(read)

    async def list_imports(self) -> list[ImportState]:
        """The latest import of every scope."""

        def read(conn: sqlite3.Connection) -> list[ImportState]:
            rows = conn.execute("SELECT state FROM catalogue_imports ORDER BY scope")
            return [ImportState.from_dict(json.loads(r[0])) for r in rows]

        return await self.store.run(read)

    async def index_publisher_works(
        self, add: Sequence[tuple[str, str]], remove: Sequence[tuple[str, str]] = ()
    ) -> None:
        """Nothing to write: the works table's own index on `publisher_id` is the index."""

    async def publisher_works(self, publisher_id: str, offset: int, limit: int) -> list[Work]:
        """A page of the publisher's works in work-id order."""

        def read(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                "SELECT work_id FROM works WHERE publisher_id=? ORDER BY work_id LIMIT ? OFFSET ?",
                (publisher_id, limit, offset),
            )
            return [r[0] for r in rows]

        ids = await self.store.run(read)
        found = await self.store.get_works(ids)
        return [found[w] for w in ids if w in found]

    async def publisher_works_after(
        self, publisher_id: str, after: str | None, limit: int
    ) -> tuple[list[Work], str | None]:
        """A keyset page of the publisher's works (the `works_by_publisher` index, from `after`)."""

        def read(conn: sqlite3.Connection) -> list[str]:
            rows = conn.execute(
                "SELECT work_id FROM works WHERE publisher_id=? AND work_id > ?"
                " ORDER BY work_id LIMIT ?",
                (publisher_id, after or "", limit),
            )
            return [r[0] for r in rows]

        ids = await self.store.run(read)
        found = await self.store.get_works(ids)
        return [found[w] for w in ids if w in found], ids[-1] if len(ids) == limit else None

    async def count_publisher_works(self, publisher_id: str) -> int:
        """How many registered works the publisher has."""
        return await self.store.run(
            lambda conn: int(
                conn.execute(
                    "SELECT count(*) FROM works WHERE publisher_id=?", (publisher_id,)
                ).fetchone()[0]
            )
        )
