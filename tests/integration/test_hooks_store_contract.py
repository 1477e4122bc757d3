"""The HookStore contract (tests/contracts/hooks.py) run against CassandraHooks, in this run's
keyspace; the SQLite run is tests/unit/test_hooks_store_contract.py."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from services.adapters.cassandra_hooks import CassandraHooks
from services.adapters.cassandra_store import CassandraStore
from services.core.webhooks import HookStore
from tests.contracts.hooks import *  # noqa: F403  (the contract's tests, run here)
from tests.integration.conftest import Infra

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def cassandra_hooks_store(infra: Infra) -> Iterator[CassandraStore]:
    """One migrated keyspace for the session, usable from any test's loop."""
    store = CassandraStore([infra.cassandra_host], infra.cassandra_port, infra.keyspace)
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, store.migrate()).result()
        yield store
        pool.submit(asyncio.run, store.close()).result()


@pytest.fixture
def hooks(cassandra_hooks_store: CassandraStore) -> HookStore:
    """CassandraHooks over the session's keyspace."""
    return CassandraHooks(cassandra_hooks_store)
