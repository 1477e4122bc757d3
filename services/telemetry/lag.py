"""Consumer lag per topic, partition and consumer group, exported by the consumers themselves.

Lag is what Kafka's own tools call it: the partition's end offset (the offset the next record
written will get) minus the group's committed offset, counted in records (a packed record holds
several events, services/core/packing.py). Each group member reports the partitions it owns
and drops the series of partitions it gave up in a rebalance, so `sum by (group, topic)` over
every member is the group's lag. The series move only when the member polls or commits: a member
that stops doing either keeps its last value (KEDA's Kafka scaler and kafka-exporter read the
broker instead).
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Gauge

CONSUMER_LAG = Gauge(
    "alm_consumer_lag",
    "Records of a partition not yet committed by the consumer group (end offset - committed)",
    ["topic", "partition", "group"],
)

Partition = tuple[str, int]


class PartitionLag:
    """The lag series of one member of `group`: end and committed offsets per owned partition."""

    def __init__(self, group: str) -> None:
        self.group = group
        self._end: dict[Partition, int] = {}
        self._committed: dict[Partition, int] = {}

    def owned(self, partitions: Iterable[Partition]) -> None:
        """The member now owns exactly `partitions`: forget every other one."""
        keep = set(partitions)
        self.forget(tp for tp in set(self._end) | set(self._committed) if tp not in keep)

    def forget(self, partitions: Iterable[Partition]) -> None:
        """The member gave `partitions` up: their series are no longer exported from here."""
        for tp in list(partitions):
            exported = self.lag(tp) is not None
            self._end.pop(tp, None)
            self._committed.pop(tp, None)
            if exported:
                CONSUMER_LAG.remove(tp[0], str(tp[1]), self.group)

    def knows_committed(self, tp: Partition) -> bool:
        """Whether the committed offset of `tp` is known (a commit, or where reading began)."""
        return tp in self._committed

    def started(self, tp: Partition, offset: int) -> None:
        """The member began reading `tp` at `offset` (the group's committed offset), unless it
        has committed on `tp` itself since it got it."""
        if tp not in self._committed:
            self.committed(tp, offset)

    def committed(self, tp: Partition, offset: int) -> None:
        """The group's committed offset of `tp` is now `offset` (the next record to read)."""
        self._committed[tp] = offset
        self._export(tp)

    def end(self, tp: Partition, offset: int | None) -> None:
        """The end offset of `tp` as last seen (None: not known yet)."""
        if offset is None:
            return
        self._end[tp] = offset
        self._export(tp)

    def lag(self, tp: Partition) -> int | None:
        """Records of `tp` after the committed offset (None until both offsets are known)."""
        end, committed = self._end.get(tp), self._committed.get(tp)
        if end is None or committed is None:
            return None
        return max(0, end - committed)

    def close(self) -> None:
        """The member left the group: unexport every series it exported."""
        self.owned(())

    def _export(self, tp: Partition) -> None:
        lag = self.lag(tp)
        if lag is not None:
            CONSUMER_LAG.labels(tp[0], str(tp[1]), self.group).set(lag)
