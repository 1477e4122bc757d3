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
from typing import Any

import pytest

from services.adapters.cassandra import CassandraStore
from services.adapters.cassandra.rows import us
from services.aggregator.service import fold
from services.core.events import Observation, Status
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


async def test_a_time_row_its_state_moved_on_from_is_skipped_and_deleted(
    store: CassandraStore,
) -> None:
    """A time-ordered row of a failure its state has moved on from (a batch cut short before
    it deleted it) is not listed, the page is still full, and the row is deleted; a row newer
    than its state (the state's write still to come) is skipped and kept."""
    u = uid()
    source = f"src{u}"
    works = [f"10.5555/{u}.{n}" for n in range(4)]
    await apply(store, [obs(w, source, T0, status=Status.ERROR) for w in works])
    await apply(store, [obs(works[0], source, T0 + timedelta(hours=10), status=Status.ERROR)])
    cql = await store.session()
    stale, early = us(T0 + timedelta(hours=5)), us(T0 + timedelta(hours=20))
    await cql.run("failed_time_put", (source, stale, works[0], "old"))
    await cql.run("failed_time_put", (source, early, works[1], "in flight"))
    page = await store.failed_refreshes(FailureQuery(FailureOrder.NEWEST, None, 2))
    assert [(f.work_id, f.failed_at) for f in page] == [
        (works[0], T0 + timedelta(hours=10)),
        (works[3], T0),
    ]
    rows = await cql.query(
        "SELECT failed_at, work_id FROM failed_refreshes_by_time WHERE source=%s", (source,)
    )
    assert (stale, works[0]) not in {(int(r.failed_at), r.work_id) for r in rows}
    assert (early, works[1]) in {(int(r.failed_at), r.work_id) for r in rows}


async def test_rows_of_states_an_older_process_changed_are_repaired(
    store: CassandraStore,
) -> None:
    """States written without the listing (a process of a version before 015): a recovered
    one's row is deleted, one that failed again is listed at its new failure, by work id."""
    u = uid()
    source = f"src{u}"
    a, b, c = (f"10.5555/{u}.{n}" for n in "abc")
    await apply(store, [obs(w, source, T0, status=Status.ERROR) for w in (a, b, c)])
    for work in (a, b):  # what an older process writes: the state only
        [result] = await apply_without_listing(
            store,
            obs(work, source, T0 + timedelta(hours=1), {"total": 1})
            if work == a
            else obs(work, source, T0 + timedelta(hours=2), status=Status.ERROR),
        )
        assert result.applied
    listed = await store.failed_refreshes(FailureQuery(FailureOrder.WORK, source, 10))
    assert [(f.work_id, f.failed_at) for f in listed] == [
        (b, T0 + timedelta(hours=2)),
        (c, T0),
    ]
    again = await store.failed_refreshes(FailureQuery(FailureOrder.NEWEST, source, 10))
    assert [(f.work_id, f.failed_at) for f in again] == [(b, T0 + timedelta(hours=2)), (c, T0)]


async def apply_without_listing(store: CassandraStore, observation: Observation) -> list[Any]:
    """Fold and store `observation` as a process without the listing would (its states)."""
    key = (observation.work_id, observation.source)
    results = fold([observation], await store.states([key]))
    finals = {key: results[-1].state}
    await store.due_index.write_rounds([], finals, {})
    return results


async def test_migration_015_lists_the_states_that_failed_before_it(store: CassandraStore) -> None:
    """The migration's data step writes the rows of every state that is an error."""
    u = uid()
    source = f"src{u}"
    a, b = f"10.5555/{u}.a", f"10.5555/{u}.b"
    await apply(store, [obs(a, source, T0, status=Status.ERROR), obs(b, source, T0, {"n": 1})])
    cql = await store.session()
    await cql.query("TRUNCATE failed_refreshes")
    await cql.query("TRUNCATE failed_refreshes_by_time")
    await cql.query("DELETE FROM schema_migrations WHERE version=15")
    assert await store.failed_refreshes(FailureQuery()) == []
    await store.migrate()
    for order in FailureOrder:
        found = await store.failed_refreshes(FailureQuery(order, source))
        assert [(f.work_id, f.failed_at, f.error) for f in found] == [(a, T0, "http: boom")]
