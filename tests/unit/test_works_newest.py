"""The `works_newest` contract (tests/contracts/works_newest.py) run against SqliteStore, a file
per test; the Cassandra run is tests/integration/test_works_newest.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.adapters.sqlite import SqliteStore
from services.core.ports import Store
from tests.contracts.works_newest import *  # noqa: F403  (the contract's tests, run here)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """A migrated SqliteStore."""
    sqlite = SqliteStore(tmp_path / "alm.sqlite")
    await sqlite.migrate()
    yield sqlite
    await sqlite.close()
