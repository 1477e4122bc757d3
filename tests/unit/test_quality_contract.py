"""The provenance and data-quality contract (tests/contracts/quality.py) run against the SQLite
adapters; the Cassandra run is tests/integration/test_quality_contract.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.adapters.sqlite import SqliteStore
from services.core.ports import Store
from tests.contracts.quality import *  # noqa: F403  (the contract's tests, run here)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """A migrated SqliteStore."""
    sqlite = SqliteStore(tmp_path / "alm.sqlite")
    await sqlite.migrate()
    yield sqlite
    await sqlite.close()
