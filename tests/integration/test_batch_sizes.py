"""Cassandra batches against the real server: the size estimate equals what the server measures,
and writes the aggregator makes are batched so the server neither refuses nor warns."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from services.adapters.cassandra import CassandraStore, window
from services.adapters.cassandra.batching import PARTITION_BYTES, Batch
from services.adapters.cassandra.session import CqlSession
from services.aggregator.service import fold
from services.core.events import Observation, Status
from services.core.ports import DueEntry
from tests.integration.conftest import Infra
from tests.unit.batch_sizes import CASES, Case

pytestmark = pytest.mark.integration

_WARNED = re.compile(r"Batch for \[([^\]]*)\] is of size (\d+)")


def warned_sizes(caplog: pytest.LogCaptureFixture, keyspace: str) -> list[int]:
    """The sizes of this keyspace's batches the server warned about: the driver logs each
    server warning (`cassandra.protocol`, "Server warning: Batch for [...] is of size N")."""
    sizes = []
    for record in caplog.records:
        match = _WARNED.search(record.getMessage())
        if match and f"{keyspace}." in match[1]:
            sizes.append(int(match[2]))
    return sizes


@pytest.fixture(scope="module")
def store(infra: Infra) -> Iterator[CassandraStore]:
    """A store on this run's keyspace (migrated), shared by the module's tests."""
    cassandra = CassandraStore([infra.cassandra_host], infra.cassandra_port, infra.keyspace)
    asyncio.run(cassandra.migrate())
    yield cassandra
    asyncio.run(cassandra.close())


def estimate(cql: CqlSession, case: Case) -> int:
    """The session's estimate of the case's batch, as `batches` adds it up."""
    binder = cql._binders[case.statement]
    rows = [binder(case.rows(i)) for i in range(case.count)]
    partitions = len({case.partitions(i) for i in range(case.count)})
    return sum(binder.cost(b.values) for b in rows) + PARTITION_BYTES * partitions


@pytest.mark.parametrize("case", CASES, ids=[f"{c.statement}-{n}" for n, c in enumerate(CASES)])
async def test_the_estimate_is_what_the_server_measures(
    store: CassandraStore, case: Case, caplog: pytest.LogCaptureFixture
) -> None:
    """Each write the store batches, sent as one batch over the warning threshold: the size the
    server warns about is the session's estimate, and the figure tests/unit/batch_sizes.py
    keeps (this is how it was measured)."""
    cql = await store._ready()
    binder = cql._binders[case.statement]
    batch = Batch([binder(case.rows(i)) for i in range(case.count)])
    with caplog.at_level(logging.WARNING, logger="cassandra"):
        await cql.run_many([batch])
    measured = warned_sizes(caplog, store.keyspace)
    assert len(measured) == 1, f"expected one warning about this keyspace, got {measured}"
    assert measured[0] == estimate(cql, case)
    assert measured[0] == case.measured


def observation(work: str, source: str, at: datetime, n: int) -> Observation:
    """An observation of one metric: a state row of small values and many cells, which the
    server counts at about three times the bytes of its values."""
    return Observation(work, source, at, Status.OK, metrics={"citations": n})


async def test_many_sources_per_work_are_batched_so_the_server_accepts_and_does_not_warn(
    store: CassandraStore, caplog: pytest.LogCaptureFixture
) -> None:
    """Sixty works refreshed from ten sources each, stored in one write: the state rows of a
    work share its partition, so the byte limit (not the partition limit) cuts the batches. The
    old sizing (bytes of values under 60 % of the warning threshold) sent batches the server
    measured at over 2.6 times that and refused ("Batch too large"); now every batch is under
    the warning threshold."""
    now = datetime(2026, 11, 25, 12, tzinfo=UTC)
    observations = [
        observation(f"10.5555/many.{w:03d}", f"source{s:02d}", now, w * 10 + s + 1)
        for w in range(60)
        for s in range(10)
    ]
    items = fold(observations, {})
    due = {
        f"source{s:02d}": [DueEntry(o.work_id, now) for o in observations[s::10]] for s in range(10)
    }
    with caplog.at_level(logging.WARNING, logger="cassandra"):
        await store.write_aggregates(items, due)
    assert warned_sizes(caplog, store.keyspace) == []  # none refused, none warned about
    stored = await store.states([(o.work_id, o.source) for o in observations])
    assert len(stored) == 600
    assert {k: dict(v.metrics) for k, v in stored.items()} == {
        (o.work_id, o.source): dict(o.metrics) for o in observations
    }


async def test_a_batch_the_server_refuses_for_its_size_is_split_and_stored(
    store: CassandraStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch over the failure threshold (one built by hand, as a cluster whose thresholds
    were lowered since they were read would refuse) is sent again in halves: every row is
    stored, nothing is raised."""
    cql = await store._ready()
    binder = cql._binders["board_put"]
    rows = [("bigbatch", "m", n % 16, n, f"10.5555/big.{n:05d}") for n in range(1500)]
    batch = Batch([binder(r) for r in rows])  # about 68 KB as the server counts it
    splits: list[int] = []
    real_split = window.split

    def counted(refused: Batch) -> list[Any]:
        splits.append(len(refused.statements))
        return real_split(refused)

    monkeypatch.setattr(window, "split", counted)
    await cql.run_many([batch])
    assert splits[0] == 1500  # refused whole, then sent in halves
    pages = await cql.run_many(("board_top", ("bigbatch", "m", s, 1000)) for s in range(16))
    assert sorted(r.work_id for page in pages for r in page) == sorted(r[4] for r in rows)
