"""How the aggregator agent works through its batches: in chunks, several at once, never two
on the same work, each retried until it is done.

Up to `max_in_flight` chunks are folded at once, across batches, so that one chunk's folding
overlaps another's waits on Cassandra and Kafka (measured with bench/distributed.py: about
+15-25 % refreshes/s). Two chunks in flight never share a key (a work): a chunk that does waits
for the one before it, so each work's observations are still folded in order, each on the state
the previous one stored. `start` returns only once its last chunk was let in: a batch that
cannot start yet holds the agent back from taking the next one (backpressure).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

import structlog

from services.telemetry.pipeline import STEP_FAILURES

log = structlog.get_logger("alm.aggregator")
T = TypeVar("T")
R = TypeVar("R")


class ChunkScheduler(Generic[T]):
    """Folds items `size` at a time, up to `max_in_flight` chunks at once, never two chunks
    holding the same `key` at once, chunks on one key in the order they were started."""

    def __init__(
        self,
        fold: Callable[[list[T]], Awaitable[None]],
        key: Callable[[T], str],
        *,
        size: int,
        max_in_flight: int,
    ) -> None:
        if size < 1 or max_in_flight < 1:
            raise ValueError(f"chunks of {size}, {max_in_flight} at once: both must be >= 1")
        self._fold = fold
        self._key = key
        self.size = size
        self.max_in_flight = max_in_flight
        self._in_flight: dict[asyncio.Task[None], frozenset[str]] = {}

    @property
    def running(self) -> list[asyncio.Task[None]]:
        """The chunks being folded now."""
        return list(self._in_flight)

    async def start(self, items: Sequence[T]) -> list[asyncio.Task[None]]:
        """Start folding `items`, a chunk at a time, each as soon as it may start; returns the
        chunks' tasks (the last ones may still be running)."""
        tasks = []
        for begin in range(0, len(items), self.size):
            chunk = list(items[begin : begin + self.size])
            keys = frozenset(self._key(item) for item in chunk)
            await self._admit(keys)
            task = asyncio.ensure_future(self._fold(chunk))
            self._in_flight[task] = keys
            task.add_done_callback(self._in_flight.pop)
            tasks.append(task)
        return tasks

    async def _admit(self, keys: frozenset[str]) -> None:
        """Wait until no chunk in flight shares a key with `keys` and fewer than
        `max_in_flight` are in flight."""
        while True:
            blocking = [t for t, k in self._in_flight.items() if not keys.isdisjoint(k)]
            if not blocking and len(self._in_flight) < self.max_in_flight:
                return
            wait_for = blocking or list(self._in_flight)
            await asyncio.wait(wait_for, return_when=asyncio.FIRST_COMPLETED)

    def cancel(self) -> None:
        """Cancel every chunk in flight (stopping: the next owner redoes them)."""
        for task in self._in_flight:
            task.cancel()


class Retry:
    """`step()` again, with pauses from `first` doubling up to `most` seconds, until it
    succeeds (the store or the bus is down): a batch is never skipped. Cancelling (stopping)
    stops it."""

    def __init__(
        self,
        *,
        first: float = 0.5,
        most: float = 30.0,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        self.first = first
        self.most = most
        self._sleep = sleep

    async def __call__(self, step: Callable[[], Awaitable[R]], size: int) -> R:
        delay = self.first
        while True:
            try:
                return await step()
            except asyncio.CancelledError:
                raise
            except Exception:
                STEP_FAILURES.labels("aggregator").inc()
                log.exception("batch_failed_retrying", size=size, in_seconds=delay)
                await self._sleep(delay)
                delay = min(delay * 2, self.most)
