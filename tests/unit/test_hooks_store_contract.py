"""The HookStore contract (tests/contracts/hooks.py) run against SqliteHooks; the Cassandra run
is tests/integration/test_hooks_store_contract.py."""

from __future__ import annotations

import pytest

from services.adapters.sqlite import SqliteStore
from services.adapters.sqlite.hooks import SqliteHooks
from services.core.webhooks import HookStore
from tests.contracts.hooks import *  # noqa: F403  (the contract's tests, run here)


@pytest.fixture
def hooks(sqlite: SqliteStore) -> HookStore:
    """SqliteHooks over a migrated file (tests/unit/conftest.py)."""
    return SqliteHooks(sqlite)
