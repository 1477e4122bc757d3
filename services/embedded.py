"""The embedded default: every service in one process over the in-process bus and SQLite.

`run_services` keeps every service looping on its own (the API serves meanwhile), reports when
the work there was is done, and on `stop` shuts down within a bound: fetches under way finish
and are published, what is on the bus is aggregated and recorded, the rest stays leased in the
store. `release_dead_leases` frees, at start-up, the leases a previous process held: its
in-process bus, and the refresh requests in it, died with it. `refresh_until_idle` drives the
pipeline in rounds (tests and benchmarks, with a clock they move by hand).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import structlog

from services.adapters.memory.bus import MemoryBus
from services.bootstrap import Pipeline
from services.core.failures import describe, unavailable
from services.shutdown import DRAIN_SECONDS
from services.telemetry.pipeline import STEP_FAILURES

if TYPE_CHECKING:
    from services.checks.service import Checker
    from services.notifier.service import Notifier
    from services.scheduler.service import Scheduler

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


@dataclass(frozen=True, slots=True)
class Pacing:
    """How often the scheduler looks for due works and reconciles, and how long a shutdown may
    take (`grace`, seconds): half of it for fetches under way, the rest to drain the bus."""

    tick_seconds: float = 0.5
    reconcile_seconds: float = 6 * 3600.0
    grace: float = 20.0
    checks_seconds: float = 3600.0


def _counters(p: Pipeline) -> tuple[int, int, int, int, int]:
    return (
        p.scheduler.emitted,
        sum(f.refreshed for f in p.fetchers),
        sum(f.errors for f in p.fetchers),
        p.aggregator.changes,
        sum(f.calls for f in p.fetchers),
    )


def _since(p: Pipeline, before: tuple[int, int, int, int, int]) -> RunSummary:
    return RunSummary(*(a - b for a, b in zip(_counters(p), before, strict=True)))


async def refresh_until_idle(
    p: Pipeline, max_rounds: int = 100_000, stop: asyncio.Event | None = None
) -> RunSummary:
    """Run scheduler, fetchers and aggregator in rounds until no service has work left (or
    `stop` is set between rounds)."""
    before = _counters(p)
    for _ in range(max_rounds):
        if stop is not None and stop.is_set():
            break
        moved = await p.scheduler.step(0)
        moved += await p.scheduler.tick()
        results = await asyncio.gather(*(f.step(0) for f in p.fetchers))
        moved += sum(results)
        while (n := await p.aggregator.step(0)) > 0:
            moved += n
        if moved == 0:
            break
    return _since(p, before)


async def release_dead_leases(scheduler: Scheduler) -> int:
    """Make due now the works a previous scheduler had handed out. Embedded: the requests were
    in its in-process bus, which died with it. Distributed: the scheduler leases before it
    publishes, so one killed in between leaves leases whose requests were never sent. Either
    way leases would keep those works from being refreshed until they run out; the requests
    still in flight are emitted once more (every write downstream is idempotent)."""
    released = await scheduler.store.release_leases(scheduler.clock(), scheduler.settings.lease)
    if released:
        log.warning("leases_of_a_previous_run_released", works=released)
    return released


async def release_leases_at_start(
    scheduler: Scheduler, stop: asyncio.Event, every: float = 5.0
) -> None:
    """`release_dead_leases`, again every `every` seconds until it succeeds (the store may
    still be starting) or `stop`."""
    while not stop.is_set():
        try:
            await release_dead_leases(scheduler)
            return
        except Exception:
            STEP_FAILURES.labels("scheduler-release").inc()
            log.exception("lease_release_failed_retrying")
        await _pause(stop, every)


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)


async def _finish_step(task: asyncio.Future[int], stop: asyncio.Event, drain: float) -> int:
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
    until_empty: bool = False,
) -> None:
    """Run a service's `step` until `stop`. A failing step (Kafka or Cassandra down) is logged
    and retried after a pause that doubles up to STEP_RETRY_MAX and resets on success: its
    uncommitted batch is redone (the step rewinds its consumer). Stopping lets the step in
    progress finish within `drain` seconds. With `until_empty`, once `stop` is set it goes on
    until a step finds nothing left (the embedded runner empties its in-process bus so)."""
    delay = backoff
    while not stop.is_set():
        try:
            moved = await _finish_step(asyncio.ensure_future(step(idle)), stop, drain)
        except Exception as exc:
            STEP_FAILURES.labels(name).inc()
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
    while until_empty:
        try:
            until_empty = await step(0) > 0
        except Exception:
            log.exception("service_drain_failed", service=name)
            return


async def keep_ticking(scheduler: Scheduler, stop: asyncio.Event, every: float) -> None:
    """Run the scheduler's due-index scan every `every` seconds until `stop`. The ticks take
    nothing in from the intake: keep_taking_in runs beside them."""
    while not stop.is_set():
        try:
            await scheduler.tick(intake=False)
        except Exception:
            STEP_FAILURES.labels("scheduler-tick").inc()
            log.exception("scheduler_tick_failed_retrying")
        await _pause(stop, every)


async def keep_taking_in(scheduler: Scheduler, stop: asyncio.Event, every: float) -> None:
    """Take the intake's works in (their entries written) share after share while there are
    any, beside the ticks (a million works imported are scheduled at the store's pace, and
    emission is never held up by them); when the intake is empty, look again every `every`
    seconds. A failed take is retried then: its works stay in the intake."""
    while not stop.is_set():
        taken = 0
        try:
            taken = await scheduler.intake()
        except Exception:
            STEP_FAILURES.labels("scheduler-intake").inc()
            log.exception("scheduler_intake_failed_retrying")
        await _pause(stop, 0 if taken else every)


async def keep_reconciling(
    scheduler: Scheduler,
    stop: asyncio.Event,
    every: float,
    pause: float = 0.02,
    passed: asyncio.Event | None = None,
) -> None:
    """A reconcile pass over every work now, then one every `every` seconds, until `stop`;
    a short `pause` between pages leaves the store to the other services. `passed` is set
    once a whole pass is done."""
    while not stop.is_set():
        wait = every
        try:
            added = works = 0
            while not stop.is_set():
                page = await scheduler.reconcile()
                added, works = added + page.added, works + page.works
                if page.done:
                    log.info("reconcile_pass_done", works=works, added=added)
                    if passed is not None:
                        passed.set()
                    break
                await _pause(stop, pause)
        except Exception:
            log.exception("reconcile_failed_retrying")
            wait = min(every, 60.0)
        await _pause(stop, wait)


async def keep_checking(checker: Checker, stop: asyncio.Event, every: float) -> None:
    """The periodic data-quality checks (services/checks/) now, then every `every` seconds,
    until `stop`; a failed pass is logged and tried again at the next."""
    while not stop.is_set():
        try:
            await checker.run_once()
        except Exception:
            STEP_FAILURES.labels("checks").inc()
            log.exception("checks_failed_retrying")
        await _pause(stop, every)


def _idle(p: Pipeline) -> Callable[[], Awaitable[bool]]:
    """Whether nothing is due and nothing is in flight (every record on the bus committed)."""
    bus = p.bus
    if not isinstance(bus, MemoryBus):
        raise TypeError("the embedded runner needs the in-process bus")

    async def check() -> bool:
        return bus.backlog() == 0 and not await p.scheduler.due_now()

    return check


async def _report_idle(
    p: Pipeline, reconciled: asyncio.Event, on_idle: Callable[[RunSummary], Awaitable[None]]
) -> None:
    """Call `on_idle` with what was done the first time the pipeline is idle, once the first
    reconcile pass is done (the works it found unscheduled are part of the work there was)."""
    before, idle = _counters(p), _idle(p)
    await reconciled.wait()
    while not await idle():  # noqa: ASYNC110 (a store read decides, not an event)
        await asyncio.sleep(0.2)
    await on_idle(_since(p, before))


async def run_services(
    p: Pipeline,
    stop: asyncio.Event,
    pacing: Pacing = Pacing(),
    on_idle: Callable[[RunSummary], Awaitable[None]] | None = None,
    notifier: Notifier | None = None,
) -> RunSummary:
    """Keep every service running until `stop` is set, awaiting `on_idle` once, the first time
    nothing is due or in flight; then shut down within `pacing.grace` seconds. Returns what
    was done from start to shutdown. With `notifier`, webhooks are delivered too (its queues
    drained until `stop`, the changes on the bus until the end)."""
    before = _counters(p)
    drain, reconciled = asyncio.Event(), asyncio.Event()
    producers = [
        asyncio.create_task(keep_ticking(p.scheduler, stop, pacing.tick_seconds)),
        asyncio.create_task(keep_taking_in(p.scheduler, stop, pacing.tick_seconds)),
        asyncio.create_task(
            keep_reconciling(p.scheduler, stop, pacing.reconcile_seconds, passed=reconciled)
        ),
        asyncio.create_task(keep_checking(p.checker, stop, pacing.checks_seconds)),
        *(
            asyncio.create_task(keep_stepping(f"fetcher-{f.source.name}", f.step, stop))
            for f in p.fetchers
        ),
    ]
    consumers = [
        asyncio.create_task(keep_stepping("scheduler", p.scheduler.step, drain, until_empty=True)),
        asyncio.create_task(
            keep_stepping("aggregator", p.aggregator.step, drain, until_empty=True)
        ),
    ]
    if notifier is not None:
        producers.append(asyncio.create_task(notifier.keep_draining(stop)))
        consumers.append(
            asyncio.create_task(keep_stepping("notifier", notifier.step, drain, until_empty=True))
        )
    watcher = asyncio.create_task(_report_idle(p, reconciled, on_idle)) if on_idle else None
    try:
        await stop.wait()
    finally:
        if watcher is not None:
            watcher.cancel()
        await _shut_down(producers, consumers, drain, pacing.grace)
    return _since(p, before)


async def _shut_down(
    producers: Sequence[asyncio.Task[None]],
    consumers: Sequence[asyncio.Task[None]],
    drain: asyncio.Event,
    grace: float,
) -> None:
    """Producers (ticks, reconcile, fetchers) finish the step they are in, or are cancelled at
    half the grace; then the consumers handle what is left on the bus, until the grace ends."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    stopped = await _finish_tasks(producers, grace / 2)
    drain.set()
    drained = await _finish_tasks(consumers, grace - (loop.time() - started))
    log.info("shut_down", seconds=round(loop.time() - started, 3), complete=stopped and drained)


async def _finish_tasks(tasks: Sequence[asyncio.Task[None]], within: float) -> bool:
    """Wait up to `within` seconds for `tasks`, then cancel those still running; whether all
    ended by themselves."""
    pending: set[asyncio.Task[None]] = set()
    if tasks:
        _, pending = await asyncio.wait(tasks, timeout=max(within, 0.01))
    for task in pending:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    if pending:
        log.warning("shut_down_cancelled", tasks=len(pending))
    return not pending
