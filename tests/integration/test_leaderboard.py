"""The leaderboard contract (tests/contracts/leaderboard.py) against the session's
CassandraStore (each test uses a source of its own); the SQLite run is
tests/unit/test_leaderboard.py."""

from __future__ import annotations

import pytest

from services.adapters.cassandra import CassandraStore
from services.core.ports import Store
from tests.contracts.leaderboard import *  # noqa: F403  (the contract's tests, run here)


@pytest.fixture
def store(cassandra_store: CassandraStore) -> Store:
    """The contract's store: the session's CassandraStore."""
    return cassandra_store
