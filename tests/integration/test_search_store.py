"""The `search_works` contract (tests/contracts/search.py) against CassandraStore (SAI on
`works.title_terms`), and the migration's backfill. The SQLite run is
tests/unit/test_search_store.py."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from services.adapters.cassandra import CassandraStore, search_terms
from services.core.ports import Store
from services.core.search import words
from tests.contracts.search import *  # noqa: F403  (the contract's tests, run here)
from tests.contracts.search import uid, work
from tests.integration.conftest import Infra, own_keyspace

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cassandra(infra: Infra) -> Iterator[CassandraStore]:
    """A keyspace of this module's own, migrated; the store usable from any test's loop."""
    yield from own_keyspace(infra, "s")


@pytest.fixture
def store(cassandra: CassandraStore) -> Store:
    """The contract's store: this module's CassandraStore."""
    return cassandra


async def test_backfill_writes_the_terms_of_works_without_them(cassandra: CassandraStore) -> None:
    """Works whose rows lack terms (registered before migration 013) are found after the
    migration's data step."""
    u = uid()
    await cassandra.register([work(f"10.5555/{u}", f"Backfilled {u}", "Copernicus")])
    cql = await cassandra.session()
    await cql.query("UPDATE works SET title_terms = null WHERE work_id = %s", (f"10.5555/{u}",))
    assert (await cassandra.search_works(words(u), None, 5))[0] == []
    await search_terms.backfill(cql)
    found = (await cassandra.search_works(words(f"copernicus {u}"), None, 5))[0]
    assert [w.work_id for w in found] == [f"10.5555/{u}"]
