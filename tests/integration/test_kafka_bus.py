"""KafkaBus against the real broker: publish, consume in groups, commit, redeliver."""

from __future__ import annotations

import asyncio
import json
import secrets
import warnings
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cassandra import OperationTimedOut
from prometheus_client import REGISTRY

from services.adapters.kafka import KafkaBus, KafkaBusConsumer, ensure_topics
from services.adapters.sqlite import SqliteStore
from services.cli.commands import topics_create
from services.core.events import (
    TOPIC_CHANGED,
    TOPIC_RAW,
    TOPIC_RETRY,
    TOPIC_WORKS,
    FailedRefresh,
    RefreshRequest,
)
from services.core.ports import Message
from services.core.staleness import Policy
from services.core.works import WorkRef
from services.embedded import keep_stepping
from services.scheduler.service import Scheduler, SchedulerSettings
from services.settings import Settings
from services.telemetry.lag import PartitionLag
from tests.integration.conftest import Infra
from tests.unit.test_lossless import Flaky

pytestmark = pytest.mark.integration

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # kafka-python's importlib use
    from kafka import KafkaProducer


def send_with_kafka_python(infra: Infra, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    """Send `records` with kafka-python's own producer and default partitioner (the reference
    the bus is checked against: the Java client's key partitioning)."""
    producer = KafkaProducer(bootstrap_servers=infra.kafka, client_id="it-reference")
    try:
        for future in [producer.send(topic, key=k, value=v) for k, v in records]:
            future.get(timeout=30)
    finally:
        producer.close(timeout=30)


@pytest.fixture
async def bus(infra: Infra) -> AsyncIterator[KafkaBus]:
    """A bus on this run's topics, which exist."""
    await ensure_topics(infra.kafka, ["crossref"], 6, prefix=infra.prefix)
    kafka = KafkaBus(infra.kafka, client_id="it", prefix=infra.prefix)
    yield kafka
    await kafka.close()


async def drain(consumer: KafkaBusConsumer, want: int, within: float = 30.0) -> list[Message]:
    """Poll until `want` records arrived (or `within` seconds passed)."""
    out: list[Message] = []
    deadline = asyncio.get_running_loop().time() + within
    while len(out) < want and asyncio.get_running_loop().time() < deadline:
        out.extend(await consumer.poll(1000, 0.5))
    return out


async def test_ensure_topics_is_idempotent(infra: Infra) -> None:
    """A second ensure_topics creates nothing and fails on nothing."""
    prefix = f"{infra.prefix}idem{secrets.token_hex(2)}."
    created = await ensure_topics(infra.kafka, ["crossref", "openalex"], 6, prefix=prefix)
    assert f"{prefix}{TOPIC_RAW}" in created and f"{prefix}alm.refresh.openalex" in created
    assert await ensure_topics(infra.kafka, ["crossref", "openalex"], 6, prefix=prefix) == []
    kafka = KafkaBus(infra.kafka, prefix=prefix)
    try:
        assert await kafka.partitions(TOPIC_RAW) == 6
        assert await kafka.partitions(TOPIC_CHANGED) == 6
        assert await kafka.partitions(TOPIC_WORKS) == 3
    finally:
        await kafka.close()


async def test_publish_then_consume_keyed_json(bus: KafkaBus) -> None:
    """Published records come back with their key and value; a key stays on one partition."""
    group = f"g{secrets.token_hex(3)}"
    items = [(f"10.1/k{i % 5}", {"n": i, "text": "é"}) for i in range(50)]
    await bus.publish(TOPIC_WORKS, items)
    consumer = bus.consumer([TOPIC_WORKS], group)
    got = await drain(consumer, 50)
    await consumer.commit()
    assert sorted(m.value["n"] for m in got) == list(range(50))
    assert {m.topic for m in got} == {TOPIC_WORKS}
    by_key: dict[str, set[int]] = {}
    for m in got:
        by_key.setdefault(m.key, set()).add(m.partition)
        assert m.value["text"] == "é"
    assert all(len(parts) == 1 for parts in by_key.values())
    for key in by_key:  # per key, in publication order
        ns = [m.value["n"] for m in got if m.key == key]
        assert ns == sorted(ns)


async def test_uncommitted_records_are_redelivered_to_the_next_member(bus: KafkaBus) -> None:
    """A member that stops without committing leaves its batch to the next one; committed
    records are not seen again."""
    group = f"g{secrets.token_hex(3)}"
    topic = TOPIC_CHANGED
    await bus.publish(topic, [(f"w{i}", {"n": i}) for i in range(20)])
    first = bus.consumer([topic], group)
    assert len(await drain(first, 20)) == 20
    await first.commit()
    await bus.publish(topic, [(f"w{i}", {"n": i}) for i in range(20, 30)])
    second = bus.consumer([topic], group)
    await first.close()  # leaves the group: the second member gets every partition
    polled = await drain(second, 10)
    assert sorted(m.value["n"] for m in polled) == list(range(20, 30))
    await second.close()  # no commit: the next member must see the same 10 again
    third = bus.consumer([topic], group)
    again = await drain(third, 10)
    assert sorted(m.value["n"] for m in again) == list(range(20, 30))
    await third.commit()
    await third.close()
    fourth = bus.consumer([topic], group)
    assert await fourth.poll(100, 3.0) == []
    await fourth.close()


async def test_undecodable_value_is_handed_on_not_raised(bus: KafkaBus, infra: Infra) -> None:
    """A non-JSON record reaches the caller as a value its schema check will reject."""
    group = f"g{secrets.token_hex(3)}"
    await asyncio.to_thread(
        send_with_kafka_python, infra, bus.topic(TOPIC_RAW), [(b"k", b"<html>")]
    )
    consumer = bus.consumer([TOPIC_RAW], group)
    got = [m for m in await drain(consumer, 1) if m.key == "k"]
    await consumer.close()
    assert got and got[0].value["undecodable"] == "<html>"


async def test_read_a_partition_range(bus: KafkaBus) -> None:
    """read() returns exactly the records of one partition in [start, end)."""
    await bus.publish(TOPIC_CHANGED, [("same-key", {"n": i}) for i in range(5)])
    consumer = bus.consumer([TOPIC_CHANGED], f"g{secrets.token_hex(3)}")
    mine: list[Message] = []
    for _ in range(60):
        mine += [m for m in await consumer.poll(1000, 0.5) if m.key == "same-key"]
        if len(mine) >= 5:
            break
    await consumer.close()
    part = mine[-1].partition
    end = (await bus.end_offsets(TOPIC_CHANGED, [part]))[part]
    tail = await bus.read(TOPIC_CHANGED, {part: (end - 3, end)})
    assert [m.value["n"] for m in tail] == [2, 3, 4]
    assert [m.offset for m in tail] == [end - 3, end - 2, end - 1]


async def test_publishing_lands_on_the_partitions_kafka_python_picks(
    infra: Infra, bus: KafkaBus
) -> None:
    """The bus's (aiokafka) producer puts a key on the partition kafka-python's default
    partitioner would: the published-changes check relies on raw and changed partitions
    matching, and other clients on the Java client's key partitioning."""
    group = f"g{secrets.token_hex(3)}"
    keys = [f"10.5555/p.{i}" for i in range(60)]
    await bus.publish(TOPIC_CHANGED, [(k, {"via": "aiokafka", "k": k}) for k in keys])
    reference = [(k.encode(), json.dumps({"via": "kafka-python", "k": k}).encode()) for k in keys]
    await asyncio.to_thread(send_with_kafka_python, infra, bus.topic(TOPIC_CHANGED), reference)
    consumer = bus.consumer([TOPIC_CHANGED], group)
    got = [m for m in await drain(consumer, 120) if m.key in set(keys)]
    await consumer.close()
    where: dict[str, dict[str, int]] = {}
    for m in got:
        where.setdefault(m.key, {})[m.value["via"]] = m.partition
    assert len(where) == 60 and all(len(p) == 2 for p in where.values())
    assert all(p["aiokafka"] == p["kafka-python"] for p in where.values())
    assert len({p["aiokafka"] for p in where.values()}) > 1  # spread, not all on one


async def test_packed_events_land_on_their_own_keys_partitions(infra: Infra, bus: KafkaBus) -> None:
    """Packed into shared records, each event still lands on the partition its key gives alone,
    in order per key, in fewer records than events; the consumer sees every event once."""
    group = f"g{secrets.token_hex(3)}"
    tag = secrets.token_hex(3)
    keys = [f"10.5555/{tag}.{i}" for i in range(90)]
    topic = TOPIC_RAW
    parts = list(range(6))
    before = await bus.end_offsets(topic, parts)
    packer = KafkaBus(infra.kafka, client_id="it-pack", prefix=infra.prefix)
    try:
        await packer.publish(topic, [(k, {"k": k, "n": n}) for n, k in enumerate(keys)], pack=20)
    finally:
        await packer.close()
    after = await bus.end_offsets(topic, parts)
    records = sum(after[p] - before[p] for p in parts)
    assert 6 <= records <= 12  # 90 events: one or two records per partition, not 90
    await bus.publish(topic, [(k, {"k": k, "n": -1}) for k in keys])  # one record each
    consumer = bus.consumer([topic], group)
    got = [m for m in await drain(consumer, 180 + 1) if m.key in set(keys)]
    await consumer.close()
    packed = {m.key: m.partition for m in got if m.value["n"] >= 0}
    single = {m.key: m.partition for m in got if m.value["n"] < 0}
    assert len([m for m in got if m.value["n"] >= 0]) == 90  # each once
    assert packed == single and len(packed) == 90
    assert len(set(packed.values())) > 1
    for part in set(packed.values()):  # publication order within a partition
        ns = [m.value["n"] for m in got if m.partition == part and m.value["n"] >= 0]
        assert ns == sorted(ns)


async def test_a_poll_takes_whole_packed_records_and_commits_no_further(bus: KafkaBus) -> None:
    """A poll hands out whole records, up to about max_records events; what it did not hand
    out is read again, so a commit never passes an event that was not processed."""
    group = f"g{secrets.token_hex(3)}"
    key = f"one-key-{secrets.token_hex(3)}"  # one partition: four records of 5
    await bus.publish(TOPIC_CHANGED, [(key, {"n": n}) for n in range(20)], pack=5)
    first = bus.consumer([TOPIC_CHANGED], group)
    got: list[Message] = []
    for _ in range(60):
        got = [m for m in await first.poll(6, 0.5) if m.key == key]
        if got:
            break
    assert [m.value["n"] for m in got] in ([0, 1, 2, 3, 4], list(range(10)))
    await first.commit()
    await first.close()
    second = bus.consumer([TOPIC_CHANGED], group)
    rest = [m for m in await drain(second, 20 - len(got)) if m.key == key]
    await second.close()
    assert [m.value["n"] for m in rest] == list(range(len(got), 20))


def _lags(topic: str, group: str, partitions: int) -> dict[int, float]:
    """The alm_consumer_lag series this process exports for `group` on `topic`."""
    out = {}
    for p in range(partitions):
        labels = {"topic": topic, "partition": str(p), "group": group}
        value = REGISTRY.get_sample_value("alm_consumer_lag", labels)
        if value is not None:
            out[p] = value
    return out


async def test_a_member_exports_the_lag_of_its_partitions(infra: Infra) -> None:
    """alm_consumer_lag per partition: records polled but not committed are lag, a commit
    clears them, records published since count again, and leaving the group unexports."""
    prefix = f"{infra.prefix}lag{secrets.token_hex(2)}."
    await ensure_topics(infra.kafka, [], 6, prefix=prefix)
    kafka = KafkaBus(infra.kafka, prefix=prefix, lag=PartitionLag)
    group = f"g{secrets.token_hex(3)}"
    topic, real_group = prefix + TOPIC_WORKS, prefix + group  # names as the broker knows them
    try:
        await kafka.publish(TOPIC_WORKS, [(f"w{i}", {"n": i}) for i in range(30)])
        consumer = kafka.consumer([TOPIC_WORKS], group)
        assert len(await drain(consumer, 30)) == 30
        assert sum(_lags(topic, real_group, 3).values()) == 30
        await consumer.commit()
        assert _lags(topic, real_group, 3) == {0: 0, 1: 0, 2: 0}
        await kafka.publish(TOPIC_WORKS, [(f"v{i}", {"n": i}) for i in range(10)])
        assert len(await drain(consumer, 10)) == 10
        assert sum(_lags(topic, real_group, 3).values()) == 10
        await consumer.commit()
        assert sum(_lags(topic, real_group, 3).values()) == 0
        await consumer.close()
        assert _lags(topic, real_group, 3) == {}
    finally:
        await kafka.close()


async def test_end_offsets_of_a_partition_the_topic_lacks_is_a_clear_error(infra: Infra) -> None:
    """Asking a 2-partition topic for partitions 0..3 names the topic and the missing
    partitions (kafka-python alone answers a bare KeyError); the partitions it has answer."""
    prefix = f"{infra.prefix}eo{secrets.token_hex(2)}."
    await ensure_topics(infra.kafka, ["crossref"], 2, prefix=prefix)
    kafka = KafkaBus(infra.kafka, prefix=prefix)
    try:
        await kafka.publish(TOPIC_RAW, [(f"w{i}", {"n": i}) for i in range(4)])
        with pytest.raises(
            ValueError, match=r"alm\.metrics\.raw has 2 partitions: no partition \[2, 3\]"
        ):
            await kafka.end_offsets(TOPIC_RAW, [0, 1, 2, 3])
        ends = await kafka.end_offsets(TOPIC_RAW, [0, 1])
        assert set(ends) == {0, 1} and sum(ends.values()) == 4
    finally:
        await kafka.close()


async def test_topics_create_with_the_brokers_replication_factor(infra: Infra) -> None:
    """`alm topics create` (replication factor -1: the brokers' default.replication.factor)
    creates every topic with the partitions asked for, and a second run creates nothing."""
    prefix = f"{infra.prefix}rf{secrets.token_hex(2)}."
    env = {"ALM_BUS": "kafka", "ALM_KAFKA_BOOTSTRAP": infra.kafka, "ALM_TOPIC_PREFIX": prefix}
    settings = Settings.from_env(env)
    assert await topics_create(settings, 2) == 0
    kafka = KafkaBus(infra.kafka, prefix=prefix)
    try:
        assert await kafka.partitions(TOPIC_RAW) == 2
        assert await kafka.partitions("alm.refresh.mendeley") == 2
    finally:
        await kafka.close()
    assert await ensure_topics(infra.kafka, ["crossref"], 2, prefix=prefix, replication=-1) == []


async def test_a_rewind_polls_the_uncommitted_batch_again(bus: KafkaBus) -> None:
    """After a rewind the member reads again from the group's committed offsets: a batch
    whose processing failed is polled again, and the next commit does not pass it."""
    group = f"g{secrets.token_hex(3)}"
    topic = TOPIC_CHANGED
    tag = secrets.token_hex(3)
    await bus.publish(topic, [(f"{tag}.{i}", {"n": i}) for i in range(10)])
    consumer = bus.consumer([topic], group)
    first = [m for m in await drain(consumer, 10) if m.key.startswith(tag)]
    assert sorted(m.value["n"] for m in first) == list(range(10))
    await consumer.commit()
    await bus.publish(topic, [(f"{tag}.{i}", {"n": i}) for i in range(10, 20)])
    failed = [m for m in await drain(consumer, 10) if m.key.startswith(tag)]
    assert sorted(m.value["n"] for m in failed) == list(range(10, 20))
    await consumer.rewind()  # the step that polled them failed
    again = [m for m in await drain(consumer, 10) if m.key.startswith(tag)]
    assert sorted(m.value["n"] for m in again) == list(range(10, 20))  # not 0-9: committed
    await consumer.close()


async def test_a_scheduler_step_that_fails_once_has_its_batch_redelivered(
    infra: Infra, tmp_path: Path
) -> None:
    """The scheduler over the real broker, its due-index write failing once (Cassandra
    paused): the retries it had polled are polled again and scheduled. Before, the consumer's
    position was past them and the next commit skipped them: never scheduled."""
    prefix = f"{infra.prefix}rw{secrets.token_hex(2)}."
    await ensure_topics(infra.kafka, ["crossref"], 6, prefix=prefix)
    kafka = KafkaBus(infra.kafka, client_id="it-rewind", prefix=prefix)
    store = Flaky(SqliteStore(tmp_path / "alm.sqlite"))
    await store.inner.migrate()
    now = datetime.now(UTC)
    ids = [f"10.5555/rewind.{n}" for n in range(40)]
    failed = [
        FailedRefresh(RefreshRequest(WorkRef(w), "crossref", now, "retry", 0, 1, now), "x", now)
        for w in ids
    ]
    await kafka.publish(TOPIC_RETRY, [(f.request.work.work_id, f.to_dict()) for f in failed])
    store.fail("set_due", 1, OperationTimedOut("timed out"))
    scheduler = Scheduler([], kafka, store, Policy(), SchedulerSettings(), lambda: now)
    stop = asyncio.Event()

    async def scheduled() -> list[str]:
        return sorted(e.work_id for e in await store.inner.due("crossref", now, 100))

    loop = asyncio.create_task(keep_stepping("scheduler", scheduler.step, stop, backoff=0.1))
    try:
        for _ in range(120):
            if await scheduled() == sorted(ids):
                break
            await asyncio.sleep(0.25)
    finally:
        stop.set()
        await loop
        await kafka.close()
    assert store.calls["set_due"] > 40  # the failed one, then every retry
    assert await scheduled() == sorted(ids)
    await store.inner.close()
