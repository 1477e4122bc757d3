"""In-process bus for the embedded mode: topics as in-memory logs, Kafka-like consumer groups.

Each topic is one partition. A group's committed offset only moves on commit(), so a consumer
that stops before committing is redelivered its batch, as with Kafka. Records every subscribed
group has committed are dropped, so memory stays bounded by the backlog. `publish(...,
pack=N)` packs events into records as the Kafka adapter does (services/adapters/packing.py),
so the embedded mode runs the same envelope.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from services.adapters.packing import decode, encode, unpack
from services.adapters.packing import pack as _pack
from services.core.ports import Message
from services.telemetry.lag import PartitionLag


class _Topic:
    def __init__(self) -> None:
        self.log: deque[tuple[str, str]] = deque()  # (key, JSON value)
        self.base = 0  # offset of log[0]
        self.committed: dict[str, int] = {}  # group -> next offset to read

    @property
    def end(self) -> int:
        return self.base + len(self.log)

    def trim(self) -> None:
        if not self.committed:
            return
        floor = min(self.committed.values())
        while self.base < floor and self.log:
            self.log.popleft()
            self.base += 1


class MemoryBus:
    """The in-process Bus adapter; values are JSON round-tripped to catch non-JSON payloads."""

    def __init__(self) -> None:
        self._topics: dict[str, _Topic] = {}
        self._arrived = asyncio.Condition()
        self.published: dict[str, int] = {}

    def topic(self, name: str) -> _Topic:
        """The log of `name`, created on first use."""
        return self._topics.setdefault(name, _Topic())

    async def publish(
        self, topic: str, items: Sequence[tuple[str, Mapping[str, Any]]], *, pack: int = 0
    ) -> None:
        """Append keyed events to `topic` (`pack` events a record at most, if > 0) and wake
        its consumers."""
        if not items:
            return
        log = self.topic(topic)
        if pack:
            for _, first, record in _pack(items, lambda _key: 0, pack):
                log.log.append((first.decode(), record.decode()))
        else:
            for key, value in items:
                log.log.append((key, encode(value).decode()))
        self.published[topic] = self.published.get(topic, 0) + len(items)
        async with self._arrived:
            self._arrived.notify_all()

    def consumer(self, topics: Sequence[str], group: str) -> MemoryConsumer:
        """A member of `group` reading `topics` from the group's committed offsets."""
        for name in topics:
            self.topic(name).committed.setdefault(group, self.topic(name).base)
        return MemoryConsumer(self, list(topics), group)

    def lag(self, topic: str, group: str) -> int:
        """Records of `topic` that `group` has not committed."""
        log = self.topic(topic)
        return log.end - log.committed.get(group, log.base)

    async def wait_for_data(self, timeout: float) -> None:
        """Block until something is published or `timeout` passes."""
        async with self._arrived:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), timeout)

    async def close(self) -> None:
        """Nothing to release."""


class MemoryConsumer:
    """A consumer of the in-process bus."""

    def __init__(self, bus: MemoryBus, topics: list[str], group: str) -> None:
        self._bus = bus
        self._topics = topics
        self._group = group
        self._position = {t: bus.topic(t).committed[group] for t in topics}
        self._lag = PartitionLag(group)  # alm_consumer_lag: each topic is one partition, 0

    def _take(self, max_records: int) -> list[Message]:
        out: list[Message] = []
        for name in self._topics:
            log = self._bus.topic(name)
            pos = max(self._position[name], log.base)
            while pos < log.end and len(out) < max_records:  # whole records
                key, raw = log.log[pos - log.base]
                out.extend(Message(name, k, v, 0, pos) for k, v in unpack(key, decode(raw)))
                pos += 1
            self._position[name] = pos
        self._observe_lag()
        return out

    def _observe_lag(self) -> None:
        for name in self._topics:
            log = self._bus.topic(name)
            self._lag.committed((name, 0), log.committed[self._group])
            self._lag.end((name, 0), log.end)

    async def poll(self, max_records: int, timeout: float) -> list[Message]:
        """Events after this member's position, waiting up to `timeout`: whole records, up to
        `max_records` events (more only when the first record alone holds more)."""
        batch = self._take(max_records)
        if not batch and timeout > 0:
            await self._bus.wait_for_data(timeout)
            batch = self._take(max_records)
        return batch

    async def commit(self) -> None:
        """Commit the positions of everything polled so far."""
        for name, pos in self._position.items():
            log = self._bus.topic(name)
            log.committed[self._group] = pos
            log.trim()
        self._observe_lag()

    async def rewind(self) -> None:
        """Go back to the committed offsets (what a restarted member would do)."""
        self._position = {t: self._bus.topic(t).committed[self._group] for t in self._topics}

    async def close(self) -> None:
        """Leave the group without committing."""
        self._lag.close()
