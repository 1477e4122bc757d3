"""The embedded default: every service in one process over the in-process bus and SQLite.

`refresh_until_idle` drives the pipeline step by step until nothing is due or in flight (what
`alm run` prints a summary after); `run_forever` then keeps every service looping.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from services.bootstrap import Pipeline
from services.telemetry.pipeline import STEP_FAILURES

log = structlog.get_logger("alm.embedded")


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


async def keep_stepping(
    name: str,
    step: Callable[[float], Awaitable[int]],
    stop: asyncio.Event,
    idle: float = 1.0,
    backoff: float = 2.0,
) -> None:
    """Run a service's `step` until `stop`; a failing step (a Kafka or Cassandra hiccup) is
    logged and retried after `backoff` seconds: its uncommitted batch is redone."""
    while not stop.is_set():
        try:
            moved = await step(idle)
        except Exception:
            STEP_FAILURES.labels(name).inc()
            log.exception("service_step_failed_retrying", service=name)
            await _pause(stop, backoff)
            continue
        if moved == 0:
            await _pause(stop, 0.05)


async def keep_ticking(p: Pipeline, stop: asyncio.Event, every: float) -> None:
    """Run the scheduler's due-index scan every `every` seconds until `stop`."""
    while not stop.is_set():
        try:
            await p.scheduler.tick()
        except Exception:
            STEP_FAILURES.labels("scheduler-tick").inc()
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
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
