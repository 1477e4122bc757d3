"""The failed-refresh listing contract (tests/contracts/failed_refreshes.py) run against
SqliteStore, a file per test; the Cassandra run is tests/integration/test_failed_refreshes.py.
Also what is particular to SQLite: the migration lists the states that failed before it."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from services.adapters.sqlite import SqliteStore
from services.adapters.sqlite.migrations import MIGRATIONS
from services.core.failed_refreshes import FailureQuery
from services.core.ports import Store
from tests.contracts.failed_refreshes import *  # noqa: F403  (the contract's tests, run here)
from tests.contracts.store import T0


@pytest.fixture
def store(sqlite: SqliteStore) -> Store:
    """The contract's store: a migrated SqliteStore (tests/unit/conftest.py)."""
    return sqlite


async def test_the_migration_lists_states_that_failed_before_it(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY)")
    before = next(i for i, m in enumerate(MIGRATIONS) if "EXISTS failed_refreshes (" in m)
    for version, script in enumerate(MIGRATIONS[:before], start=1):
        conn.executescript(script)
        conn.execute("INSERT INTO schema_migrations VALUES (?)", (version,))
    states = [
        ("10.5555/x", "crossref", "error", "2026-11-25T12:00:00Z"),
        ("10.5555/y", "crossref", "error", "2026-11-25T12:00:00.123456Z"),
        ("10.5555/z", "crossref", "ok", "2026-11-25T13:00:00Z"),
    ]
    for work, source, status, at in states:
        state = {"work_id": work, "source": source, "status": status, "error": "http: down"}
        state["last_attempt_at"] = at
        conn.execute("INSERT INTO source_totals VALUES (?,?,?)", (work, source, json.dumps(state)))
    conn.commit()
    conn.close()
    store = SqliteStore(path)
    await store.migrate()
    try:
        rows = await store.failed_refreshes(FailureQuery())
    finally:
        await store.close()
    assert [(f.work_id, f.failed_at, f.error) for f in rows] == [
        ("10.5555/y", T0, "http: down"),
        ("10.5555/x", T0.replace(microsecond=0), "http: down"),
    ]
