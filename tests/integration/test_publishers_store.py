"""The PublisherStore contract (tests/contracts/publishers.py) run against Cassandra, in this
run's keyspace; the SQLite run is tests/unit/test_publishers_store.py."""

from __future__ import annotations

import pytest

from services.adapters.cassandra import CassandraStore
from services.bootstrap import make_publishers
from tests.contracts.publishers import *  # noqa: F403  (the contract's tests, run here)
from tests.contracts.publishers import Stores

pytestmark = pytest.mark.integration


@pytest.fixture
def stores(cassandra_store: CassandraStore) -> Stores:
    """The session's CassandraStore and the publisher store over its keyspace."""
    return Stores(cassandra_store, make_publishers(cassandra_store))
