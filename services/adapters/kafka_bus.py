"""Kafka adapter of the Bus port (kafka-python), used from asyncio without blocking the loop.

kafka-python is synchronous, so every call runs on a worker thread: the producer (thread-safe)
on a small pool, each consumer on its own single thread (a KafkaConsumer must stay on one
thread). `publish` returns once the broker has acknowledged every record (acks=all, idempotent
producer, so a retried send is not duplicated in the log); a consumer commits only when the
caller says so, after its writes (at-least-once).

Records are keyed by work id (UTF-8), so every event of a work lands on the same partition and
is handled in order by one member of each group. Values are compact JSON. On the high-volume
topics the events bound for one partition are packed into one record (`publish(..., pack=N)`,
services/adapters/packing.py): the partition is chosen here from each event's key with the
default partitioner's murmur2, so an event lands where it would have alone; consumers unpack.

With `in_loop=True` (every service: bootstrap.make_bus and the aggregator), publishing uses
aiokafka's producer on the running loop instead (same acks=all and idempotence, same murmur2 key
partitioning): no thread hop per call, no second producer thread competing for the GIL, and
record batches built by its C extension.

`prefix` (ALM_TOPIC_PREFIX) is put in front of every topic and group name, so several
deployments, or test runs, can share one cluster; callers keep using the plain names.
"""

from __future__ import annotations

import asyncio
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import structlog

from services.adapters.packing import decode, encode, pack, undecodable, unpack
from services.core.events import (
    TOPIC_CHANGED,
    TOPIC_DEADLETTER,
    TOPIC_RAW,
    TOPIC_RETRY,
    TOPIC_WORKS,
    refresh_topic,
)
from services.core.ports import Message
from services.telemetry.lag import PartitionLag

with warnings.catch_warnings():
    # kafka-python 3.0 still loads its protocol schemas with importlib.resources.read_text
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.errors import CommitFailedError, KafkaError, TopicAlreadyExistsError
    from kafka.partitioner.default import murmur2

log = structlog.get_logger("alm.kafka")

# Partitions of the high-volume topics (refresh, raw, changed). The partition count caps how many
# members of a group share the work: 6 lets a fetcher or aggregator group grow to 6 processes
# (3 per core on this 2-core box, more on a real cluster) without repartitioning. alm.metrics.raw
# and alm.metrics.changed must have the same count: a work is then on the same partition number
# in both, which the aggregator relies on to check what it already published.
DEFAULT_PARTITIONS = 6
# alm.works, alm.refresh.retry and alm.deadletter carry a trickle (registrations, failures) and
# are read by the single scheduler; a few partitions keep per-work order and room to grow.
LOW_VOLUME_PARTITIONS = 3


