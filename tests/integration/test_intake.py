"""The intake contract (tests/contracts/intake.py) against the session's CassandraStore; the
SQLite run is tests/unit/test_intake.py."""

from __future__ import annotations

import pytest

from services.adapters.cassandra import CassandraStore
from services.core.ports import Store
from tests.contracts.intake import *  # noqa: F403  (the contract's tests, run here)


@pytest.fixture
def store(cassandra_store: CassandraStore) -> Store:
    """The contract's store: the session's CassandraStore."""
    return cassandra_store
