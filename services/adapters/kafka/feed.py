"""The change feed over Kafka (distributed mode): each reader is a KafkaConsumer of its own with
no group. It assigns itself every partition of `alm.metrics.changed` and seeks to the position
it was given, so every API replica serves the SSE stream from its own consumer: nothing is
shared between replicas, nothing is committed, and a client can reconnect to any replica.

kafka-python is synchronous: each reader polls on a single thread of its own (a KafkaConsumer
must stay on one thread), and the event loop awaits it.
"""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import structlog

from services.core.changefeed import FeedItem, Gap, Position
from services.core.events import TOPIC_CHANGED
from services.core.packing import decode

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # kafka-python's importlib use
    from kafka import KafkaConsumer, TopicPartition

log = structlog.get_logger("alm.changes")

METADATA_TIMEOUT = 30.0  # seconds to wait for the topic's partitions


def _consumer(bootstrap: str, client_id: str) -> KafkaConsumer:
    return KafkaConsumer(
        bootstrap_servers=bootstrap,
        client_id=client_id,
        group_id=None,  # no group: nothing is committed, nothing is shared
        enable_auto_commit=False,
        auto_offset_reset="earliest",  # data deleted under a reader: go on from the oldest kept
        isolation_level="read_committed",
        fetch_max_wait_ms=100,
    )


def _partitions(consumer: KafkaConsumer, topic: str) -> list[TopicPartition]:
    """Every partition of `topic` (waiting for metadata), or a LookupError."""
    parts = consumer.partitions_for_topic(topic)
    if not parts:
        raise LookupError(f"topic {topic} does not exist: run `alm topics create`")
    return [TopicPartition(topic, p) for p in sorted(parts)]


class KafkaFeedReader:
    """A reader of `alm.metrics.changed` from a position, on its own consumer and thread."""

    def __init__(self, bootstrap: str, topic: str, start: Mapping[int, int]) -> None:
        self._bootstrap = bootstrap
        self._topic = topic
        self._start = dict(start)
        self._position: Position = {}
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="changes-feed")
        self._consumer: KafkaConsumer | None = None
        self._pending_gaps: list[Gap] = []

    @property
    def position(self) -> Position:
        """The next offset of each partition (the start until the first read)."""
        return dict(self._position or self._start)

    def _open(self) -> KafkaConsumer:
        consumer = _consumer(self._bootstrap, "alm-changes")
        try:
            tps = _partitions(consumer, self._topic)
            consumer.assign(tps)
            first, end = consumer.beginning_offsets(tps), consumer.end_offsets(tps)
            for tp in tps:
                want = self._start.get(tp.partition, first[tp])
                if want > end[tp]:  # an id from before the topic was made again
                    want = first[tp]
                if want < first[tp]:
                    self._pending_gaps.append(Gap(tp.partition, want, first[tp]))
                    want = first[tp]
                consumer.seek(tp, want)
                self._position[tp.partition] = want
        except BaseException:
            consumer.close()
            raise
        return consumer

    def _bound(self, consumer: KafkaConsumer, until: Mapping[int, int] | None) -> bool:
        """Pause the partitions that reached `until`, resume the others; whether any is left
        to read."""
        if until is None:
            if consumer.paused():
                consumer.resume(*consumer.paused())
            return True
        done = [tp for tp in consumer.assignment() if self._reached(tp.partition, until)]
        consumer.pause(*done)
        consumer.resume(*(tp for tp in consumer.paused() if tp not in done))
        return len(done) < len(consumer.assignment())

    def _reached(self, partition: int, until: Mapping[int, int]) -> bool:
        return partition in until and self._position.get(partition, 0) >= until[partition]

    def _read(
        self, limit: int, timeout: float, until: Mapping[int, int] | None
    ) -> tuple[list[FeedItem], list[Gap]]:
        if self._consumer is None:
            self._consumer = self._open()
        consumer = self._consumer
        gaps, self._pending_gaps = self._pending_gaps, []
        if not self._bound(consumer, until):
            return [], gaps
        batches: dict[Any, list[Any]] = consumer.poll(
            timeout_ms=int(timeout * 1000), max_records=limit
        )
        items: list[FeedItem] = []
        for tp, records in sorted(batches.items(), key=lambda kv: kv[0].partition):
            for record in records:
                if until is not None and self._reached(tp.partition, until):
                    consumer.seek(tp, record.offset)  # read again by a later, unbounded read
                    break
                expected = self._position.get(tp.partition, record.offset)
                if record.offset > expected:  # deleted by retention while we read
                    gaps.append(Gap(tp.partition, expected, record.offset))
                self._position[tp.partition] = record.offset + 1
                try:
                    value = decode(record.value)
                except ValueError:
                    log.warning("unreadable_change", partition=tp.partition, offset=record.offset)
                    continue
                if isinstance(value, dict):
                    items.append(FeedItem(tp.partition, record.offset, value))
        return items, gaps

    async def read(
        self, limit: int, timeout: float, until: Mapping[int, int] | None = None
    ) -> tuple[list[FeedItem], list[Gap]]:
        """Up to `limit` events after the position (before `until[p]` in partition p, if
        given), waiting up to `timeout` for one."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._read, limit, timeout, until)

    def _close(self) -> None:
        if self._consumer is not None:
            self._consumer.close(autocommit=False)
            self._consumer = None

    async def close(self) -> None:
        """Close the consumer and its thread (after a read in progress returns)."""
        await asyncio.get_running_loop().run_in_executor(self._thread, self._close)
        self._thread.shutdown(wait=True)


class KafkaChangeFeed:
    """The ChangeFeed of the distributed mode over one Kafka cluster."""

    def __init__(self, bootstrap: str, prefix: str = "", topic: str = TOPIC_CHANGED) -> None:
        self._bootstrap = bootstrap
        self._topic = prefix + topic

    async def end(self) -> Position:
        """The current end offset of every partition."""

        def run() -> Position:
            consumer = _consumer(self._bootstrap, "alm-changes-meta")
            try:
                tps = _partitions(consumer, self._topic)
                return {tp.partition: int(o) for tp, o in consumer.end_offsets(tps).items()}
            finally:
                consumer.close(autocommit=False)

        return await asyncio.to_thread(run)

    def reader(self, start: Mapping[int, int]) -> KafkaFeedReader:
        """A reader from `start` (partitions it does not name: from the oldest kept)."""
        return KafkaFeedReader(self._bootstrap, self._topic, start)
