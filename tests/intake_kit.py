"""What the scheduler does to an embedded store's intake, for tests of bulk registration
(`alm works import`, `alm publishers import`): every work in the intake or already due, then
taken in with the entries it is owed."""

from __future__ import annotations

import asyncio
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from services.adapters.sqlite import SqliteStore
from services.bootstrap import make_scheduling
from services.settings import Settings


def waiting(db: Path) -> set[str]:
    """The works an embedded file's intake holds, and those with a due entry."""
    with sqlite3.connect(db) as conn:
        queued = {r[0] for r in conn.execute("SELECT work_id FROM intake")}
        due = {r[0] for r in conn.execute("SELECT DISTINCT work_id FROM due")}
    return queued | due


def take_intake(db: Path, settings: Settings | None = None) -> int:
    """Take the file's whole intake as the scheduler's tick does (its own event loop, in a
    thread, so a test's running loop is no obstacle); how many works were taken."""
    scheduling = make_scheduling(settings or Settings.from_env())

    async def take() -> int:
        store = SqliteStore(db)
        try:
            now = datetime.now(UTC)
            return await store.take_intake(10**9, lambda w: scheduling.per_source(w, now))
        finally:
            await store.close()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, take()).result()
