"""Where a long-running service's memory goes: with ALM_TRACE_MEMORY=<seconds> set, the
service traces its allocations (tracemalloc, which slows it and costs memory of its own: a
diagnosis, not a default) and logs, every <seconds>, the source lines whose allocations grew
most since the first snapshot taken after a warm-up. What keeps growing there is a leak; what
grows and stops is a cache or the allocator settling."""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import os
import threading
import tracemalloc

import structlog

log = structlog.get_logger("alm.memory")

FRAMES = 8  # frames kept per allocation: enough to see which caller of a library grows
TOP = 12  # lines logged per report


def _seconds(name: str, ignored: str) -> float | None:
    """The number of seconds the environment variable `name` says; None if unset or not a
    number (logged as `ignored`)."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        log.error(ignored, value=raw, reason="not a number of seconds")
        return None


def interval() -> float | None:
    """The reporting interval ALM_TRACE_MEMORY asks for, or None (tracing off)."""
    seconds = _seconds("ALM_TRACE_MEMORY", "trace_memory_ignored")
    return seconds if seconds is not None and seconds > 0 else None


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


# -- giving freed memory back ----------------------------------------------------------------
#
# A long-running service's RSS is not what it holds but what glibc's malloc has not returned:
# a tick's buffers (a 5,000-request take, a Kafka fetch, a Cassandra page) are freed, but the
# pages they used stay with the process when other allocations sit above them, and every
# thread (the Cassandra driver's event loop, Kafka's, asyncio's executor) gets malloc arenas
# of its own (8 a core by default) that keep their freed pages too. So RSS rises to the
# high-water mark of the busiest moment and, with the number of works, drifts up. Two
# glibc controls bound that: fewer arenas (M_ARENA_MAX, as MALLOC_ARENA_MAX=2 does, set before
# the service starts its threads) and `malloc_trim(0)` every ALM_MALLOC_TRIM_SECONDS (default
# 30; 0: never), which hands every arena's free pages back to the kernel (madvise). Neither
# changes what Python holds; elsewhere than glibc (musl, macOS) this does nothing.

M_ARENA_MAX = -8  # glibc's mallopt parameter
ARENAS = 2
TRIM_SECONDS = 30.0


def _glibc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim.argtypes = [ctypes.c_size_t]
        libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    except (OSError, AttributeError):
        return None
    return libc


def trim_seconds() -> float:
    """How often freed memory is handed back: ALM_MALLOC_TRIM_SECONDS, or TRIM_SECONDS."""
    seconds = _seconds("ALM_MALLOC_TRIM_SECONDS", "malloc_trim_ignored")
    return TRIM_SECONDS if seconds is None else max(0.0, seconds)


def give_back(service: str) -> threading.Event | None:
    """Bound the allocator's arenas and trim them every `trim_seconds()` from a daemon thread
    (ctypes drops the GIL for the call), until the returned event is set; None where there is
    no glibc or trimming is off."""
    every = trim_seconds()
    libc = _glibc()
    if libc is None or every <= 0:
        return None
    libc.mallopt(M_ARENA_MAX, ARENAS)
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(every):
            libc.malloc_trim(0)

    threading.Thread(target=run, name=f"alm-malloc-trim-{service}", daemon=True).start()
    return stop
