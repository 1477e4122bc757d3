"""The HookStore contract (tests/contracts/hooks.py) run against CassandraHooks, in this run's
keyspace; the SQLite run is tests/unit/test_hooks_store_contract.py."""

from __future__ import annotations

import pytest

from services.adapters.cassandra import CassandraStore
from services.adapters.cassandra.hooks import CassandraHooks
from services.core.webhooks import HookStore
from tests.contracts.hooks import *  # noqa: F403  (the contract's tests, run here)

pytestmark = pytest.mark.integration


@pytest.fixture
def hooks(cassandra_store: CassandraStore) -> HookStore:
    """CassandraHooks over the session's keyspace."""
    return CassandraHooks(cassandra_store)
