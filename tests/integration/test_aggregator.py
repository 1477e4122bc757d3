"""The faust aggregator as real processes on Kafka and Cassandra: every observation counted
once, no change lost or emitted twice, across redelivery, two processes, restarts and crashes."""

from __future__ import annotations

import asyncio
import collections
import copy
import json
import secrets
import signal
import warnings
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from services.adapters.cassandra import CassandraStore
from services.adapters.kafka import KafkaBus, ensure_topics
from services.aggregator.published import PublishedChanges
from services.aggregator.records import id_of_value
from services.aggregator.service import Aggregator
from services.core.events import TOPIC_DEADLETTER, TOPIC_RAW, Observation, Status
from services.core.staleness import Policy
from tests.integration.conftest import Infra
from tests.integration.stack import Stack, changed_events, eventually, free_port, service_env

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

T0 = datetime(2026, 11, 25, 9, 30, 15, 654321, tzinfo=UTC)


@dataclass
class Lane:
    """One test's private topics, consumer group, bus and store (shared keyspace)."""

    infra: Infra
    prefix: str
    bus: KafkaBus
    store: CassandraStore
    stack: Stack

    def observations(self, tag: str, n: int, at: datetime = T0) -> list[Observation]:
        """One observation each for `n` new works (citations 1..n: every one is a change)."""
        return [
            Observation(f"10.5555/{tag}.{i}", "crossref", at, Status.OK, {"citations": i + 1})
            for i in range(n)
        ]

    async def publish(self, observations: list[Observation], pack: int = 0) -> None:
        """Put observations on this lane's alm.metrics.raw (`pack` a record, as fetchers do)."""
        items = [(o.work_id, o.to_dict()) for o in observations]
        await self.bus.publish(TOPIC_RAW, items, pack=pack)

    async def stored(self, observations: list[Observation]) -> int:
        """How many of `observations` are the stored state of their work."""
        states = await self.store.states([(o.work_id, o.source) for o in observations])
        return sum(
            1
            for o in observations
            if (s := states.get((o.work_id, o.source))) and s.retrieved_at == o.retrieved_at
        )

    async def changes(self, tag: str) -> collections.Counter[str]:
        """Change ids on alm.metrics.changed for works of `tag`, with their counts."""
        found: collections.Counter[str] = collections.Counter()
        for message in await changed_events(self.bus):
            if f"/{tag}." in message.key:
                cid = id_of_value(message.value)
                assert cid is not None
                found[cid] += 1
        return found

    def aggregator(self, name: str = "aggregator") -> object:
        """Start one `alm aggregator` process."""
        return self.stack.start(name, "aggregator")

    async def all_stored(self, observations: list[Observation], timeout: float = 120) -> None:
        """Wait until every observation is the stored state of its work."""
        n = len(observations)

        async def done() -> bool:
            return await self.stored(observations) == n

        await eventually(done, timeout, f"{n} observations stored", self.stack)


@pytest.fixture
async def lane(infra: Infra, tmp_path: Path) -> AsyncIterator[Lane]:
    """Fresh topics and group for one test; its services are stopped at the end."""
    prefix = f"{infra.prefix}{secrets.token_hex(3)}."
    await ensure_topics(infra.kafka, ["crossref"], 6, prefix=prefix)
    bus = KafkaBus(infra.kafka, client_id="it-agg", prefix=prefix)
    store = CassandraStore([infra.cassandra_host], infra.cassandra_port, infra.keyspace)
    await store.migrate()
    stack = Stack(service_env(infra, prefix, tmp_path / "data"), tmp_path)
    yield Lane(infra, prefix, bus, store, stack)
    await stack.stop_all()
    await bus.close()
    await store.close()


