"""The aggregator agent: batches of `alm.metrics.raw` through the shared Aggregator.process.

A few lines on purpose: unpack the records (a fetcher packs the observations bound for one
partition into one record, services/adapters/packing.py), decode (schema check at the edge),
make sure partitions newly owned here were recovered (published.py), call the same `process` as
the embedded runner (fold with the pure aggregate(), read-through to Cassandra, publish
changes, write, schedule next due) on chunks of at most CHUNK observations, and only then
acknowledge the records, so their offsets are committed after the writes.

Up to IN_FLIGHT chunks are processed at once, across batches, so that one chunk's folding
overlaps another's waits on Cassandra and Kafka (measured with bench/distributed.py: about
+15-25 % refreshes/s). Two chunks in flight never share a work: a chunk that does waits for the
one before it, so each work's observations are still folded in order, each on the state the
previous one stored. A batch's records are acknowledged once all its chunks are done; doing so
out of order is safe, as faust commits a partition only up to its first unacknowledged offset.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TypeVar

import structlog

from services.adapters.packing import unpack, value_of
from services.aggregator.published import PublishedChanges
from services.aggregator.service import Aggregator
from services.core.events import Observation
from services.telemetry.pipeline import STEP_FAILURES

log = structlog.get_logger("alm.aggregator")
T = TypeVar("T")

BATCH = 50  # records taken at once (each may hold up to PACK_OBSERVATIONS observations)
WITHIN = 0.2  # seconds to wait for BATCH records
CHUNK = 1000  # observations per `process` call
IN_FLIGHT = 2  # chunks processed at once (never two sharing a work)
RETRY_MAX = 30.0  # seconds between attempts at a batch that failed (store or bus down)


@dataclass
class Runtime:
    """What the agent works with; built by app.create_app, closed by app.run_worker."""

    aggregator: Aggregator
    published: PublishedChanges
    batches: int = 0
    observations: int = 0
    in_flight: dict[asyncio.Task[None], frozenset[str]] = field(default_factory=dict)
    acks: set[asyncio.Task[None]] = field(default_factory=set)  # batches awaiting their ack
    draining: bool = False  # stopping: no batch is started any more


async def prepare(runtime: Runtime, events: list[Any]) -> list[Observation]:
    """Recover partitions new to this process, then decode the batch's observations (the
    records that are none go to the dead-letter topic)."""
    first: dict[int, int] = {}
    for event in events:
        tp = event.message.tp
        first[tp.partition] = min(
            first.get(tp.partition, event.message.offset), event.message.offset
        )
    new = runtime.published.unknown(first)
    if new:
        await runtime.published.recover({p: first[p] for p in new})
    observations, rejected = runtime.aggregator.decode(
        pair for event in events for pair in unpack(_key(event.key), _value(event.value))
    )
    await runtime.aggregator.dead_letter(rejected)
    return observations


async def fold(runtime: Runtime, chunk: list[Observation]) -> None:
    """Process one chunk of observations until it succeeds (never skipped, never half-done;
    an observation that can never be stored is dead-lettered by `settle`)."""
    await until_done(partial(runtime.aggregator.settle, chunk), len(chunk))


async def until_done(step: Callable[[], Awaitable[T]], size: int) -> T:
    """`step()` again, with growing pauses, until it succeeds (the store or the bus is down):
    a batch is never skipped. Permanent failures do not reach here (`settle` dead-letters
    them). Cancelling (stopping) stops it: what was not acknowledged is redone by the next
    owner of its partitions."""
    delay = 0.5
    while True:
        try:
            return await step()
        except asyncio.CancelledError:
            raise
        except Exception:
            STEP_FAILURES.labels("aggregator").inc()
            log.exception("batch_failed_retrying", size=size, in_seconds=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_MAX)


async def start(runtime: Runtime, observations: list[Observation]) -> list[asyncio.Task[None]]:
    """Start folding a batch's observations, CHUNK at a time, each chunk as soon as `admit`
    lets it; returns the chunks' tasks (the last ones may still be running)."""
    tasks = []
    for begin in range(0, len(observations), CHUNK):
        chunk = observations[begin : begin + CHUNK]
        works = frozenset(o.work_id for o in chunk)
        await admit(runtime, works)
        task = asyncio.ensure_future(fold(runtime, chunk))
        runtime.in_flight[task] = works
        task.add_done_callback(runtime.in_flight.pop)
        tasks.append(task)
    return tasks


async def begin(runtime: Runtime, events: list[Any]) -> Awaitable[None]:
    """Recover and decode a batch of faust events (retried until it succeeds) and start folding
    its chunks; returns what completes, and counts the batch, once every chunk is folded.
    While draining, a new batch is not started: it waits (unacknowledged) to be cancelled."""
    if runtime.draining:
        await asyncio.get_running_loop().create_future()
    observations = await until_done(partial(prepare, runtime, events), len(events))
    tasks = await start(runtime, observations)

    async def folded() -> None:
        await asyncio.gather(*tasks)
        runtime.batches += 1
        runtime.observations += len(observations)

    return folded()


async def handle(runtime: Runtime, events: list[Any]) -> None:
    """Process one batch of faust events and wait until it is folded."""
    await (await begin(runtime, events))


async def drain(runtime: Runtime, seconds: float) -> bool:
    """Stop starting batches and wait up to `seconds` for those started to be folded and
    acknowledged (faust then commits their offsets); whether they all were."""
    runtime.draining = True
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while runtime.in_flight or runtime.acks:
        left = deadline - loop.time()
        if left <= 0:
            log.warning("drain_timed_out", chunks=len(runtime.in_flight), seconds=seconds)
            return False
        await asyncio.wait([*runtime.in_flight, *runtime.acks], timeout=left)
    return True


async def admit(runtime: Runtime, works: frozenset[str]) -> None:
    """Wait until a chunk on `works` may start: no chunk in flight shares a work with it, and
    fewer than IN_FLIGHT are in flight."""
    while True:
        blocking = [t for t, w in runtime.in_flight.items() if not works.isdisjoint(w)]
        if not blocking and len(runtime.in_flight) < IN_FLIGHT:
            return
        await asyncio.wait(blocking or list(runtime.in_flight), return_when=asyncio.FIRST_COMPLETED)


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

        acks = runtime.acks
        try:
            async for events in stream.noack_take(BATCH, within=WITHIN):
                batch = list(events)
                ack = asyncio.ensure_future(acknowledge(await begin(runtime, batch), batch))
                acks.add(ack)
                ack.add_done_callback(acks.discard)
        finally:  # stopping: what is unfinished is not acked, the next owner redoes it
            for task in [*runtime.in_flight, *acks]:
                task.cancel()

    return app.agent(topic, name="alm.aggregator.fold")(fold_observations)
