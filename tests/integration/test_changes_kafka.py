"""The change feed and the SSE stream over real Kafka: readers with no group from any position
across the six partitions of alm.metrics.changed, retention gaps, and API replicas that each
serve the stream from their own consumer, with Last-Event-ID resuming exactly."""

from __future__ import annotations

import asyncio
import secrets
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from services.adapters.kafka import KafkaBus, ensure_topics, partition_of
from services.adapters.kafka.feed import KafkaChangeFeed
from services.adapters.sqlite import SqliteStore
from services.api.app import init_app
from services.bootstrap import api_context
from services.core.changefeed import FeedItem, Gap
from services.core.events import TOPIC_CHANGED, MetricChanged
from services.fetchers.registry import SOURCES
from services.settings import Settings
from tests.integration.conftest import Infra
from tests.sse_kit import Block, Reader
from tests.unit.changes_kit import change

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

WAIT = 30.0


@asynccontextmanager
async def topics(infra: Infra) -> AsyncIterator[tuple[str, KafkaBus]]:
    """A prefix of this test's own, its topics, and a bus publishing on them."""
    prefix = f"{infra.prefix}ch{secrets.token_hex(3)}."
    await ensure_topics(infra.kafka, sorted(SOURCES), 6, prefix=prefix)
    bus = KafkaBus(infra.kafka, prefix=prefix)
    try:
        yield prefix, bus
    finally:
        await bus.close()


async def publish(bus: KafkaBus, changes: list[MetricChanged]) -> None:
    """On alm.metrics.changed, one record each, keyed by work id (as the aggregator does)."""
    await bus.publish(TOPIC_CHANGED, [(c.work_id, c.to_dict()) for c in changes])


async def read_all(reader: Any, until: dict[int, int] | None = None) -> list[FeedItem]:
    """What `reader` gives until it has nothing more (or reached `until`)."""
    out: list[FeedItem] = []
    idle = 0
    while idle < 3:
        items, _ = await reader.read(500, 1.0, until)
        out += items
        idle = 0 if items else idle + 1
    return out


