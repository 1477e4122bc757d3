"""The PublisherStore contract (tests/contracts/publishers.py) run against SQLite; the Cassandra
run is tests/integration/test_publishers_store.py."""

from __future__ import annotations

import pytest

from services.adapters.sqlite import SqliteStore
from services.bootstrap import make_publishers
from tests.contracts.publishers import *  # noqa: F403  (the contract's tests, run here)
from tests.contracts.publishers import Stores


@pytest.fixture
def stores(sqlite: SqliteStore) -> Stores:
    """A migrated SqliteStore (tests/unit/conftest.py) and the publisher store over its file."""
    return Stores(sqlite, make_publishers(sqlite))
