"""The KeyStore contract (tests/contracts/keys.py) run against SqliteKeyStore; the Cassandra run
is in tests/integration/test_keys.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.adapters.sqlite import SqliteStore
from services.adapters.sqlite.keys import SqliteKeyStore
from services.core.keys import KeyStore
from tests.contracts.keys import *  # noqa: F403  (the contract's tests, run here)


@pytest.fixture
async def keys(tmp_path: Path) -> AsyncIterator[KeyStore]:
    """SqliteKeyStore over a migrated file."""
    sqlite = SqliteStore(tmp_path / "alm.sqlite")
    await sqlite.migrate()
    yield SqliteKeyStore(sqlite)
    await sqlite.close()
