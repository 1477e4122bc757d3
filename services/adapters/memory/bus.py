"""In-process bus for the embedded mode: topics as in-memory logs, Kafka-like consumer groups.

Each topic is one partition. A group's committed offset only moves on commit(), so a consumer
that stops before committing is redelivered its batch, as with Kafka. Records every subscribed
group has committed are dropped, so memory stays bounded by the backlog; a topic no group reads
keeps only its last `window` records, with their offsets, for readers that resume from an offset
(`read`), and so does a `retained` topic whatever its groups have read (`alm.metrics.changed`:
SSE clients resume from it while the notifier's group consumes it). `publish(..., pack=N)` packs
events into records as the Kafka adapter does (services/core/packing.py), so the embedded
mode runs the same envelope.

Waiting for data holds no lock: each wait takes the current wake-up Event, and a publish swaps
in a fresh one before setting the old. A waiter cancelled at any moment (a timeout, a shutdown)
leaves nothing behind that a publisher could block on (an asyncio.Condition's lock could be
left held by a cancelled `wait_for(condition.wait())`, and every later publish hung).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from services.core.packing import decode, encode, unpack
from services.core.packing import pack as _pack
from services.core.partitions import LagSink, NoLag
from services.core.ports import Message

DEFAULT_WINDOW = 10_000  # records an unread topic keeps (ALM_EVENT_WINDOW)


class _Topic:
    def __init__(self, window: int, retain: bool = False) -> None:
        self.log: deque[tuple[str, str, int]] = deque()  # (key, JSON value, events up to it)
        self.base = 0  # offset of log[0]
        self.base_events = 0  # events before log[0]
        self.events_total = 0  # events ever appended
        self.committed: dict[str, int] = {}  # group -> next offset to read
        self.window = window
        self.retain = retain  # keep the last `window` records even once every group read them

    def append(self, key: str, raw: str, events: int) -> None:
        self.events_total += events
        self.log.append((key, raw, self.events_total))

    def events_before(self, offset: int) -> int:
        """Events in the records before `offset` (a kept offset, or the end)."""
        if offset <= self.base or not self.log:
            return self.base_events
        return self.log[min(offset, self.end) - self.base - 1][2]

    @property
    def end(self) -> int:
        return self.base + len(self.log)

    def events(self, name: str, offset: int, limit: int) -> tuple[list[Message], int]:
        """The events of whole records from `offset` (or the oldest kept), up to `limit` unless
        the first record alone holds more, and the offset after the last record read."""
        out: list[Message] = []
        pos = max(offset, self.base)
        while pos < self.end and len(out) < limit:
            key, raw, _ = self.log[pos - self.base]
            out.extend(Message(name, k, v, 0, pos) for k, v in unpack(key, decode(raw)))
            pos += 1
        return out, pos

    def trim(self) -> None:
        """Drop what every group committed; with no group, all but the last `window`; a
        retained topic keeps its last `window` records in any case."""
        floor = min(self.committed.values()) if self.committed else self.end - self.window
        if self.retain:
            floor = min(floor, self.end - self.window)
        while self.base < floor and self.log:
            self.base_events = self.log.popleft()[2]
            self.base += 1


class MemoryBus:
    """The in-process Bus adapter; values are JSON round-tripped to catch non-JSON payloads."""

    def __init__(
        self,
        window: int = DEFAULT_WINDOW,
        retained: Collection[str] = (),
        lag: Callable[[str], LagSink] = NoLag,
    ) -> None:
        if window < 0:
            raise ValueError(f"a topic window is a number of records >= 0, not {window}")
        self._topics: dict[str, _Topic] = {}
        self._retained = frozenset(retained)
        self._arrived = asyncio.Event()  # set (and replaced) by each publish
        self.window = window
        self.published: dict[str, int] = {}
        self.lag_sink = lag  # group -> the lag export (alm_consumer_lag) of one of its members

    def topics(self) -> frozenset[str]:
        """The names of the topics in use."""
        return frozenset(self._topics)

    def topic(self, name: str) -> _Topic:
        """The log of `name`, created on first use."""
        found = self._topics.get(name)
        if found is None:
            found = self._topics[name] = _Topic(self.window, name in self._retained)
        return found

    async def publish(
        self, topic: str, items: Sequence[tuple[str, Mapping[str, Any]]], *, pack: int = 0
    ) -> None:
        """Append keyed events to `topic` (`pack` events a record at most, if > 0) and wake
        its consumers."""
        if not items:
            return
        log = self.topic(topic)
        if pack:
            for start in range(0, len(items), pack):
                group = items[start : start + pack]
                records = _pack(group, lambda _key: 0, pack)
                for _, first, record in records:
                    key, raw = first.decode(), record.decode()
                    events = len(group) if len(records) == 1 else len(unpack(key, decode(raw)))
                    log.append(key, raw, events)
        else:
            for key, value in items:
                log.append(key, encode(value).decode(), 1)
        if not log.committed or log.retain:
            log.trim()
        self.published[topic] = self.published.get(topic, 0) + len(items)
        arrived, self._arrived = self._arrived, asyncio.Event()
        arrived.set()

    def consumer(self, topics: Sequence[str], group: str) -> MemoryConsumer:
        """A member of `group` reading `topics` from the group's committed offsets."""
        for name in topics:
            self.topic(name).committed.setdefault(group, self.topic(name).base)
        return MemoryConsumer(self, list(topics), group)

    def lag(self, topic: str, group: str) -> int:
        """Records of `topic` that `group` has not committed."""
        log = self.topic(topic)
        return log.end - log.committed.get(group, log.base)

    def pending(self, topic: str, group: str) -> int:
        """Events (not records) of `topic` that `group` has not committed."""
        log = self.topic(topic)
        return log.events_total - log.events_before(log.committed.get(group, log.base))

    async def waiting(self, queues: Mapping[str, tuple[str, int]]) -> dict[str, int]:
        """For each topic -> (group, up_to): `pending`, at most `up_to` (KafkaBus.waiting)."""
        return {t: min(self.pending(t, group), up_to) for t, (group, up_to) in queues.items()}

    def backlog(self) -> int:
        """Records some group has not committed yet, over every topic (0: nothing in flight)."""
        return sum(
            t.end - committed for t in self._topics.values() for committed in t.committed.values()
        )

    def read(self, topic: str, offset: int, limit: int) -> list[Message]:
        """Up to `limit` events of the records kept from `offset` on (the oldest kept one if
        `offset` is older), outside any group: a reader resuming after the last offset it
        saw. What was trimmed is gone; the first message's offset says where reading began."""
        return self.topic(topic).events(topic, offset, limit)[0]

    async def wait_for_data(self, timeout: float) -> None:
        """Block until something is published or `timeout` passes (safe to cancel)."""
        arrived = self._arrived
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await arrived.wait()

    async def close(self) -> None:
        """Nothing to release."""


class MemoryConsumer:
    """A consumer of the in-process bus."""

    def __init__(self, bus: MemoryBus, topics: list[str], group: str) -> None:
        self._bus = bus
        self._topics = topics
        self._group = group
        self._position = {t: bus.topic(t).committed[group] for t in topics}
        self._lag = bus.lag_sink(group)  # alm_consumer_lag: each topic is one partition, 0

    def _take(self, max_records: int) -> list[Message]:
        out: list[Message] = []
        for name in self._topics:
            if len(out) >= max_records:
                break
            found, self._position[name] = self._bus.topic(name).events(
                name, self._position[name], max_records - len(out)
            )
            out.extend(found)
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
