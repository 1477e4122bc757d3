"""The embedded default: every service in one process over the in-process bus and SQLite.

`refresh_until_idle` drives the pipeline step by step until nothing is due or in flight (what
`alm run` prints a summary after); `run_forever` then keeps every service looping.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog

from services.adapters.failures import describe, unavailable
from services.bootstrap import Pipeline
from services.shutdown import DRAIN_SECONDS

log = structlog.get_logger("alm.embedded")

STEP_BACKOFF = 0.5  # seconds before a failed step is tried again, doubling up to STEP_RETRY_MAX
STEP_RETRY_MAX = 30.0


@dataclass(frozen=True, slots=True)
class RunSummary:
    """What one refresh cycle did."""

    requested: int
    refreshed: int
    errors: int
    changes: int
    upstream_calls: int


def _counters(p: Pipeline) -> tuple[int, int, int, int, int]:
    return (
        p.scheduler.emitted,
        sum(f.refreshed for f in p.fetchers),
        sum(f.errors for f in p.fetchers),
        p.aggregator.changes,
        sum(f.calls for f in p.fetchers),
    )


async def refresh_until_idle(p: Pipeline, max_rounds: int = 100_000) -> RunSummary:
    """Run scheduler, fetchers and aggregator until no service has work left."""
    before = _counters(p)
    for _ in range(max_rounds):
        moved = await p.scheduler.step(0)
        moved += await p.scheduler.tick()
        results = await asyncio.gather(*(f.step(0) for f in p.fetchers))
        moved += sum(results)
        while (n := await p.aggregator.step(0)) > 0:
            moved += n
        if moved == 0:
            break
    after = _counters(p)
    return RunSummary(*(a - b for a, b in zip(after, before, strict=True)))


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def _finish(task: asyncio.Future[int], stop: asyncio.Event, drain: float) -> int:
    """The step's result; once `stop` is set, the step gets `drain` seconds to finish (and
    commit), then it is cancelled: its uncommitted batch is redone by the next owner."""
    stopping = asyncio.ensure_future(stop.wait())
    either: list[asyncio.Future[Any]] = [task, stopping]
    try:
        await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            await asyncio.wait([task], timeout=drain)
    finally:
        stopping.cancel()
        if not task.done():
            task.cancel()
            log.warning("step_cancelled_at_shutdown", after_seconds=drain)
    try:
        return await task
    except asyncio.CancelledError:
        if stop.is_set():
            return 0
        raise


async def keep_stepping(
    name: str,
    step: Callable[[float], Awaitable[int]],
    stop: asyncio.Event,
    idle: float = 1.0,
    backoff: float = STEP_BACKOFF,
    drain: float = DRAIN_SECONDS,
) -> None:
    """Run a service's `step` until `stop`. A failing step (Kafka or Cassandra down) is logged
    and retried after a pause that doubles up to STEP_RETRY_MAX and resets on success: its
    uncommitted batch is redone (the step rewinds its consumer). Stopping lets the step in
    progress finish within `drain` seconds."""
    delay = backoff
    while not stop.is_set():
        try:
            moved = await _finish(asyncio.ensure_future(step(idle)), stop, drain)
        except Exception as exc:
            if unavailable(exc):  # expected while a dependency is down: no traceback
                log.warning("service_step_failed_retrying", service=name, error=describe(exc))
            else:
                log.exception("service_step_failed_retrying", service=name)
            await _pause(stop, delay)
            delay = min(delay * 2, STEP_RETRY_MAX)
            continue
        delay = backoff
        if moved == 0:
            await _pause(stop, 0.05)


async def keep_ticking(p: Pipeline, stop: asyncio.Event, every: float) -> None:
    """Run the scheduler's due-index scan every `every` seconds until `stop`."""
    while not stop.is_set():
        try:
            await p.scheduler.tick()
        except Exception:
            log.exception("scheduler_tick_failed_retrying")
        await _pause(stop, every)


async def run_forever(p: Pipeline, stop: asyncio.Event, tick_seconds: float = 30.0) -> None:
    """Keep every service running until `stop` is set."""
    tasks = [
        asyncio.create_task(keep_ticking(p, stop, tick_seconds)),
        asyncio.create_task(keep_stepping("scheduler", p.scheduler.step, stop)),
        asyncio.create_task(keep_stepping("aggregator", p.aggregator.step, stop)),
    ]
    tasks += [
        asyncio.create_task(keep_stepping(f"fetcher-{f.source.name}", f.step, stop))
        for f in p.fetchers
    ]
    await stop.wait()
    # Each loop sees `stop` and lets its step finish within DRAIN_SECONDS; then they end.
    await asyncio.wait(tasks, timeout=DRAIN_SECONDS + 5)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
