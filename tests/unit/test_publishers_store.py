"""The PublisherStore contract (tests/contracts/publishers.py) run against SQLite; the Cassandra
run is tests/integration/test_publishers_store.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.adapters.sqlite import SqliteStore
from services.bootstrap import make_publishers
from tests.contracts.publishers import *  # noqa: F403  (the contract's tests, run here)
from tests.contracts.publishers import Stores


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[Stores]:
    """A migrated SqliteStore and the publisher store over its file."""
    sqlite = SqliteStore(tmp_path / "alm.sqlite")
    await sqlite.migrate()
    yield Stores(sqlite, make_publishers(sqlite))
    await sqlite.close()
