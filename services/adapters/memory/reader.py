"""The PartitionReader port over the in-process bus (one partition a topic): what the embedded
API reads the dead letters it keeps with (`alm.deadletter` is a retained topic: its last
`window` records stay once the scheduler has read them)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from services.adapters.memory.bus import MemoryBus
from services.core.ports import Message


class MemoryPartitionReader:
    """Direct reads of a MemoryBus's topics, outside any group."""

    def __init__(self, bus: MemoryBus) -> None:
        self.bus = bus

    async def partitions(self, topic: str) -> int:
        """1 for a topic something was published to or read from, else 0."""
        return 1 if topic in self.bus.topics() else 0

    async def end_offsets(self, topic: str, partitions: Sequence[int]) -> dict[int, int]:
        """The next offset of the topic's one partition."""
        end = self.bus.topic(topic).end if topic in self.bus.topics() else 0
        return {p: end if p == 0 else 0 for p in partitions}

    async def read(self, topic: str, ranges: Mapping[int, tuple[int, int]]) -> list[Message]:
        """The events of the kept records in [start, end) (what was trimmed is gone)."""
        start, end = ranges.get(0, (0, 0))
        if end <= start or topic not in self.bus.topics():
            return []
        log = self.bus.topic(topic)
        first = max(start, log.base)
        messages, _ = log.events(topic, first, 1 << 62) if first < end else ([], first)
        return [m for m in messages if m.offset < end]

    async def count(self, topic: str, ranges: Mapping[int, tuple[int, int]]) -> dict[int, int]:
        """How many events the kept records in each range hold."""
        found = await self.read(topic, ranges)
        return {p: sum(1 for m in found if m.partition == p) for p in ranges}
