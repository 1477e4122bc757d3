"""The failed-refresh listing contract (tests/contracts/failed_refreshes.py) against
CassandraStore, in a keyspace of this module's own (the listing spans every source), and what is
particular to Cassandra's two tables. The SQLite run is tests/unit/test_failed_refreshes.py."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta

import pytest

from services.adapters.cassandra import CassandraStore
from services.adapters.cassandra.rows import us
from services.core.events import Status
from services.core.failed_refreshes import FailureOrder, FailureQuery
from services.core.ports import Store
from tests.contracts.failed_refreshes import *  # noqa: F403  (the contract's tests, run here)
from tests.contracts.failed_refreshes import uid
from tests.contracts.store import T0, apply, obs
from tests.integration.conftest import Infra, _cleanup_keyspace

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def keyspace(infra: Infra) -> Iterator[Infra]:
    """A keyspace of this module's own, migrated."""
    mine = replace(infra, keyspace=f"{infra.keyspace}_f{uuid.uuid4().hex[:6]}")
    store = CassandraStore([mine.cassandra_host], mine.cassandra_port, mine.keyspace)
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, store.migrate()).result()
        pool.submit(asyncio.run, store.close()).result()
    yield mine
    _cleanup_keyspace(mine)


@pytest.fixture
async def store(keyspace: Infra) -> AsyncIterator[Store]:
    """The contract's store, emptied of the listing's rows before each test."""
    store = CassandraStore([keyspace.cassandra_host], keyspace.cassandra_port, keyspace.keyspace)
    cql = await store.session()
    await cql.query("TRUNCATE failed_refreshes")
    await cql.query("TRUNCATE failed_refreshes_by_time")
    yield store
    await store.close()


async def test_a_time_row_left_by_a_cut_short_batch_is_skipped_and_deleted(
    store: CassandraStore,
) -> None:
    """A time-ordered row whose time its work no longer has (its deletion never ran) is not
    listed, the page is still full, and the row is gone afterwards."""
    u = uid()
    source = f"src{u}"
    works = [f"10.5555/{u}.{n}" for n in range(4)]
    await apply(store, [obs(w, source, T0, status=Status.ERROR) for w in works])
    cql = await store.session()
    for n in range(3):  # stale rows newer than every real one
        at = us(T0 + timedelta(hours=n + 1))
        await cql.run("failed_time_put", (source, at, works[0], "old"))
    page = await store.failed_refreshes(FailureQuery(FailureOrder.NEWEST, None, 2))
    assert [(f.work_id, f.failed_at) for f in page] == [(works[3], T0), (works[2], T0)]
    rows = await cql.query(
        "SELECT failed_at FROM failed_refreshes_by_time WHERE source=%s", (source,)
    )
    assert sorted(int(r.failed_at) for r in rows) == [us(T0)] * 4
