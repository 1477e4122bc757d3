"""The provenance and data-quality contract (tests/contracts/quality.py) run against the
Cassandra adapters, in this run's keyspace; the SQLite run is
tests/unit/test_quality_contract.py."""

from __future__ import annotations

import pytest

from services.adapters.cassandra import CassandraStore
from services.core.ports import Store
from tests.contracts.quality import *  # noqa: F403  (the contract's tests, run here)

pytestmark = pytest.mark.integration


@pytest.fixture
def store(cassandra_store: CassandraStore) -> Store:
    """The contract's store: the session's CassandraStore."""
    return cassandra_store
