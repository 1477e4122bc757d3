"""The provenance and data-quality contract (tests/contracts/quality.py) run against the SQLite
adapters; the Cassandra run is tests/integration/test_quality_contract.py."""

from __future__ import annotations

import pytest

from services.adapters.sqlite import SqliteStore
from services.core.ports import Store
from tests.contracts.quality import *  # noqa: F403  (the contract's tests, run here)


@pytest.fixture
def store(sqlite: SqliteStore) -> Store:
    """The contract's store: a migrated SqliteStore (tests/unit/conftest.py)."""
    return sqlite
