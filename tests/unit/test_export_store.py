"""The CSV export over a store adapter (tests/contracts/export.py) run over SQLite; the Cassandra
run is tests/integration/test_export_store.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.adapters.sqlite import SqliteStore
from services.core.ports import Store
from tests.contracts.export import *  # noqa: F403  (the contract's tests, run here)
from tests.contracts.export import fill


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """A SqliteStore holding exactly the works of the contract and their states."""
    db = SqliteStore(tmp_path / "alm.sqlite")
    await db.migrate()
    await fill(db)
    try:
        yield db
    finally:
        await db.close()
