"""Where a long-running service's memory goes: with ALM_TRACE_MEMORY=<seconds> set, the
service traces its allocations (tracemalloc, which slows it and costs memory of its own: a
diagnosis, not a default) and logs, every <seconds>, the source lines whose allocations grew
most since the first snapshot taken after a warm-up. What keeps growing there is a leak; what
grows and stops is a cache or the allocator settling."""

from __future__ import annotations

import asyncio
import os
import tracemalloc

import structlog

log = structlog.get_logger("alm.memory")

FRAMES = 8  # frames kept per allocation: enough to see which caller of a library grows
TOP = 12  # lines logged per report


def interval() -> float | None:
    """The reporting interval ALM_TRACE_MEMORY asks for, or None (tracing off)."""
    raw = os.environ.get("ALM_TRACE_MEMORY", "").strip()
    if not raw:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        log.error("trace_memory_ignored", value=raw, reason="not a number of seconds")
        return None
    return seconds if seconds > 0 else None


def growth(baseline: tracemalloc.Snapshot, now: tracemalloc.Snapshot, top: int) -> list[str]:
    """The `top` lines whose allocations grew most from `baseline` to `now`, as text."""
    ignore = [tracemalloc.Filter(False, tracemalloc.__file__)]
    stats = now.filter_traces(ignore).compare_to(baseline.filter_traces(ignore), "lineno")
    grown = sorted((s for s in stats if s.size_diff > 0), key=lambda s: -s.size_diff)[:top]
    return [
        f"{s.traceback[0].filename}:{s.traceback[0].lineno} +{s.size_diff / 1024:.0f} KiB "
        f"({s.count_diff:+d} blocks, {s.size / 1024:.0f} KiB now)"
        for s in grown
    ]


async def trace(service: str, every: float, warm_up: float | None = None) -> None:
    """Trace allocations and log their growth every `every` seconds until cancelled."""
    tracemalloc.start(FRAMES)
    try:
        await asyncio.sleep(every if warm_up is None else warm_up)
        baseline = tracemalloc.take_snapshot()
        while True:
            await asyncio.sleep(every)
            traced, peak = tracemalloc.get_traced_memory()
            log.warning(
                "memory_growth",
                service=service,
                traced_mb=round(traced / 2**20, 1),
                peak_mb=round(peak / 2**20, 1),
                top=growth(baseline, tracemalloc.take_snapshot(), TOP),
            )
    finally:
        tracemalloc.stop()


def start(service: str) -> asyncio.Task[None] | None:
    """Start tracing if ALM_TRACE_MEMORY asks for it (the caller cancels the task)."""
    every = interval()
    if every is None:
        return None
    log.warning("trace_memory_on", service=service, every=every)
    return asyncio.ensure_future(trace(service, every))
