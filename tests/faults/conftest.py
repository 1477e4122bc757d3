"""Fixtures of the distributed fault suite: a private Kafka and Cassandra (tests/faults/
cluster.py) started once for the session, the synthetic stub upstream behind toxiproxy, the
oracle's expectation, and a fresh scenario stack per test.

Skipped unless ALM_FAULTS is set (bin/test sets it with the integration tests); with it set,
everything must start, or the suite fails. ALM_FAULTS_KEEP=1 leaves the servers running
afterwards (a second run then starts in seconds).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from services.adapters.cassandra import CassandraStore
from tests.faults import scenario as sc
from tests.faults.cluster import STATE, Cluster
from tests.faults.oracle import Expected, expected
from tests.faults.toxiproxy import Toxiproxy, binary


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """The private servers, up for the whole session (stopped at its end)."""
    if not os.environ.get("ALM_FAULTS"):
        pytest.skip(
            "the fault suite starts its own Kafka and Cassandra and kills them: set ALM_FAULTS=1 "
            "(bin/test does, with the integration tests)"
        )
    if binary() is None:
        pytest.fail("ALM_FAULTS is set but toxiproxy is not installed: run bin/install-tools")
    for tool in ("java", "mvn"):
        if shutil.which(tool) is None:
            pytest.fail(f"ALM_FAULTS is set but {tool} is not installed")
    (STATE / "logs").mkdir(parents=True, exist_ok=True)
    found = Cluster()
    started = time.monotonic()
    asyncio.run(found.up())
    print(f"\n[faults] private Kafka and Cassandra ready in {time.monotonic() - started:.1f} s")
    asyncio.run(_migrate(found))
    yield found
    if not os.environ.get("ALM_FAULTS_KEEP"):
        asyncio.run(found.down())


async def _migrate(cluster: Cluster) -> None:
    store = CassandraStore([cluster.cassandra_host], cluster.cassandra_port, sc.KEYSPACE)
    try:
        await store.migrate()
    finally:
        await store.close()


@pytest.fixture(scope="session")
def upstream(cluster: Cluster) -> Iterator[Toxiproxy]:
    """The synthetic stub upstream, and toxiproxy (whose proxy each scenario points at it)."""
    stub = sc.spawn_stub()
    proxy = Toxiproxy(sc.TOXIPROXY_PORT)
    try:
        proxy.spawn()
        asyncio.run(proxy.ready())
        asyncio.run(sc.stub_ready())
        yield proxy
    finally:
        proxy.stop()
        stub.terminate()
        stub.wait(30)


@pytest.fixture(scope="session")
def want(tmp_path_factory: pytest.TempPathFactory) -> Expected:
    """The oracle: what the works' totals, events and history must be."""
    tmp: Path = tmp_path_factory.mktemp("oracle")  # made: expected() needs it to exist
    started = time.monotonic()
    found = asyncio.run(expected(sc.dois(), sc.SOURCES_RUN, tmp))
    print(
        f"\n[faults] oracle: {len(found.totals)} (work, source) pairs in "
        f"{time.monotonic() - started:.1f} s"
    )
    return found


@asynccontextmanager
async def _started(
    cluster: Cluster, upstream: Toxiproxy, want: Expected, name: str, hold_back: bool
) -> AsyncIterator[sc.Scenario]:
    scenario = sc.Scenario(name.removeprefix("test_"), cluster, upstream, want)
    try:
        await scenario.start(hold_back)
        yield scenario
    finally:
        await scenario.stop()


@pytest.fixture
async def stack(
    cluster: Cluster, upstream: Toxiproxy, want: Expected, request: pytest.FixtureRequest
) -> AsyncIterator[sc.Scenario]:
    """A started scenario stack named after the test, every work registered and refreshed."""
    async with _started(cluster, upstream, want, request.node.name, False) as scenario:
        yield scenario


@pytest.fixture
async def half_registered(
    cluster: Cluster, upstream: Toxiproxy, want: Expected, request: pytest.FixtureRequest
) -> AsyncIterator[sc.Scenario]:
    """A started scenario stack with half the works registered (and refreshed); the test
    registers the rest (`register_rest`) when it wants them taken in."""
    async with _started(cluster, upstream, want, request.node.name, True) as scenario:
        yield scenario
