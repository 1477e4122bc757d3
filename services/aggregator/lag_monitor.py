"""The aggregator's consumer lag (alm_consumer_lag): faust's Monitor, which the consumer tells
each record's partition end offset and each commit, also feeding services/telemetry/lag.py."""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from typing import Any

from faust.sensors import Monitor
from faust.types.tuples import TP

from services.telemetry.lag import PartitionLag


class LagMonitor(Monitor):
    """faust's default Monitor plus the lag series of the partitions this worker owns."""

    def __init__(self, group: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.lag = PartitionLag(group)

    def on_tp_commit(self, tp_offsets: MutableMapping[TP, int]) -> None:
        """Offsets were committed (faust commits the next offset to read, as Kafka counts)."""
        super().on_tp_commit(tp_offsets)
        for tp, offset in tp_offsets.items():
            self.lag.committed((tp.topic, tp.partition), offset)

    def track_tp_end_offset(self, tp: TP, offset: int) -> None:
        """A record arrived from `tp`, whose end offset (high watermark) is `offset`."""
        super().track_tp_end_offset(tp, offset)
        self.lag.end((tp.topic, tp.partition), offset)

    def revoked(self, tps: Iterable[TP]) -> None:
        """Partitions moved to another worker: their series are its to export now."""
        self.lag.forget((tp.topic, tp.partition) for tp in tps)
