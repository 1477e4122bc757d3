"""The ports of reading a topic's partitions: where a consumer-group member reports its lag
(`LagSink`), and reading records by partition and offset outside any group
(`PartitionReader`: the aggregator's check of what a previous owner published, the API's
change feed, recent changes and dead letters). The bus adapters implement them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from services.core.ports import Message

Partition = tuple[str, int]  # (topic, partition number)


class LagSink(Protocol):
    """Where a consumer-group member reports the offsets of the partitions it owns, for the
    consumer-lag export (services/telemetry/lag.py's PartitionLag is the real one). The bus
    adapters get a factory of these (group -> sink) passed in."""

    def owned(self, partitions: Iterable[Partition]) -> None:
        """The member now owns exactly `partitions`."""
        ...

    def knows_committed(self, tp: Partition) -> bool:
        """Whether the committed offset of `tp` is known."""
        ...

    def started(self, tp: Partition, offset: int) -> None:
        """The member began reading `tp` at `offset` (the group's committed offset)."""
        ...

    def committed(self, tp: Partition, offset: int) -> None:
        """The group's committed offset of `tp` is now `offset`."""
        ...

    def end(self, tp: Partition, offset: int | None) -> None:
        """The end offset of `tp` as last seen (None: not known yet)."""
        ...

    def close(self) -> None:
        """The member left the group."""
        ...


class NoLag:
    """A LagSink that reports nothing (buses built without a lag export)."""

    def __init__(self, group: str = "") -> None:
        self.group = group

    def owned(self, partitions: Iterable[Partition]) -> None:
        """Nothing to report."""

    def knows_committed(self, tp: Partition) -> bool:
        """Never known: nothing is kept."""
        return False

    def started(self, tp: Partition, offset: int) -> None:
        """Nothing to report."""

    def committed(self, tp: Partition, offset: int) -> None:
        """Nothing to report."""

    def end(self, tp: Partition, offset: int | None) -> None:
        """Nothing to report."""

    def close(self) -> None:
        """Nothing to release."""


class PartitionReader(Protocol):
    """Reading a topic's partitions directly, outside any group (the aggregator's check of
    what a previous owner already published, services/aggregator/published.py). Topics are
    the plain names; offsets are record offsets (a packed record holds several events)."""

    async def partitions(self, topic: str) -> int:
        """How many partitions `topic` has (0 if it does not exist)."""
        ...

    async def end_offsets(self, topic: str, partitions: Sequence[int]) -> dict[int, int]:
        """The next offset to be written in each of `partitions` of `topic`."""
        ...

    async def read(self, topic: str, ranges: Mapping[int, tuple[int, int]]) -> list[Message]:
        """The events of `topic` whose records' offsets are in [start, end) of their partition."""
        ...

    async def count(self, topic: str, ranges: Mapping[int, tuple[int, int]]) -> dict[int, int]:
        """How many events the records of `topic` in [start, end) of each partition hold."""
        ...
