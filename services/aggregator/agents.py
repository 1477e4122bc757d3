"""The aggregator agent: batches of `alm.metrics.raw` through the shared Aggregator.process.

A few lines on purpose: unpack the records (a fetcher packs the observations bound for one
partition into one record, services/adapters/packing.py), decode (schema check at the edge),
make sure partitions newly owned here were recovered (published.py), call the same `process` as
the embedded runner (fold with the pure aggregate(), read-through to Cassandra, publish
changes, write, schedule next due) on chunks of at most CHUNK observations, and only then
acknowledge the records, so their offsets are committed after the writes.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import structlog

from services.adapters.packing import unpack
from services.aggregator.published import PublishedChanges
from services.aggregator.service import Aggregator

log = structlog.get_logger("alm.aggregator")

BATCH = 50  # records taken at once (each may hold up to PACK_OBSERVATIONS observations)
WITHIN = 0.2  # seconds to wait for BATCH records
CHUNK = 1000  # observations per `process` call
RETRY_MAX = 30.0  # seconds between attempts at a batch that failed (store or bus down)


@dataclass
class Runtime:
    """What the agent works with; built by app.create_app, closed by app.run_worker."""

    aggregator: Aggregator
    published: PublishedChanges
    batches: int = 0
    observations: int = 0


async def handle(runtime: Runtime, events: list[Any]) -> None:
    """Process one batch of faust events until it succeeds (never skipped, never half-acked)."""
    first: dict[int, int] = {}
    for event in events:
        tp = event.message.tp
        first[tp.partition] = min(
            first.get(tp.partition, event.message.offset), event.message.offset
        )
    new = runtime.published.unknown(first)
    if new:
        await runtime.published.recover({p: first[p] for p in new})
    observations = runtime.aggregator.decode(
        pair for event in events for pair in unpack(_key(event.key), event.value)
    )
    for start in range(0, len(observations), CHUNK):
        await runtime.aggregator.process(observations[start : start + CHUNK])
    runtime.batches += 1
    runtime.observations += len(observations)


def _key(key: Any) -> str:
    return key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key or "")


def attach(app: Any, topic: Any, runtime: Runtime) -> Any:
    """Register the agent on `app`; returns it."""

    async def fold_observations(stream: Any) -> None:
        async for events in stream.noack_take(BATCH, within=WITHIN):
            delay = 0.5
            while True:
                try:
                    await handle(runtime, list(events))
                    break
                except asyncio.CancelledError:
                    raise  # stopping: the batch is not acked, the next owner redoes it
                except Exception:
                    log.exception("batch_failed_retrying", size=len(events), in_seconds=delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, RETRY_MAX)
            for event in events:
                await stream.ack(event)

    return app.agent(topic, name="alm.aggregator.fold")(fold_observations)
