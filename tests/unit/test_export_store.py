"""The CSV export over a store adapter (tests/contracts/export.py) run over SQLite; the Cassandra
run is tests/integration/test_export_store.py."""

from __future__ import annotations

import pytest

from services.adapters.sqlite import SqliteStore
from services.core.ports import Store
from tests.contracts.export import *  # noqa: F403  (the contract's tests, run here)
from tests.contracts.export import fill


@pytest.fixture
async def store(sqlite: SqliteStore) -> Store:
    """A migrated SqliteStore (tests/unit/conftest.py) holding exactly the works of the contract
    and their states."""
    await fill(sqlite)
    return sqlite