class KafkaBus:
    """The Kafka Bus adapter."""

    def __init__(
        self,
        bootstrap: str,
        client_id: str = "alm",
        *,
        prefix: str = "",
        linger_ms: int = 5,
        producer_threads: int = 4,
        in_loop: bool = False,
    ) -> None:
        self.bootstrap = bootstrap
        self._in_loop = in_loop
        self._aio: Any = None  # aiokafka.AIOKafkaProducer, started on first publish
        self._aio_lock = asyncio.Lock()
        self.client_id = client_id
        self.prefix = prefix
        self._linger_ms = linger_ms
        self._pool = ThreadPoolExecutor(producer_threads, thread_name_prefix="kafka-produce")
        self._producer: KafkaProducer | None = None
        self._lock = threading.Lock()
        self._consumers: list[KafkaBusConsumer] = []

    def topic(self, name: str) -> str:
        """The real topic (or group) name of `name` on the cluster."""
        return self.prefix + name

    def _producer_settings(self) -> dict[str, Any]:
        """What both producers share: every record on every in-sync replica, no duplicates
        from retried sends, a few ms to fill batches."""
        return {
            "bootstrap_servers": self.bootstrap,
            "client_id": f"{self.client_id}-producer",
            "acks": "all",
            "enable_idempotence": True,
            "linger_ms": self._linger_ms,
        }

    def _get_producer(self) -> KafkaProducer:
        with self._lock:
            if self._producer is None:
                self._producer = KafkaProducer(
                    **self._producer_settings(),
                    batch_size=256 * 1024,
                    compression_type=None,
                    retries=2**31 - 1,
                    delivery_timeout_ms=120_000,
                )
            return self._producer

    def _send(self, topic: str, items: Sequence[tuple[str, Mapping[str, Any]]], per: int) -> None:
        producer = self._get_producer()
        count = len(producer.partitions_for(topic)) if per else 0
        futures = [
            producer.send(topic, key=k, value=v, partition=p)
            for p, k, v in _records(items, per, count)
        ]
        for future in futures:
            future.get(timeout=130)

    async def publish(
        self, topic: str, items: Sequence[tuple[str, Mapping[str, Any]]], *, pack: int = 0
    ) -> None:
        """Append keyed events to `topic`; returns once the broker acknowledged all of them.
        With `pack` > 0, events bound for the same partition go as records of up to `pack`
        events each (services/adapters/packing.py)."""
        if not items:
            return
        if self._in_loop:
            await self._publish_in_loop(self.topic(topic), items, pack)
            return
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._pool, self._send, self.topic(topic), list(items), pack)

    def consumer(self, topics: Sequence[str], group: str) -> KafkaBusConsumer:
        """A member of `group` reading `topics` from the group's committed offsets."""
        member = KafkaBusConsumer(
            self.bootstrap,
            f"{self.client_id}-{group}",
            [self.topic(t) for t in topics],
            self.topic(group),
            len(self.prefix),
        )
        self._consumers.append(member)
        return member

    async def _publish_in_loop(
        self, topic: str, items: Sequence[tuple[str, Mapping[str, Any]]], per: int
    ) -> None:
        if self._aio is None:
            async with self._aio_lock:  # concurrent first publishes start one producer
                if self._aio is None:
                    self._aio = await self._start_aio()
        aio = self._aio
        count = len(await aio.partitions_for(topic))
        by_partition: dict[int, list[tuple[bytes, bytes]]] = {}
        for p, k, v in _records(items, per, count):
            part = partition_of(k, count) if p is None else p  # the producer's own choice
            by_partition.setdefault(part, []).append((k, v))
        # One producer batch per partition, appended record by record: the same records in
        # the same order as one `send` each, without a future and a partitioner call each.
        sent = []
        for part, records in by_partition.items():
            batch = aio.create_batch()
            for k, v in records:
                if batch.append(key=k, value=v, timestamp=None) is not None:
                    continue
                if batch.record_count():
                    sent.append(await aio.send_batch(batch, topic, partition=part))
                batch = aio.create_batch()
                if batch.append(key=k, value=v, timestamp=None) is None:  # over a batch alone
                    sent.append(await aio.send(topic, key=k, value=v, partition=part))
                    batch = aio.create_batch()
            if batch.record_count():
                sent.append(await aio.send_batch(batch, topic, partition=part))
        await asyncio.gather(*sent)

    async def _start_aio(self) -> Any:
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(
            **self._producer_settings(), max_batch_size=256 * 1024, request_timeout_ms=40_000
        )
        try:
            await producer.start()
        except BaseException:
            await producer.stop()  # a broker that cannot be reached: release what was opened
            raise
        return producer

    async def close(self) -> None:
        """Flush and close the producer and every consumer this bus made (none commits)."""
        aio, self._aio = self._aio, None
        if aio is not None:
            await aio.stop()
        for member in self._consumers:
            await member.close()
        producer, self._producer = self._producer, None
        if producer is not None:
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._pool, lambda: producer.close(timeout=30))
        self._pool.shutdown(wait=True)

    # -- reading partitions directly (the aggregator's check of what it already published) --

    def _reader(self) -> KafkaConsumer:
        return KafkaConsumer(
            bootstrap_servers=self.bootstrap,
            client_id=f"{self.client_id}-reader",
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
        )

    async def partitions(self, topic: str) -> int:
        """How many partitions `topic` has (0 if it does not exist)."""

        def run() -> int:
            reader = self._reader()
            try:
                return len(reader.partitions_for_topic(self.topic(topic)) or ())
            finally:
                reader.close()

        return await asyncio.get_running_loop().run_in_executor(self._pool, run)

    async def end_offsets(self, topic: str, partitions: Sequence[int]) -> dict[int, int]:
        """The next offset to be written in each of `partitions` of `topic`."""

        def run() -> dict[int, int]:
            reader = self._reader()
            try:
                tps = [TopicPartition(self.topic(topic), p) for p in partitions]
                return {tp.partition: int(off) for tp, off in reader.end_offsets(tps).items()}
            finally:
                reader.close()

        return await asyncio.get_running_loop().run_in_executor(self._pool, run)

    async def read(self, topic: str, ranges: Mapping[int, tuple[int, int]]) -> list[Message]:
        """The events of `topic` whose records' offsets are in [start, end) of their partition."""
        out: list[Message] = []
        await self._scan(topic, ranges, out.extend)
        return out

    async def count(self, topic: str, ranges: Mapping[int, tuple[int, int]]) -> dict[int, int]:
        """How many events (a packed record holds several) the records of `topic` in
        [start, end) of each partition hold; nothing is kept in memory but the counts."""
        counts = {p: 0 for p in ranges}

        def add(messages: list[Message]) -> None:
            for m in messages:
                counts[m.partition] += 1

        await self._scan(topic, ranges, add)
        return counts

    async def _scan(
        self,
        topic: str,
        ranges: Mapping[int, tuple[int, int]],
        visit: Callable[[list[Message]], object],
    ) -> None:
        def run() -> None:
            wanted = {
                TopicPartition(self.topic(topic), p): (start, end)
                for p, (start, end) in ranges.items()
                if end > start
            }
            if not wanted:
                return
            reader = self._reader()
            try:
                reader.assign(list(wanted))
                for tp, (start, _) in wanted.items():
                    reader.seek(tp, start)
                idle = 0
                while idle < 20 and any(reader.position(tp) < e for tp, (_, e) in wanted.items()):
                    batches = reader.poll(timeout_ms=500, max_records=5000)
                    idle = 0 if batches else idle + 1
                    for tp, records in batches.items():
                        end = wanted[tp][1]
                        for r in records:
                            if r.offset < end:
                                visit(_messages(r, len(self.prefix)))
            finally:
                reader.close()

        await asyncio.get_running_loop().run_in_executor(self._pool, run)


