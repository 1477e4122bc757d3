"""What a previous owner of a partition already published: no metric change is sent twice.

The aggregator publishes a change, then stores the state (so a crash between the two never
loses a change: the observation is redelivered and the change recomputed). The price would be
a duplicate: the recomputed change was already on `alm.metrics.changed`. This module removes it.

Why it is exact: `alm.metrics.raw` and `alm.metrics.changed` have the same partition count and
are both keyed by work id, so a work is on partition p of both, and only the owner of raw p
writes changed p. When this process takes raw p over, its first record there is the group's
committed offset C. The previous owner may have processed (published, maybe not stored) records
C..H-1 at most, H being raw p's end now. Those records hold N observations (a fetcher packs
several into one record: they are counted, not assumed one a record), each producing at most
one change, so everything it may have published from them is among the last N records of
changed p (end E, read before this process publishes anything to p). Those change ids are
collected once per assignment; a recomputed change whose id is among them is not published
again. A change id is
(work, source, observation time), unique because an observation is applied to a state once.

Limit: a stalled zombie owner that keeps publishing after losing p (longer than the session
timeout) is not fenced; that needs Kafka transactions (faust exactly_once), which would also
have to cover the Cassandra write, and do not.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping

import structlog

from services.aggregator.records import id_of, id_of_value
from services.core.events import TOPIC_CHANGED, TOPIC_RAW, MetricChanged
from services.core.partitions import PartitionReader

log = structlog.get_logger("alm.aggregator")


class PartitionsMisaligned(RuntimeError):
    """alm.metrics.raw and alm.metrics.changed differ in partition count."""


class PublishedChanges:
    """Change ids already on `alm.metrics.changed`, per raw partition taken over."""

    def __init__(self, bus: PartitionReader) -> None:
        self.bus = bus  # reads the partitions of alm.metrics.raw and alm.metrics.changed
        self._ids: dict[int, set[str]] = {}
        self.suppressed = 0

    async def check_alignment(self) -> int:
        """The partition count shared by raw and changed, or PartitionsMisaligned."""
        raw = await self.bus.partitions(TOPIC_RAW)
        changed = await self.bus.partitions(TOPIC_CHANGED)
        if raw == 0 or raw != changed:
            raise PartitionsMisaligned(
                f"{TOPIC_RAW} has {raw} partitions and {TOPIC_CHANGED} {changed}: they must be "
                "equal and exist (run `alm topics create`)"
            )
        return raw

    def forget(self, partitions: Iterable[int]) -> None:
        """Partitions this process no longer owns (revoked): recover them again if regained."""
        for p in partitions:
            self._ids.pop(p, None)

    def unknown(self, partitions: Iterable[int]) -> list[int]:
        """Partitions not yet recovered since they were assigned here."""
        return sorted({p for p in partitions if p not in self._ids})

    async def recover(self, first_offsets: Mapping[int, int]) -> None:
        """Collect what previous owners may have published for these newly owned partitions.

        `first_offsets`: partition -> offset of the first raw record this process got there.
        """
        parts = sorted(first_offsets)
        if not parts:
            return
        raw_end, changed_end = await asyncio.gather(
            self.bus.end_offsets(TOPIC_RAW, parts), self.bus.end_offsets(TOPIC_CHANGED, parts)
        )
        # Where nothing was ever published (a new deployment), there is nothing to count.
        pending = await self.bus.count(
            TOPIC_RAW, {p: (first_offsets[p], raw_end[p]) for p in parts if changed_end[p]}
        )
        ranges = {p: (max(0, changed_end[p] - pending.get(p, 0)), changed_end[p]) for p in parts}
        found: dict[int, set[str]] = {p: set() for p in parts}
        for message in await self.bus.read(TOPIC_CHANGED, ranges):
            cid = id_of_value(message.value)
            if cid is not None:
                found[message.partition].add(cid)
        self._ids.update(found)
        log.info(
            "partitions_recovered",
            partitions=parts,
            scanned=sum(e - s for s, e in ranges.values()),
        )

    def __call__(self, change: MetricChanged) -> bool:
        """Whether `change` is already on the topic (then it is not sent again)."""
        cid = id_of(change)
        if any(cid in ids for ids in self._ids.values()):
            self.suppressed += 1
            return True
        return False
