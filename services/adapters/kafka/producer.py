"""Publishing to Kafka: aiokafka's producer on the running event loop.

`publish` returns once the broker has acknowledged every record (acks=all, idempotent
producer, so a retried send is not duplicated in the log). The producer is started on the first
publish; no thread hop per call, no producer thread competing for the GIL, and record batches
built by aiokafka's C extension. Keys go to the partition the default partitioner's murmur2
gives them (records.py), packed or not.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from services.adapters.kafka.records import records_of
from services.adapters.kafka.settings import KafkaConnection


class KafkaPublisher:
    """The producer side of the bus."""

    def __init__(self, connection: KafkaConnection, *, linger_ms: int = 5) -> None:
        self.connection = connection
        self._linger_ms = linger_ms
        self._aio: Any = None  # aiokafka.AIOKafkaProducer, started on first publish
        self._lock = asyncio.Lock()

    async def publish(
        self, topic: str, items: Sequence[tuple[str, Mapping[str, Any]]], per: int
    ) -> None:
        """Append keyed events to the real topic `topic`, `per` a record if `per` > 0."""
        if self._aio is None:
            async with self._lock:  # concurrent first publishes start one producer
                if self._aio is None:
                    self._aio = await self._start()
        aio = self._aio
        count = len(await aio.partitions_for(topic))
        by_partition: dict[int, list[tuple[bytes, bytes]]] = {}
        for part, k, v in records_of(items, per, count):
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

    async def _start(self) -> Any:
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(
            bootstrap_servers=self.connection.bootstrap,
            client_id=f"{self.connection.client_id}-producer",
            acks="all",  # every record on every in-sync replica
            enable_idempotence=True,  # no duplicates from retried sends
            linger_ms=self._linger_ms,  # a few ms to fill batches
            max_batch_size=256 * 1024,
            request_timeout_ms=40_000,
        )
        try:
            await producer.start()
        except BaseException:
            await producer.stop()  # a broker that cannot be reached: release what was opened
            raise
        return producer

    @property
    def started(self) -> bool:
        """Whether a producer is open (none after a failed start, or after close)."""
        return self._aio is not None

    async def close(self) -> None:
        """Flush and close the producer."""
        aio, self._aio = self._aio, None
        if aio is not None:
            await aio.stop()
