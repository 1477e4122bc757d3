"""The intake contract (tests/contracts/intake.py) run against SqliteStore, a file per test;
the Cassandra run is tests/integration/test_intake.py."""

from __future__ import annotations

import pytest

from services.adapters.sqlite import SqliteStore
from services.core.ports import Store
from tests.contracts.intake import *  # noqa: F403  (the contract's tests, run here)


@pytest.fixture
def store(sqlite: SqliteStore) -> Store:
    """The contract's store: a migrated SqliteStore (tests/unit/conftest.py)."""
    return sqlite
