"""The KeyStore contract (tests/contracts/keys.py) run against SqliteKeyStore; the Cassandra run
is in tests/integration/test_keys.py."""

from __future__ import annotations

import pytest

from services.adapters.sqlite import SqliteStore
from services.adapters.sqlite.keys import SqliteKeyStore
from services.core.keys import KeyStore
from tests.contracts.keys import *  # noqa: F403  (the contract's tests, run here)


@pytest.fixture
def keys(sqlite: SqliteStore) -> KeyStore:
    """SqliteKeyStore over a migrated file (tests/unit/conftest.py)."""
    return SqliteKeyStore(sqlite)
