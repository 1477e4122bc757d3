"""The embedded store's file: one SQLite connection living on one worker thread, so the event
loop never blocks on disk. Every adapter of the file (services/adapters/sqlite/) runs its
statements through `SqliteFile.run`, each call in a transaction.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from services.adapters.sqlite.migrations import apply_migrations

T = TypeVar("T")


class SqliteFile:
    """The connection and its thread, with the file's lifecycle (migrate, close)."""

    def __init__(self, path: Path | str) -> None:
        self._path = str(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._conn: sqlite3.Connection | None = None

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn` with the connection on the file's thread, in a transaction."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call, fn)

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._conn is None:
            self._conn = sqlite3.connect(self._path)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.execute("PRAGMA cache_size=-65536")
        with self._conn:
            return fn(self._conn)

    async def migrate(self) -> None:
        """Apply the migrations this file has not seen yet."""
        await self.run(apply_migrations)

    async def reindex_dates(self) -> None:
        """Nothing: the publication-date listing is an index SQLite maintains itself."""

    async def close(self) -> None:
        """Close the connection and its thread."""

        def shut() -> None:
            if self._conn is not None:
                self._conn.execute("PRAGMA optimize")
                self._conn.close()
                self._conn = None

        await asyncio.get_running_loop().run_in_executor(self._executor, shut)
        self._executor.shutdown(wait=True)


def sortable(moment: datetime) -> str:
    """A fixed-width UTC timestamp, so text order is time order (ISO with optional fractions
    is not: '12:00:00Z' sorts after '12:00:00.25Z'): the format of every time column."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
