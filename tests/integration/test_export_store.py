"""The CSV export over a store adapter (tests/contracts/export.py) run over Cassandra, in a
keyspace of the test's own; the SQLite run is tests/unit/test_export_store.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from services.adapters.cassandra import CassandraStore
from services.core.ports import Store
from tests.contracts.export import *  # noqa: F403  (the contract's tests, run here)
from tests.contracts.export import fill
from tests.integration.conftest import Infra, _cleanup_keyspace

pytestmark = pytest.mark.integration


@pytest.fixture
async def store(infra: Infra) -> AsyncIterator[Store]:
    """A CassandraStore holding exactly the works of the contract and their states."""
    mine = replace(infra, keyspace=f"{infra.keyspace}_csv")
    db = CassandraStore([mine.cassandra_host], mine.cassandra_port, mine.keyspace)
    await db.migrate()
    await fill(db)
    try:
        yield db
    finally:
        await db.close()
        _cleanup_keyspace(mine)  # its own keyspace, not the session's
