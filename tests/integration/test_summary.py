"""The per-source status counts contract (tests/contracts/summary.py) against CassandraStore, in
a keyspace of this module's own (a recount spans every source), and what is particular to
Cassandra: the counters are added after the states (a redelivery after a crash between the two
loses a batch's transitions, which a recount restores), migration 016 counts the states stored
before it, and the read is of the summary rows only. The SQLite run is
tests/unit/test_summary.py."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from services.adapters.cassandra import CassandraStore
from services.adapters.cassandra.rows import SHARDS
from services.aggregator.service import fold
from services.cli import commands
from services.core.events import Status
from services.settings import Settings
from tests.contracts.store import T0, apply, obs
from tests.contracts.summary import *  # noqa: F403  (the contract's tests, run here)
from tests.contracts.summary import summary_of, uid
from tests.integration.conftest import Infra, _cleanup_keyspace

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def keyspace(infra: Infra) -> Iterator[Infra]:
    """A keyspace of this module's own, migrated."""
    mine = replace(infra, keyspace=f"{infra.keyspace}_s{uuid.uuid4().hex[:6]}")
    store = CassandraStore([mine.cassandra_host], mine.cassandra_port, mine.keyspace)
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, store.migrate()).result()
        pool.submit(asyncio.run, store.close()).result()
    yield mine
    _cleanup_keyspace(mine)


@pytest.fixture
async def store(keyspace: Infra) -> AsyncIterator[CassandraStore]:
    store = CassandraStore([keyspace.cassandra_host], keyspace.cassandra_port, keyspace.keyspace)
    yield store
    await store.close()


async def test_a_crash_before_the_counters_is_repaired_by_a_recount(
    store: CassandraStore,
) -> None:
    """States stored but their counters not (the aggregator died between the two rounds): the
    redelivered observations find their states and move nothing, the summary is short by the
    batch, and a recount brings it back."""
    u = uid()
    src = f"src{u}"
    works = [f"10.5555/{u}.{i}" for i in range(4)]
    batch = [obs(w, src, T0, {"n": 1}) for w in works[:3]]
    batch.append(obs(works[3], src, T0, status=Status.ERROR))
    results = fold(batch, await store.states([(o.work_id, src) for o in batch]))
    finals = {(r.state.work_id, src): r.state for r in results}
    await store.due_index.write_rounds([], finals, {})  # the states, then the crash
    await apply(store, batch)  # redelivered
    assert await summary_of(store, src) is None
    assert (await store.recount_summary())[src] == {"works": 4, "errors": 1}
    assert await summary_of(store, src) == {"works": 4, "errors": 1}


async def test_a_batch_whose_states_failed_to_be_written_moves_no_counter(
    store: CassandraStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The counters come after the states: when the states' write fails, nothing is counted,
    and the batch done again counts each transition once."""
    u = uid()
    src = f"src{u}"
    batch = [obs(f"10.5555/{u}.{i}", src, T0, {"n": 1}) for i in range(3)]
    real = store.due_index.write_rounds

    async def failing(*args: object, **kwargs: object) -> int:
        raise TimeoutError("the states' round timed out")

    monkeypatch.setattr(store.due_index, "write_rounds", failing)
    with pytest.raises(TimeoutError):
        await apply(store, batch)
    assert await summary_of(store, src) is None
    monkeypatch.setattr(store.due_index, "write_rounds", real)
    await apply(store, batch)
    assert await summary_of(store, src) == {"works": 3, "errors": 0}


async def test_alm_db_recount_summary_repairs_cassandra(
    store: CassandraStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`alm db recount-summary` over Cassandra prints what a source was off by and fixes it."""
    u = uid()
    src = f"src{u}"
    await apply(store, [obs(f"10.5555/{u}.{i}", src, T0, {"n": 1}) for i in range(3)])
    cql = await store.session()
    await cql.query(
        "UPDATE source_summary SET works = works + 5, errors = errors + 1"
        " WHERE source=%s AND shard=0",
        (src,),
    )
    settings = Settings(
        data_dir=tmp_path,
        store="cassandra",
        cassandra_hosts=(store._cql.hosts[0],),
        cassandra_port=store._cql.port,
        keyspace=store.keyspace,
    )
    assert await commands.db_recount_summary(settings) == 0
    assert f"{src}: works -5, errors -1" in capsys.readouterr().out
    assert await summary_of(store, src) == {"works": 3, "errors": 0}


async def test_the_summary_reads_its_rows_not_the_states(store: CassandraStore) -> None:
    """`source_summary` answers from the counters: a state row written behind the aggregator's
    back is not counted until a recount; the counters of a source spread over the shards."""
    u = uid()
    src = f"src{u}"
    works = [f"10.5555/{u}.{i}" for i in range(40)]
    await apply(store, [obs(w, src, T0, {"n": 1}) for w in works])
    cql = await store.session()
    rows = await cql.query(
        "SELECT shard FROM source_summary WHERE source=%s ALLOW FILTERING", (src,)
    )
    assert 1 < len(rows) <= SHARDS
    await cql.query(
        "INSERT INTO source_totals (work_id, source, status) VALUES (%s, %s, 'error')",
        (f"10.5555/{u}.behind", src),
    )
    assert await summary_of(store, src) == {"works": 40, "errors": 0}
    assert (await store.recount_summary())[src] == {"works": 1, "errors": 1}
    assert await summary_of(store, src) == {"works": 41, "errors": 1}


async def test_migration_016_counts_the_states_stored_before_it(store: CassandraStore) -> None:
    """The migration's data step counts every state already stored (a rerun after an
    interruption adds only what is still missing)."""
    u = uid()
    src = f"src{u}"
    a, b = f"10.5555/{u}.a", f"10.5555/{u}.b"
    await apply(store, [obs(a, src, T0, status=Status.ERROR), obs(b, src, T0, {"n": 1})])
    await apply(store, [obs(b, src, T0 + timedelta(hours=1), {"n": 2})])
    before = await store.source_summary()
    cql = await store.session()
    await cql.query("TRUNCATE source_summary")
    await cql.query("DELETE FROM schema_migrations WHERE version=16")
    assert await store.source_summary() == {}
    await store.migrate()
    assert await store.source_summary() == before
    assert before[src] == {"works": 2, "errors": 1}
    await cql.query("DELETE FROM schema_migrations WHERE version=16")
    await store.migrate()  # again: nothing to add
    assert await store.source_summary() == before
