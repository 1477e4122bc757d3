"""The PublisherStore contract (tests/contracts/publishers.py) run against Cassandra, in this
run's keyspace; the SQLite run is tests/unit/test_publishers_store.py."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from services.adapters.cassandra_store import CassandraStore
from services.bootstrap import make_publishers
from tests.contracts.publishers import *  # noqa: F403  (the contract's tests, run here)
from tests.contracts.publishers import Stores
from tests.integration.conftest import Infra

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def cassandra(infra: Infra) -> Iterator[CassandraStore]:
    """This run's keyspace, migrated; the store usable from any test's loop."""
    store = CassandraStore([infra.cassandra_host], infra.cassandra_port, infra.keyspace)
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, store.migrate()).result()
        yield store
        pool.submit(asyncio.run, store.close()).result()


@pytest.fixture
def stores(cassandra: CassandraStore) -> Stores:
    """The session's CassandraStore and the publisher store over its keyspace."""
    return Stores(cassandra, make_publishers(cassandra))
