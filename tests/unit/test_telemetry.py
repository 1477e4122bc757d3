"""The services' own Prometheus metrics: consumer lag per topic/partition/group, API latency by
route and status, store call latency and failures, and the pipeline's counters."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client import REGISTRY

from services.adapters.memory.bus import MemoryBus
from services.bootstrap import make_store
from services.embedded import keep_stepping, refresh_until_idle
from services.settings import Settings
from services.telemetry.lag import PartitionLag
from services.telemetry.store import instrument, operations
from tests.unit.pipeline_kit import api_client, pipeline_kit

PEERJ = "10.7717/peerj.4375"


def sample(name: str, **labels: str) -> float | None:
    """The current value of one exported series (None if it is not exported)."""
    return REGISTRY.get_sample_value(name, labels)


def count(name: str, **labels: str) -> float:
    """A counter's or a histogram's _count value, 0 when not exported yet."""
    return sample(name, **labels) or 0.0


def _group() -> str:
    return f"test-{secrets.token_hex(4)}"  # series of other tests never collide with ours


# -- consumer lag ---------------------------------------------------------------------------


def test_lag_is_end_minus_committed_and_needs_both() -> None:
    """No series until both offsets are known; then end - committed, never negative."""
    group = _group()
    lag = PartitionLag(group)
    lag.end(("alm.metrics.raw", 2), 40)
    assert sample("alm_consumer_lag", topic="alm.metrics.raw", partition="2", group=group) is None
    lag.started(("alm.metrics.raw", 2), 10)
    assert sample("alm_consumer_lag", topic="alm.metrics.raw", partition="2", group=group) == 30
    lag.committed(("alm.metrics.raw", 2), 35)
    lag.started(("alm.metrics.raw", 2), 0)  # a later start does not undo the member's commit
    assert lag.lag(("alm.metrics.raw", 2)) == 5
    lag.end(("alm.metrics.raw", 2), None)  # unknown end: the last one stands
    lag.committed(("alm.metrics.raw", 2), 50)  # ahead of the end seen: 0, not -10
    assert sample("alm_consumer_lag", topic="alm.metrics.raw", partition="2", group=group) == 0


def test_partitions_given_up_are_no_longer_exported() -> None:
    """After a rebalance only the owned partitions have series from this member."""
    group = _group()
    lag = PartitionLag(group)
    for p in range(3):
        lag.started(("t", p), 0)
        lag.end(("t", p), 10 + p)
    lag.owned([("t", 1)])
    exported = [
        sample("alm_consumer_lag", topic="t", partition=str(p), group=group) for p in range(3)
    ]
    assert exported == [None, 11, None]
    lag.close()
    assert sample("alm_consumer_lag", topic="t", partition="1", group=group) is None


async def test_memory_bus_consumer_exports_its_lag() -> None:
    """The in-process bus: polled but uncommitted records are lag; a commit clears it."""
    group = _group()
    bus = MemoryBus(lag=PartitionLag)
    consumer = bus.consumer(["alm.works"], group)
    await bus.publish("alm.works", [(f"w{i}", {"i": i}) for i in range(5)])
    assert len(await consumer.poll(3, 0)) == 3
    assert sample("alm_consumer_lag", topic="alm.works", partition="0", group=group) == 5
    await consumer.commit()
    assert sample("alm_consumer_lag", topic="alm.works", partition="0", group=group) == 2
    assert bus.lag("alm.works", group) == 2
    await consumer.poll(10, 0)
    await consumer.commit()
    assert sample("alm_consumer_lag", topic="alm.works", partition="0", group=group) == 0
    await consumer.close()
    assert sample("alm_consumer_lag", topic="alm.works", partition="0", group=group) is None


# -- store ------------------------------------------------------------------------------------


def test_every_store_port_operation_is_timed() -> None:
    """The operations are the Store port's coroutine methods, from every port it is made of."""
    ops = operations()
    assert {"register", "states", "write_aggregates", "due", "set_due", "migrate"} <= set(ops)
    assert {"source_statuses", "add_raw_responses", "close"} <= set(ops)
    assert not [op for op in ops if op.startswith("_")]


async def test_store_calls_are_timed_and_failures_counted(tmp_path: Path) -> None:
    """make_store's store stays a SqliteStore and observes each call; a raising call counts."""
    store = make_store(Settings(data_dir=tmp_path))
    assert type(store).__name__ == "SqliteStore"
    before = count("alm_store_call_duration_seconds_count", store="sqlite", call="count_works")
    await store.migrate()
    assert await store.count_works() == 0
    after = count("alm_store_call_duration_seconds_count", store="sqlite", call="count_works")
    assert after == before + 1
    await store.close()

    class Broken:
        async def count_works(self) -> int:
            raise ConnectionError("no node answers")

    broken = instrument(Broken(), "broken")
    with pytest.raises(ConnectionError):
        await broken.count_works()
    assert count("alm_store_call_errors_total", store="broken", call="count_works") == 1
    assert count("alm_store_call_duration_seconds_count", store="broken", call="count_works") == 1


# -- API ----------------------------------------------------------------------------------------


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    async with pipeline_kit(tmp_path) as kit:
        await kit.register([PEERJ])
        await refresh_until_idle(kit.pipeline)
        async with api_client(kit, tmp_path) as c:
            yield c


@pytest.mark.parametrize(
    ("path", "route", "status"),
    [
        (f"/api/v1/works/{PEERJ}", "/api/v1/works/{id}", "200"),
        ("/api/v1/works/10.9999/nobody", "/api/v1/works/{id}", "404"),
        ("/api/v1/works/not-an-id", "/api/v1/works/{id}", "400"),
        (f"/api/v1/works/{PEERJ}/history?period=decade", "/api/v1/works/{id}/history", "400"),
        ("/no/such/path", "unmatched", "404"),
        ("/healthz", "/healthz", "200"),
    ],
)
async def test_api_latency_by_route_template_and_status(
    client: TestClient[Any, Any], path: str, route: str, status: str
) -> None:
    """Each request is observed under its route template (never the raw path) and the status
    it was answered with, JSON errors included."""
    labels = {"route": route, "method": "GET", "status": status}
    before = count("alm_api_request_duration_seconds_count", **labels)
    resp = await client.get(path)
    assert str(resp.status) == status
    assert count("alm_api_request_duration_seconds_count", **labels) == before + 1


# -- pipeline counters -------------------------------------------------------------------------


async def test_pipeline_counters_follow_the_services(tmp_path: Path) -> None:
    """Refresh requests per source, folded observations and published changes count what the
    scheduler and the aggregator did."""
    async with pipeline_kit(tmp_path) as kit:
        sent = count("alm_refresh_requests_total", source="crossref")
        folded = count("alm_aggregated_observations_total")
        changed = count("alm_metric_changes_total")
        await kit.register([PEERJ])
        summary = await refresh_until_idle(kit.pipeline)
        assert summary.requested == 3
        assert count("alm_refresh_requests_total", source="crossref") == sent + 1
        assert count("alm_aggregated_observations_total") == folded + 3
        assert count("alm_metric_changes_total") == changed + summary.changes


async def test_a_failing_step_is_counted_per_service() -> None:
    """keep_stepping counts each failed step under the service's name, then retries."""
    name = f"test-{secrets.token_hex(3)}"
    stop = asyncio.Event()
    calls = 0

    async def step(timeout: float) -> int:
        nonlocal calls
        calls += 1
        if calls >= 3:
            stop.set()
        raise ConnectionError("broker down")

    await asyncio.wait_for(keep_stepping(name, step, stop, backoff=0.01), 5)
    assert count("alm_step_failures_total", service=name) == 3
