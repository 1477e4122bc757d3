"""Upstream faults between the fetchers and the (synthetic) stub upstream, one after the other:
through toxiproxy 5 s of latency, connections that stall then close, connections reset,
responses cut after a few bytes; from the stub 429 storms with and without Retry-After and
bodies cut in half. Failed fetches are recorded and retried with backoff; once the upstream
behaves, every work is refreshed with the right totals and nothing is lost or counted twice.
A refresh that still fails after its last attempt is dead-lettered and done again at its next
due time: reported, not a failure."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import pytest

from services.core.events import TOPIC_RETRY
from tests.faults.scenario import (
    UPSTREAM_PROXY,
    UPSTREAM_PROXY_PORT,
    Scenario,
    now,
    stub_fault,
)
from tests.faults.test_distributed_services import mid_stream, recovered

pytestmark = pytest.mark.timeout(900)

PHASE = 15.0  # seconds each fault lasts (longer than a call's own retries take)
# a stalled connection's fault lasts longer: a fetcher's batch of such calls takes ~20 s (three
# attempts of 3 s each, the backoffs, the source's concurrency), and a call whose last attempt
# comes after the fault ends succeeds: with 15 s, whether any fetch failed was a race
STALLED_PHASE = 40.0
GAP = 5.0  # seconds of normal service between two faults
SLOW_GAP = 30.0  # at most this much longer for a fault's failures to reach the retry topic

Switch = Callable[[Scenario], Awaitable[None]]


@dataclass(frozen=True)
class Fault:
    """A fault: how to switch it on and off, and whether fetches fail under it (a slow
    upstream only slows them)."""

    name: str
    on: Switch
    off: Switch
    fails: bool = True
    seconds: float = PHASE


def toxic(kind: str, fails: bool = True, seconds: float = PHASE, **attributes: int) -> Fault:
    """A toxiproxy toxic on the responses (downstream) of the upstream proxy, for `seconds`."""

    async def on(s: Scenario) -> None:
        await s.toxiproxy.add(UPSTREAM_PROXY, kind, kind, "downstream", **attributes)

    async def off(s: Scenario) -> None:
        await s.toxiproxy.remove(UPSTREAM_PROXY, kind)

    return Fault(f"{kind} {attributes}", on, off, fails, seconds)


def stub(**spec: object) -> Fault:
    """The stub upstream's own fault mode (HTTP-level faults toxiproxy cannot make)."""

    async def on(s: Scenario) -> None:
        await stub_fault({**spec, "seconds": 600})

    async def off(s: Scenario) -> None:
        await stub_fault(None)

    return Fault(f"stub {spec}", on, off)


FAULTS = [
    toxic("latency", fails=False, latency=5000),
    toxic("timeout", seconds=STALLED_PHASE, timeout=3000),  # data stops, closed after 3 s
    toxic("reset_peer", timeout=0),  # connections reset (TCP RST)
    toxic("limit_data", bytes=300),  # responses cut off after 300 bytes
    stub(status=429, retry_after="2"),
    stub(status=429),
    stub(truncate=True),  # 200 with half a body
]


async def retried(s: Scenario) -> int:
    """Failed fetches routed to alm.refresh.retry so far (events: packed records unpacked)."""
    assert s.bus is not None
    parts = list(range(await s.bus.partitions(TOPIC_RETRY)))
    ends = await s.bus.end_offsets(TOPIC_RETRY, parts)
    return sum((await s.bus.count(TOPIC_RETRY, {p: (0, e) for p, e in ends.items()})).values())


async def test_upstream_faults(stack: Scenario) -> None:
    """Seven upstream faults in a row mid-stream, then recovery by the retries alone. Each
    fault must make fetches fail (else it did not reach the fetchers and proves nothing)."""
    await mid_stream(stack)
    fault_time = now()
    before = await retried(stack)
    for fault in FAULTS:
        await fault.on(stack)
        try:
            seen = await probe()  # a call through the proxy, as a fetcher makes it
            await asyncio.sleep(fault.seconds)
        finally:
            await fault.off(stack)
        ended = time.monotonic()
        await asyncio.sleep(GAP)  # the calls the fault held finish failing
        failed = await retried(stack)
        waited = 0.0
        while fault.fails and failed == before and waited < SLOW_GAP:
            await asyncio.sleep(1.0)  # a loaded machine: the failures may be published late
            waited += 1.0
            failed = await retried(stack)
        print(
            f"[upstream_faults] {fault.name} for {fault.seconds:.0f} s: a call got {seen}; "
            f"{failed - before} fetches failed and were retried"
        )
        assert seen != NORMAL, f"{fault.name} did not reach the fetchers' path"
        assert (failed > before) is fault.fails, fault.name
        before = failed
    await recovered(stack, fault_time, ended)


NORMAL = "200 quickly"


async def probe() -> str:
    """What a call through the proxy to the stub gets: NORMAL, or what went wrong."""
    url = f"http://127.0.0.1:{UPSTREAM_PROXY_PORT}/crossref/works/10.5555/fault.00001"
    started = time.monotonic()
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http,
            http.get(url) as resp,
        ):
            body = await resp.read()
            took = time.monotonic() - started
            json.loads(body)
            if resp.status == 200 and took < 2:
                return NORMAL
            return f"{resp.status} after {took:.1f} s"
    except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
        return f"{type(exc).__name__} after {time.monotonic() - started:.1f} s"