async def test_readers_start_anywhere_and_stop_at_until(infra: Infra) -> None:
    """end() is each partition's end; a reader from nothing reads everything, each partition
    in order; from a position it reads exactly what follows; `until` stops it exactly."""
    async with topics(infra) as (prefix, bus):
        changes = [change(n) for n in range(60)]
        await publish(bus, changes)
        feed = KafkaChangeFeed(infra.kafka, prefix)
        end = await feed.end()
        assert sum(end.values()) == 60 and len(end) == 6
        reader = feed.reader({})
        everything = await read_all(reader)
        await reader.close()
        assert sorted(i.value["work_id"] for i in everything) == sorted(c.work_id for c in changes)
        for item in everything:
            assert partition_of(item.value["work_id"].encode(), 6) == item.partition
        middle = {p: e // 2 for p, e in end.items()}
        reader = feed.reader(middle)
        half = await read_all(reader, until={p: e - 1 for p, e in end.items()})
        assert reader.position == {p: max(e - 1, middle[p]) for p, e in end.items()}
        rest = await read_all(reader)
        await reader.close()
        wanted = {(i.partition, i.offset) for i in everything if i.offset >= middle[i.partition]}
        assert {(i.partition, i.offset) for i in half + rest} == wanted
        assert len(half + rest) == len(wanted)


async def test_what_retention_removed_is_a_gap(infra: Infra) -> None:
    """Records deleted from the head of a partition (as retention does) are reported as a
    gap to a reader that asked for them; it goes on from the oldest kept."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from kafka import KafkaAdminClient, TopicPartition
    async with topics(infra) as (prefix, bus):
        await publish(bus, [change(n) for n in range(60)])
        feed = KafkaChangeFeed(infra.kafka, prefix)
        end = await feed.end()
        p = max(end, key=lambda k: end[k])
        admin = KafkaAdminClient(bootstrap_servers=infra.kafka)
        try:
            await asyncio.to_thread(
                admin.delete_records, {TopicPartition(prefix + TOPIC_CHANGED, p): 3}
            )
        finally:
            admin.close()
        reader = feed.reader({q: 0 for q in end})
        gaps: list[Gap] = []
        items: list[FeedItem] = []
        for _ in range(5):
            got, found = await reader.read(500, 1.0)
            items += got
            gaps += found
        await reader.close()
    assert gaps == [Gap(p, 0, 3)]
    assert min(i.offset for i in items if i.partition == p) == 3
    assert len(items) == 57


@asynccontextmanager
async def replica(infra: Infra, prefix: str, tmp: Path) -> AsyncIterator[TestClient[Any, Any]]:
    """An API process of the distributed mode (its own bus and feed) over a SQLite registry."""
    store = SqliteStore(tmp / "alm.sqlite")
    await store.migrate()
    settings = Settings(data_dir=tmp, bus="kafka", kafka_bootstrap=infra.kafka, topic_prefix=prefix)
    bus = KafkaBus(infra.kafka, prefix=prefix)
    try:
        async with TestClient(
            TestServer(init_app(api_context(settings, store=store, bus=bus)))
        ) as client:
            yield client
    finally:
        await bus.close()
        await store.close()


async def opened(client: TestClient[Any, Any], **headers: str) -> Reader:
    """An SSE stream, read up to its opening id if it starts live (one resuming from a
    Last-Event-ID sends what was missed first)."""
    resp = await client.get("/api/v1/changes", headers=headers, timeout=None)
    assert resp.status == 200, await resp.text()
    reader = Reader(resp)
    if headers:
        return reader
    async with asyncio.timeout(WAIT):
        async for block in reader.blocks():
            if block.id is not None and not block.dispatched:
                return reader
    raise AssertionError("no opening id")


async def take(reader: Reader, count: int) -> list[Block]:
    out: list[Block] = []
    async with asyncio.timeout(WAIT):
        async for block in reader.events():
            out.append(block)
            if len(out) == count:
                break
    return out


async def test_every_replica_serves_the_stream_and_last_event_id_resumes_exactly(
    infra: Infra, tmp_path: Path
) -> None:
    """Two API replicas each stream every change from their own consumer (no group shared);
    a client that read some from one and reconnects to the other with its Last-Event-ID
    gets exactly the rest, across all six partitions: none missed, none twice."""
    async with topics(infra) as (prefix, bus):
        await publish(bus, [change(n) for n in range(10)])  # before anyone listens
        (tmp_path / "a").mkdir()
        (tmp_path / "b").mkdir()
        async with (
            replica(infra, prefix, tmp_path / "a") as a,
            replica(infra, prefix, tmp_path / "b") as b,
        ):
            on_a, on_b = await opened(a), await opened(b)
            first = [change(n) for n in range(10, 70)]
            await publish(bus, first)
            got_a = await take(on_a, 25)
            got_b = await take(on_b, 60)
            on_a.response.close()
            later = [change(n) for n in range(70, 130)]
            await publish(bus, later)
            again = await opened(b, **{"Last-Event-ID": on_a.last_id})
            rest = await take(again, 95)
            again.response.close()
            on_b.response.close()
    assert {x.json["work_id"] for x in got_b} == {c.work_id for c in first}
    seen = [x.json["work_id"] for x in [*got_a, *rest]]
    assert sorted(seen) == sorted(c.work_id for c in [*first, *later])
    assert len(set(seen)) == len(seen)
    by_partition: dict[int, list[int]] = {}
    for x in [*got_a, *rest]:
        n = int(x.json["work_id"].rsplit("w", 1)[1])
        by_partition.setdefault(partition_of(x.json["work_id"].encode(), 6), []).append(n)
    assert all(v == sorted(v) for v in by_partition.values())  # each partition in order
