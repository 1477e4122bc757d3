"""The Kafka adapter of the Bus port: the parts of this package put together.

Publishing runs aiokafka's producer on the event loop (producer.py); each consumer-group member
is a kafka-python consumer on a thread of its own (consumer.py); the aggregator reads partitions
directly through reader.py; the scheduler's backlog read runs aiokafka on the event loop too
(backlog.py); topics are made by admin.py. Every topic and group name gets the
connection's prefix (settings.py); callers use the plain names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from services.adapters.kafka.backlog import BacklogProbe
from services.adapters.kafka.consumer import KafkaBusConsumer
from services.adapters.kafka.producer import KafkaPublisher
from services.adapters.kafka.reader import KafkaPartitionReader
from services.adapters.kafka.settings import KafkaConnection
from services.core.partitions import LagSink, NoLag
from services.core.ports import Message


class KafkaBus:
    """The Kafka Bus adapter (also a PartitionReader, through its reader)."""

    def __init__(
        self,
        bootstrap: str,
        client_id: str = "alm",
        *,
        prefix: str = "",
        linger_ms: int = 5,
        lag: Callable[[str], LagSink] = NoLag,
    ) -> None:
        self.connection = KafkaConnection(bootstrap, prefix, client_id)
        self.producer = KafkaPublisher(self.connection, linger_ms=linger_ms)
        self.reader = KafkaPartitionReader(self.connection)
        self.backlog = BacklogProbe(self.connection)
        self._lag = lag  # group -> the lag export of one of its members
        self._consumers: list[KafkaBusConsumer] = []

    def topic(self, name: str) -> str:
        """The real topic (or group) name of `name` on the cluster."""
        return self.connection.topic(name)

    async def publish(
        self, topic: str, items: Sequence[tuple[str, Mapping[str, Any]]], *, pack: int = 0
    ) -> None:
        """Append keyed events to `topic`; returns once the broker acknowledged all of them.
        With `pack` > 0, events bound for the same partition go as records of up to `pack`
        events each (services/core/packing.py)."""
        if items:
            await self.producer.publish(self.topic(topic), items, pack)

    def consumer(self, topics: Sequence[str], group: str) -> KafkaBusConsumer:
        """A member of `group` reading `topics` from the group's committed offsets."""
        real_group = self.topic(group)
        member = KafkaBusConsumer(
            self.connection.bootstrap,
            f"{self.connection.client_id}-{group}",
            [self.topic(t) for t in topics],
            real_group,
            len(self.connection.prefix),
            self._lag(real_group),
        )
        self._consumers.append(member)
        return member

    async def waiting(self, queues: Mapping[str, tuple[str, int]]) -> dict[str, int]:
        """For each topic -> (group, up_to): its events the group has not committed, counted
        up to `up_to` (the scheduler's backpressure: the refresh requests of a source its
        fetchers have not taken): the offsets in one round of requests to the brokers, then
        the records of a topic read only where they must be counted in events (backlog.py)."""
        return await self.backlog.waiting(queues)

    async def partitions(self, topic: str) -> int:
        """How many partitions `topic` has (0 if it does not exist)."""
        return await self.reader.partitions(topic)

    async def end_offsets(self, topic: str, partitions: Sequence[int]) -> dict[int, int]:
        """The next offset to be written in each of `partitions` of `topic`."""
        return await self.reader.end_offsets(topic, partitions)

    async def read(self, topic: str, ranges: Mapping[int, tuple[int, int]]) -> list[Message]:
        """The events of `topic` whose records' offsets are in [start, end) of their partition."""
        return await self.reader.read(topic, ranges)

    async def count(self, topic: str, ranges: Mapping[int, tuple[int, int]]) -> dict[int, int]:
        """How many events the records of `topic` in [start, end) of each partition hold."""
        return await self.reader.count(topic, ranges)

    async def close(self) -> None:
        """Flush and close the producer and every consumer this bus made (none commits), and
        the backlog probe's clients."""
        await self.producer.close()
        for member in self._consumers:
            await member.close()
        await self.backlog.close()