def members(infra: Infra, group: str) -> list[list[int]]:
    """The raw partitions each member of `group` is assigned."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from kafka import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=infra.kafka)
    try:
        described = admin.describe_groups([group])[group]
    finally:
        admin.close()
    if described["group_state"] != "Stable":
        return []
    return [
        sorted(p for a in m["member_assignment"]["assigned_partitions"] for p in a["partitions"])
        for m in described["members"]
    ]


async def test_each_change_once_and_redelivery_changes_nothing(lane: Lane) -> None:
    """Observations become states and one change each; the same observations delivered again
    (and an older one) change no state and emit nothing."""
    lane.aggregator()
    batch = lane.observations("once", 300)
    await lane.publish(batch)
    await lane.all_stored(batch)
    await eventually(
        lambda: _count_is(lane, "once", 300), 60, "300 changes on the topic", lane.stack
    )
    await lane.publish(batch[:100])  # redelivered
    await lane.publish(lane.observations("once", 50, at=T0 - timedelta(days=1)))  # older
    marker = lane.observations("once-marker", 1)
    await lane.publish(marker)  # same partitions in order after the repeats: a barrier
    await lane.all_stored(marker)
    await asyncio.sleep(2)
    changes = await lane.changes("once")
    assert len(changes) == 300 and set(changes.values()) == {1}
    assert await lane.stored(batch) == 300
    history = await lane.store.history(batch[0].work_id, "crossref")
    assert [p.metrics for p in history] == [{"citations": 1}]


async def _count_is(lane: Lane, tag: str, n: int) -> bool:
    return sum((await lane.changes(tag)).values()) == n


async def test_two_aggregators_split_partitions_and_count_each_work_once(lane: Lane) -> None:
    """Two processes in one group share the six partitions; together they store every
    observation and emit exactly one change per observation."""
    lane.aggregator("aggregator-a")
    lane.aggregator("aggregator-b")
    group = f"{lane.prefix}alm-aggregator"

    async def split() -> bool:
        parts = await asyncio.to_thread(members, lane.infra, group)
        every = sorted(p for ps in parts for p in ps)
        return len(parts) == 2 and all(parts) and every == list(range(6))

    await eventually(split, 90, "two members sharing all six partitions", lane.stack)
    batch = lane.observations("split", 3000)
    await lane.publish(batch)
    await lane.all_stored(batch)
    await eventually(
        lambda: _count_is(lane, "split", 3000), 60, "3000 changes on the topic", lane.stack
    )
    changes = await lane.changes("split")
    assert len(changes) == 3000 and set(changes.values()) == {1}
    assert [len(p) for p in await asyncio.to_thread(members, lane.infra, group)] == [3, 3]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["stop", "crash"])
async def test_restart_mid_stream_loses_nothing_and_repeats_nothing(
    lane: Lane, sig: signal.Signals
) -> None:
    """Stopped (or killed) halfway through a stream and started again, the aggregator stores
    every observation and the topic holds exactly one change per observation."""
    first = lane.aggregator("aggregator-1")
    batch = lane.observations(f"restart{sig.value}", 8000)
    await lane.publish(batch)

    async def halfway() -> bool:
        return await lane.stored(batch) > 500

    await eventually(halfway, 120, "the first observations stored", lane.stack)
    code = await first.stop(sig)  # type: ignore[attr-defined]
    assert code in (0, -signal.SIGKILL)
    assert await lane.stored(batch) < len(batch), "stopped too late to test anything"
    lane.aggregator("aggregator-2")
    await lane.all_stored(batch, timeout=180)
    tag = f"restart{sig.value}"
    await eventually(lambda: _count_is(lane, tag, 8000), 60, "8000 changes", lane.stack)
    changes = await lane.changes(tag)
    assert len(changes) == 8000 and set(changes.values()) == {1}


@pytest.mark.parametrize("pack", [0, 40], ids=["one-a-record", "packed"])
async def test_changes_published_before_a_crash_are_not_published_again(
    lane: Lane, pack: int
) -> None:
    """The window the ordering leaves open: changes published, state not yet written, offsets
    not committed. The next owner recomputes the same changes and sends none of them again,
    also when the raw records hold many observations each."""

    class WriteFails(Exception):
        pass

    async def write_aggregates(*args: object) -> None:
        raise WriteFails

    policy, clock = Policy(), lambda: datetime.now(UTC)
    batch = lane.observations(f"window{pack}", 200)
    await lane.publish(batch, pack)
    consumer = lane.bus.consumer([TOPIC_RAW], "window-group")
    polled = []
    while len(polled) < 200:
        polled += await consumer.poll(500, 1.0)
    crashing = copy.copy(lane.store)  # the same keyspace, the write fails
    crashing.write_aggregates = write_aggregates  # type: ignore[method-assign]
    owner_a = Aggregator(lane.bus, crashing, policy, clock)
    with pytest.raises(WriteFails):
        await owner_a.process(owner_a.decode((m.key, m.value) for m in polled)[0])
    await consumer.close()  # crashed: nothing committed
    assert sum((await lane.changes(f"window{pack}")).values()) == 200  # published, not stored

    guard = PublishedChanges(lane.bus)
    await guard.check_alignment()
    again = lane.bus.consumer([TOPIC_RAW], "window-group")
    redelivered = []
    while len(redelivered) < 200:
        redelivered += await again.poll(500, 1.0)
    first = {p: min(m.offset for m in redelivered if m.partition == p) for p in range(6)}
    await guard.recover({p: o for p, o in first.items()})
    owner_b = Aggregator(lane.bus, lane.store, policy, clock, already_published=guard)
    await owner_b.process(owner_b.decode((m.key, m.value) for m in redelivered)[0])
    await again.commit()
    await again.close()
    assert await lane.stored(batch) == 200
    assert guard.suppressed == 200 and owner_b.changes == 0
    changes = await lane.changes(f"window{pack}")
    assert len(changes) == 200 and set(changes.values()) == {1}


async def _scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """The samples a service serves on its metrics port, by name and labels."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as resp,
    ):
        text = await resp.text()
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_the_worker_exports_its_lag_and_store_latency(lane: Lane) -> None:
    """`alm aggregator` serves alm_consumer_lag for the partitions of alm.metrics.raw it read,
    back to 0 once everything is folded and committed, and times its Cassandra calls."""
    port = free_port()
    lane.stack.env["ALM_METRICS_PORT"] = str(port)
    lane.aggregator()
    batch = lane.observations("lag", 200)
    await lane.publish(batch)
    await lane.all_stored(batch)
    topic, group = lane.prefix + TOPIC_RAW, lane.prefix + "alm-aggregator"

    def lags(samples: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> dict[str, float]:
        return {
            labels["partition"]: value
            for (name, pairs), value in samples.items()
            if name == "alm_consumer_lag"
            and (labels := dict(pairs))["topic"] == topic
            and labels["group"] == group
        }

    async def caught_up() -> bool:
        found = lags(await _scrape(port))
        return len(found) == 6 and set(found.values()) == {0.0}

    await eventually(caught_up, 30, "lag 0 on all six partitions", lane.stack)
    samples = await _scrape(port)
    timed = {
        dict(pairs)["call"]: value
        for (name, pairs), value in samples.items()
        if name == "alm_store_call_duration_seconds_count" and ("store", "cassandra") in pairs
    }
    assert timed.get("write_aggregates", 0) >= 1 and timed.get("states", 0) >= 1
    assert samples[("alm_aggregated_observations_total", frozenset())] == 200


async def test_records_that_are_not_observations_are_dead_lettered_and_the_agent_goes_on(
    lane: Lane,
) -> None:
    """Bytes that are not JSON and an observation breaking its schema, among valid ones: the
    valid ones are stored, each bad one is on alm.deadletter with its topic and reason, and the
    agent keeps folding what comes after."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from kafka import KafkaProducer

    lane.aggregator()
    before = lane.observations("bad-before", 20)
    await lane.publish(before)
    producer = KafkaProducer(bootstrap_servers=lane.infra.kafka)
    try:
        topic = lane.prefix + TOPIC_RAW
        producer.send(topic, key=b"10.5555/bad.bytes", value=b"\xe2\x1e not json")
        bad = {**before[0].to_dict(), "work_id": "10.\uff11\uff12\uff13\uff14/x"}
        producer.send(topic, key=b"10.5555/bad.schema", value=json.dumps(bad).encode())
        producer.flush(30)
    finally:
        producer.close()
    after = lane.observations("bad-after", 20)
    await lane.publish(after)
    await lane.all_stored(before + after)

    async def dead_lettered() -> bool:
        parts = list(range(await lane.bus.partitions(TOPIC_DEADLETTER)))
        ends = await lane.bus.end_offsets(TOPIC_DEADLETTER, parts)
        letters = await lane.bus.read(TOPIC_DEADLETTER, {p: (0, e) for p, e in ends.items()})
        keys = {m.key for m in letters if m.value.get("topic") == TOPIC_RAW}
        return keys == {"10.5555/bad.bytes", "10.5555/bad.schema"}

    await eventually(dead_lettered, 60, "both bad records dead-lettered", lane.stack)
