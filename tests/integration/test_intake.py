"""The intake contract (tests/contracts/intake.py) against the session's CassandraStore; the
SQLite run is tests/unit/test_intake.py."""

from __future__ import annotations

from typing import Any

import pytest

from services.adapters.cassandra import CassandraStore
from services.adapters.cassandra import works as works_module
from services.core.ports import Store
from tests.contracts.intake import *  # noqa: F403  (the contract's tests, run here)
from tests.contracts.intake import planner, take_all
from tests.contracts.store import T0, doi_work, uid


@pytest.fixture
def store(cassandra_store: CassandraStore) -> Store:
    """The contract's store: the session's CassandraStore."""
    return cassandra_store


async def test_a_take_reads_the_works_of_only_the_chunks_it_takes(
    cassandra_store: CassandraStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The listing of waiting chunks holds their names, not their works (a backlog of a million
    works would be read whole by every take): a take of one chunk's worth reads one chunk's
    works, however many chunks wait."""
    for n in range(3):
        works = [doi_work(f"10.1234/take.{uid()}.{n}.{i}") for i in range(2)]
        await cassandra_store.register(works, intake=True)
    cql = cassandra_store._cql
    asked: list[str] = []
    real = cql.run

    async def spy(name: str, params: Any) -> Any:
        asked.append(name)
        return await real(name, params)

    monkeypatch.setattr(cql, "run", spy)
    taken = await cassandra_store.take_intake(1, planner("src-take")[0])

    assert taken >= 1 and asked.count("intake_works") == 1
    assert "works" not in cql.stmt("intake_list").query_string.split("FROM")[0]


async def test_a_taken_chunk_is_scheduled_a_slice_at_a_time(
    cassandra_store: CassandraStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A take holds INTAKE_SLICE works of a chunk at a time, not the chunk (what it holds is
    bounded by the slice, however big the chunks an import wrote), and every work of the
    chunk gets its entries."""
    monkeypatch.setattr(works_module, "INTAKE_SLICE", 2)
    source = f"src{uid()}"
    ids = [f"10.1234/slice.{uid()}.{i}" for i in range(5)]
    await cassandra_store.register([doi_work(i) for i in ids], intake=True)
    sizes: list[int] = []
    plan, seen = planner(source)

    def sliced(works: Any) -> Any:
        sizes.append(len(works))
        return plan(works)

    assert await take_all(cassandra_store, sliced) >= 5
    assert set(ids) <= set(seen) and max(sizes) <= 2
    due = await cassandra_store.due(source, T0, 1000)  # other tests' chunks may be taken too
    assert set(ids) <= {e.work_id for e in due}
