"""The change feed over the in-process bus (embedded mode): `alm.metrics.changed` is one
partition, 0, whose last `ALM_EVENT_WINDOW` records the bus keeps (a retained topic), with their
offsets. Readers read it with `MemoryBus.read` and wait with `wait_for_data`."""

from __future__ import annotations

from collections.abc import Mapping

from services.adapters.memory.bus import MemoryBus
from services.core.changefeed import FeedItem, Gap, Position
from services.core.events import TOPIC_CHANGED


class MemoryFeedReader:
    """A reader of the in-process change topic from an offset."""

    def __init__(self, bus: MemoryBus, start: Mapping[int, int], topic: str) -> None:
        self._bus = bus
        self._topic = topic
        log = bus.topic(topic)
        offset = start.get(0, log.base)
        # An offset past the end comes from another process's bus (an embedded restart
        # begins again at 0): everything kept is new to the client.
        self._offset = log.base if offset > log.end else offset

    @property
    def position(self) -> Position:
        """{0: next offset}."""
        return {0: self._offset}

    def _take(
        self, limit: int, until: Mapping[int, int] | None
    ) -> tuple[list[FeedItem], list[Gap]]:
        gaps: list[Gap] = []
        base = self._bus.topic(self._topic).base
        if self._offset < base:
            gaps.append(Gap(0, self._offset, base))
            self._offset = base
        if until is not None and 0 in until:
            limit = min(limit, until[0] - self._offset)
        if limit <= 0:
            return [], gaps
        messages = self._bus.read(self._topic, self._offset, limit)
        items = [FeedItem(0, m.offset, m.value) for m in messages]
        if items:
            self._offset = items[-1].offset + 1
        return items, gaps

    async def read(
        self, limit: int, timeout: float, until: Mapping[int, int] | None = None
    ) -> tuple[list[FeedItem], list[Gap]]:
        """Up to `limit` events from the position (before `until[0]`, if given), waiting up
        to `timeout` for one."""
        items, gaps = self._take(limit, until)
        reached = until is not None and self._offset >= until.get(0, self._offset + 1)
        if not items and not gaps and timeout > 0 and not reached:
            await self._bus.wait_for_data(timeout)
            items, gaps = self._take(limit, until)
        return items, gaps

    async def close(self) -> None:
        """Nothing to release."""


class MemoryChangeFeed:
    """The ChangeFeed of the embedded mode."""

    def __init__(self, bus: MemoryBus, topic: str = TOPIC_CHANGED) -> None:
        self._bus = bus
        self._topic = topic

    async def end(self) -> Position:
        """{0: the next offset to be written}."""
        return {0: self._bus.topic(self._topic).end}

    def reader(self, start: Mapping[int, int]) -> MemoryFeedReader:
        """A reader from `start` (the oldest kept event if it names no offset)."""
        return MemoryFeedReader(self._bus, start, self._topic)
