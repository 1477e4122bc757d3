"""Reading partitions directly, outside any group: the aggregator's check of what a previous
owner already published (services/aggregator/published.py). Each call opens a short-lived
kafka-python consumer with no group on a worker thread, reads, and closes it."""

from __future__ import annotations

import asyncio
import time
import warnings
from collections.abc import Callable, Mapping, Sequence

from services.adapters.kafka.records import messages_of
from services.adapters.kafka.settings import KafkaConnection
from services.core.ports import Message

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # kafka-python's importlib use
    from kafka import KafkaConsumer, TopicPartition


class KafkaPartitionReader:
    """The PartitionReader port over one cluster (plain topic names, the prefix added here)."""

    def __init__(self, connection: KafkaConnection) -> None:
        self.connection = connection

    def _reader(self) -> KafkaConsumer:
        return KafkaConsumer(
            bootstrap_servers=self.connection.bootstrap,
            client_id=f"{self.connection.client_id}-reader",
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
        )

    async def partitions(self, topic: str) -> int:
        """How many partitions `topic` has (0 if it does not exist)."""

        def run() -> int:
            reader = self._reader()
            try:
                return len(reader.partitions_for_topic(self.connection.topic(topic)) or ())
            finally:
                reader.close()

        return await asyncio.to_thread(run)

    async def end_offsets(self, topic: str, partitions: Sequence[int]) -> dict[int, int]:
        """The next offset to be written in each of `partitions` of `topic`."""

        def run() -> dict[int, int]:
            name = self.connection.topic(topic)
            reader = self._reader()
            try:
                known = reader.partitions_for_topic(name) or set()
                missing = sorted(set(partitions) - known)
                if missing:
                    raise ValueError(
                        f"topic {name} has {len(known)} partitions: no partition {missing}"
                    )
                tps = [TopicPartition(name, p) for p in partitions]
                attempt = 0
                while True:
                    try:
                        ends = reader.end_offsets(tps)
                        return {tp.partition: int(off) for tp, off in ends.items()}
                    except KeyError:  # kafka-python drops a partition without a leader yet
                        attempt += 1
                        if attempt == 10:
                            raise
                        time.sleep(0.5)
            finally:
                reader.close()

        return await asyncio.to_thread(run)

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
        strip = len(self.connection.prefix)

        def run() -> None:
            wanted = {
                TopicPartition(self.connection.topic(topic), p): (start, end)
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
                                visit(messages_of(r, strip))
            finally:
                reader.close()

        await asyncio.to_thread(run)
