"""Requests on the real server leave nothing for the cyclic collector: a finished request's
driver future (and, through it, the rows and statements of the call) is freed by reference
counting as soon as the caller drops the result (services/adapters/cassandra/window.py,
`release`)."""

from __future__ import annotations

import asyncio
import gc

import pytest
from cassandra import InvalidRequest
from cassandra.cluster import ResponseFuture

from services.adapters.cassandra import CassandraStore

pytestmark = pytest.mark.integration

ROUNDS = 20


def futures_alive() -> int:
    # type(), not isinstance(): the heap holds weak proxies, some to objects already gone
    return sum(1 for o in gc.get_objects() if type(o) is ResponseFuture)


async def test_finished_requests_are_freed_without_the_cyclic_collector(
    cassandra_store: CassandraStore,
) -> None:
    cql = await cassandra_store._ready()
    await cql.query("SELECT release_version FROM system.local", keyspace=None)  # warm
    gc.collect()
    gc.disable()  # what is still alive below is only what reference counting did not free
    try:
        before = futures_alive()
        rows = 0
        for _ in range(ROUNDS):
            # one request alone (query), a window of two (run_many), a paged read (pages)
            rows += len(await cql.query("SELECT release_version FROM system.local", keyspace=None))
            rows += sum(map(len, await cql.run_many([("due_sources", ()), ("due_sources", ())])))
            async for page in cql.pages(cql.stmt("due_sources"), (), fetch_size=10):
                rows += len(page)
            with pytest.raises(InvalidRequest):  # and one the server refuses
                await cql.query("SELECT no_such_column FROM system.local", keyspace=None)
        await asyncio.sleep(0.2)  # the driver's thread done with its last callbacks
        left = futures_alive() - before
    finally:
        gc.enable()
    assert rows >= ROUNDS  # the requests ran and answered
    # 5 * ROUNDS requests were made; without `release` every one of them is still alive here
    assert left <= 2, f"{left} of {5 * ROUNDS} finished requests wait for the cyclic collector"
