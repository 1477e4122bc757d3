"""Fixtures of the unit suite shared by the contract runs against SQLite (tests/contracts/)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.adapters.sqlite import SqliteStore


@pytest.fixture
async def sqlite(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    """A migrated SqliteStore in a fresh file."""
    store = SqliteStore(tmp_path / "alm.sqlite")
    await store.migrate()
    yield store
    await store.close()