def _records(
    items: Sequence[tuple[str, Mapping[str, Any]]], per: int, partitions: int
) -> Sequence[tuple[int | None, bytes, bytes]]:
    """(partition, key, value) records for both producers: `items` packed `per` a record into
    the partitions their keys map to, or (per = 0) one record each, partition left to the
    producer's own key partitioner."""
    if per:
        return pack(items, lambda key: partition_of(key, partitions), per)
    return [(None, key.encode(), encode(value)) for key, value in items]


def partition_of(key: bytes, partitions: int) -> int:
    """The partition the Java client's default partitioner (and kafka-python's, and
    aiokafka's) gives `key`: murmur2, sign bit cleared, modulo the partition count."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


def _messages(record: Any, strip: int) -> list[Message]:
    """The events of one record (several if it is a packed batch), sharing its offset."""
    try:
        value = decode(record.value)
        if not isinstance(value, dict):
            raise ValueError("not a JSON object")
    except (ValueError, TypeError) as exc:
        # handed on so the service's schema check rejects and logs it, instead of a crash loop
        text = record.value.decode("utf-8", "replace") if record.value else ""
        value = undecodable(text, str(exc))
    key = record.key.decode("utf-8", "replace") if record.key is not None else ""
    topic = record.topic[strip:]
    return [Message(topic, k, v, record.partition, record.offset) for k, v in unpack(key, value)]


class KafkaBusConsumer:
    """A consumer-group member: poll, process, then commit (at-least-once)."""

    def __init__(
        self, bootstrap: str, client_id: str, topics: list[str], group: str, strip: int
    ) -> None:
        self._bootstrap = bootstrap
        self._client_id = client_id
        self._topics = topics
        self._group = group
        self._strip = strip
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=f"kafka-{group}")
        self._consumer: KafkaConsumer | None = None
        self._closed = False
        self._per_record = 1.0  # events per record in the last poll
        self._lag = PartitionLag(group)  # alm_consumer_lag of the partitions this member owns
        self._rewind = False  # a rewind asked for and not done yet (done before the next poll)

    def _ensure(self) -> KafkaConsumer:
        if self._consumer is None:
            self._consumer = KafkaConsumer(
                *self._topics,
                bootstrap_servers=self._bootstrap,
                client_id=self._client_id,
                group_id=self._group,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                isolation_level="read_committed",
                session_timeout_ms=15_000,
                heartbeat_interval_ms=3_000,
                max_poll_interval_ms=300_000,
            )
        return self._consumer

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    def _poll(self, max_records: int, timeout: float) -> list[Message]:
        consumer = self._ensure()
        if self._rewind:
            self._seek_committed()
        # Records may hold many events: ask for about as many records as make `max_records`
        # events at the last poll's events per record.
        want = max(1, min(max_records, round(max_records / self._per_record)))
        batches = consumer.poll(timeout_ms=int(timeout * 1000), max_records=want)
        out: list[Message] = []
        taken = 0
        for tp, records in batches.items():
            for record in records:
                if out and len(out) >= max_records:
                    # Not handed out: read again from here next time, so the position (what
                    # commit() stores) never passes an event that was not processed.
                    consumer.seek(tp, record.offset)
                    break
                out.extend(_messages(record, self._strip))
                taken += 1
        if taken:
            self._per_record = max(1.0, len(out) / taken)
        self._observe_lag(consumer, batches)
        return out

    def _observe_lag(self, consumer: KafkaConsumer, batches: Mapping[Any, list[Any]]) -> None:
        """Export the lag of the owned partitions: end offsets from the fetch responses; until
        this member commits on a partition, its committed offset is where reading began."""
        owned = consumer.assignment()
        self._lag.owned((tp.topic, tp.partition) for tp in owned)
        for tp in owned:
            key = (tp.topic, tp.partition)
            if not self._lag.knows_committed(key):
                records = batches.get(tp)
                begun = records[0].offset if records else consumer.position(tp)
                if begun is not None:
                    self._lag.started(key, begun)
            self._lag.end(key, consumer.highwater(tp))

    async def poll(self, max_records: int, timeout: float) -> list[Message]:
        """Events after this member's position, waiting up to `timeout`: whole records, up to
        `max_records` events (more only when the first record alone holds more)."""
        result: list[Message] = await self._run(self._poll, max_records, timeout)
        return result

    def _seek_committed(self) -> None:
        """Move every assigned partition back to the group's committed offset (to the start
        where nothing is committed yet: auto_offset_reset is earliest)."""
        consumer = self._consumer
        if consumer is not None:
            for tp in consumer.assignment():
                offset = consumer.committed(tp)
                if offset is None:
                    consumer.seek_to_beginning(tp)
                else:
                    consumer.seek(tp, offset)
        self._rewind = False

    async def rewind(self) -> None:
        """Go back to the committed offsets, so the batch of a failed step is polled again
        (without it, the position is past that batch and the next commit would skip it). If the
        group coordinator cannot tell the offsets now, the rewind is done before the next poll,
        and nothing is committed until then."""
        self._rewind = True
        try:
            await self._run(self._seek_committed)
        except KafkaError as exc:
            log.warning("rewind_deferred", group=self._group, error=str(exc))

    def _commit(self) -> None:
        if self._consumer is None or self._rewind:  # positions past unprocessed records
            return
        consumer = self._consumer
        positions = {tp: consumer.position(tp) for tp in consumer.assignment()}
        try:
            consumer.commit()  # commits exactly these positions (what was consumed)
        except CommitFailedError as exc:
            # The group rebalanced while we processed: the partitions' new owner re-reads the
            # batch from the last commit (at-least-once; every write is idempotent).
            log.warning("commit_failed_after_rebalance", group=self._group, error=str(exc))
            return
        for tp, offset in positions.items():
            if offset is not None:
                self._lag.committed((tp.topic, tp.partition), offset)

    async def commit(self) -> None:
        """Commit the positions of everything polled so far."""
        await self._run(self._commit)

    def _close(self) -> None:
        self._lag.close()
        if self._consumer is not None:
            self._consumer.close(autocommit=False)
            self._consumer = None

    async def close(self) -> None:
        """Leave the group without committing."""
        if self._closed:
            return
        self._closed = True
        await self._run(self._close)
        self._thread.shutdown(wait=True)


def topic_specs(sources: Sequence[str], partitions: int) -> dict[str, dict[str, Any]]:
    """Every ALM topic with its partitions and configs (unprefixed names)."""
    low = min(partitions, LOW_VOLUME_PARTITIONS)
    specs: dict[str, dict[str, Any]] = {
        TOPIC_WORKS: {"num_partitions": low, "configs": {"cleanup.policy": "compact"}},
        TOPIC_RAW: {"num_partitions": partitions},
        TOPIC_CHANGED: {"num_partitions": partitions},
        TOPIC_RETRY: {"num_partitions": low},
        TOPIC_DEADLETTER: {"num_partitions": low, "configs": {"retention.ms": str(30 * 86400_000)}},
    }
    for source in sources:
        specs[refresh_topic(source)] = {"num_partitions": partitions}
    return specs


async def ensure_topics(
    bootstrap: str,
    sources: Sequence[str],
    partitions: int = DEFAULT_PARTITIONS,
    *,
    prefix: str = "",
    replication: int = 1,
) -> list[str]:
    """Create every ALM topic that does not exist yet; returns the names it created."""

    def run() -> list[str]:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="alm-admin")
        try:
            existing = set(admin.list_topics())
            wanted = {
                prefix + name: {"replication_factor": replication, **spec}
                for name, spec in topic_specs(sources, partitions).items()
            }
            missing = {name: spec for name, spec in wanted.items() if name not in existing}
            if not missing:
                return []
            result = admin.create_topics(missing, raise_errors=False)
            created = []
            for topic in result["topics"]:
                if topic["error_code"] == 0:
                    created.append(topic["name"])
                elif topic["error_code"] != TopicAlreadyExistsError.errno:
                    raise KafkaError(f"cannot create {topic['name']}: {topic['error_message']}")
            if created:
                admin.wait_for_topics(created, timeout_ms=30_000)
            return sorted(created)
        finally:
            admin.close()

    return await asyncio.to_thread(run)
