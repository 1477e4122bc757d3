"""The aggregator agent: batches of `alm.metrics.raw` through the shared Aggregator.

Per batch: unpack the records (a fetcher packs the observations bound for one partition into
one record, services/core/packing.py), decode (schema check at the edge), make sure partitions
newly owned here were recovered (published.py), fold the observations with the same `settle`
as the embedded runner (the pure aggregate(), read-through to Cassandra, publish changes,
write, schedule next due) in chunks (chunking.py: up to IN_FLIGHT chunks of CHUNK at once,
never two on one work), and only then acknowledge the records, so their offsets are committed
after the writes. A batch's records are acknowledged once all its chunks are done; doing so
out of order is safe, as faust commits a partition only up to its first unacknowledged offset.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import structlog

from services.aggregator.chunking import ChunkScheduler, Retry
from services.aggregator.published import PublishedChanges
from services.aggregator.service import Aggregator
from services.core.events import Observation
from services.core.packing import unpack, value_of

log = structlog.get_logger("alm.aggregator")

# Records taken at once. Each holds up to PACK_OBSERVATIONS (500) observations (~150 KB), so
# BATCH bounds what a batch decodes at once (5,000 observations, five chunks); app.py sizes the
# consumer's buffers from it. What the aggregator holds follows these buffers, full whenever it
# lags, not the number of works.
BATCH = 10
WITHIN = 0.2  # seconds to wait for BATCH records
CHUNK = 1000  # observations per `settle` call
IN_FLIGHT = 2  # chunks processed at once (never two sharing a work)
RETRY_MAX = 30.0  # seconds between attempts at a batch that failed (store or bus down)


@dataclass
class Runtime:
    """What the agent works with; built by app.create_app, closed by app.run_worker."""

    aggregator: Aggregator
    published: PublishedChanges
    chunk_size: int = CHUNK
    max_in_flight: int = IN_FLIGHT
    retry: Retry = field(default_factory=lambda: Retry(most=RETRY_MAX))
    batches: int = 0
    observations: int = 0
    acks: set[asyncio.Task[None]] = field(default_factory=set)  # batches awaiting their ack
    draining: bool = False  # stopping: no batch is started any more
    chunks: ChunkScheduler[Observation] = field(init=False)

    def __post_init__(self) -> None:
        self.chunks = ChunkScheduler(
            self.fold,
            lambda o: o.work_id,
            size=self.chunk_size,
            max_in_flight=self.max_in_flight,
        )

    async def fold(self, chunk: list[Observation]) -> None:
        """Fold one chunk until it succeeds (never skipped, never half-done; an observation
        that can never be stored is dead-lettered by `settle`)."""
        await self.retry(partial(self.aggregator.settle, chunk), len(chunk))

    async def prepare(self, events: list[Any]) -> list[Observation]:
        """Recover partitions new to this process, then decode the batch's observations (the
        records that are none go to the dead-letter topic)."""
        first: dict[int, int] = {}
        for event in events:
            partition, offset = event.message.tp.partition, event.message.offset
            first[partition] = min(first.get(partition, offset), offset)
        new = self.published.unknown(first)
        if new:
            await self.published.recover({p: first[p] for p in new})
        observations, rejected = self.aggregator.decode(
            pair for event in events for pair in unpack(_key(event.key), _value(event.value))
        )
        await self.aggregator.dead_letter(rejected)
        return observations

    async def begin(self, events: list[Any]) -> Awaitable[None]:
        """Prepare a batch of faust events (retried until it succeeds) and start folding its
        chunks; returns what completes, and counts the batch, once every chunk is folded.
        While draining, a new batch is not started: it waits (unacknowledged) to be cancelled."""
        if self.draining:
            await asyncio.get_running_loop().create_future()
        observations = await self.retry(partial(self.prepare, events), len(events))
        tasks = await self.chunks.start(observations)

        async def folded() -> None:
            await asyncio.gather(*tasks)
            self.batches += 1
            self.observations += len(observations)

        return folded()

    async def handle(self, events: list[Any]) -> None:
        """Process one batch of faust events and wait until it is folded."""
        await (await self.begin(events))

    async def drain(self, seconds: float) -> bool:
        """Stop starting batches and wait up to `seconds` for those started to be folded and
        acknowledged (faust then commits their offsets); whether they all were."""
        self.draining = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while self.chunks.running or self.acks:
            left = deadline - loop.time()
            if left <= 0:
                log.warning("drain_timed_out", chunks=len(self.chunks.running), seconds=seconds)
                return False
            await asyncio.wait([*self.chunks.running, *self.acks], timeout=left)
        return True

    def stop(self) -> None:
        """Cancel what is unfinished: it is not acknowledged, the next owner redoes it."""
        self.chunks.cancel()
        for task in self.acks:
            task.cancel()


def _value(value: Any) -> Any:
    """A record's value (raw bytes from the topic; already decoded in tests)."""
    return value_of(bytes(value)) if isinstance(value, bytes | bytearray) else value


def _key(key: Any) -> str:
    return key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key or "")


def attach(app: Any, topic: Any, runtime: Runtime) -> Any:
    """Register the agent on `app`; returns it."""

    async def fold_observations(stream: Any) -> None:
        async def acknowledge(folded: Awaitable[None], events: list[Any]) -> None:
            await folded
            for event in events:
                await stream.ack(event)

        try:
            async for events in stream.noack_take(BATCH, within=WITHIN):
                batch = list(events)
                ack = asyncio.ensure_future(acknowledge(await runtime.begin(batch), batch))
                runtime.acks.add(ack)
                ack.add_done_callback(runtime.acks.discard)
        finally:
            runtime.stop()

    return app.agent(topic, name="alm.aggregator.fold")(fold_observations)
