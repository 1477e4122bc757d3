"""Recovery of what a previous owner published: what it reads from the topics."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from services.aggregator.published import PublishedChanges
from services.core.events import TOPIC_CHANGED, TOPIC_RAW
from services.core.ports import Message


class FakeBus:
    """End offsets per topic and partition; records what was counted and read."""

    def __init__(self, ends: dict[str, dict[int, int]], per_record: int = 3) -> None:
        self.ends = ends
        self.per_record = per_record
        self.counted: list[dict[int, tuple[int, int]]] = []
        self.read_ranges: list[dict[int, tuple[int, int]]] = []

    async def partitions(self, topic: str) -> int:
        return len(self.ends[topic])

    async def end_offsets(self, topic: str, partitions: Sequence[int]) -> dict[int, int]:
        return {p: self.ends[topic][p] for p in partitions}

    async def count(self, topic: str, ranges: Mapping[int, tuple[int, int]]) -> dict[int, int]:
        assert topic == TOPIC_RAW
        self.counted.append(dict(ranges))
        return {p: (end - start) * self.per_record for p, (start, end) in ranges.items()}

    async def read(self, topic: str, ranges: Mapping[int, tuple[int, int]]) -> list[Message]:
        assert topic == TOPIC_CHANGED
        self.read_ranges.append(dict(ranges))
        return []


async def test_raw_records_are_counted_only_where_changes_were_ever_published() -> None:
    bus = FakeBus({TOPIC_RAW: {0: 50, 1: 40, 2: 9}, TOPIC_CHANGED: {0: 0, 1: 100, 2: 0}})
    published = PublishedChanges(bus)
    await published.recover({0: 10, 1: 30, 2: 0})
    assert bus.counted == [{1: (30, 40)}]  # partitions 0 and 2: nothing to find, nothing read
    # partition 1: 10 records of 3 observations -> the last 30 changes; 0 and 2 are empty
    assert bus.read_ranges == [{0: (0, 0), 1: (70, 100), 2: (0, 0)}]
    assert published.unknown([0, 1, 2, 3]) == [3]


async def test_nothing_published_anywhere_reads_nothing() -> None:
    bus = FakeBus({TOPIC_RAW: {0: 5000}, TOPIC_CHANGED: {0: 0}})
    published = PublishedChanges(bus)
    await published.recover({0: 0})
    assert not any(bus.counted)  # no raw record counted
    assert published.unknown([0]) == []
