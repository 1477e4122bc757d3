"""The intake contract (tests/contracts/intake.py) against the session's CassandraStore; the
SQLite run is tests/unit/test_intake.py."""

from __future__ import annotations

from typing import Any

import pytest

from services.adapters.cassandra import CassandraStore
from services.core.ports import Store
from tests.contracts.intake import *  # noqa: F403  (the contract's tests, run here)
from tests.contracts.intake import planner
from tests.contracts.store import doi_work, uid


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
