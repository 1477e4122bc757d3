"""kill -9 of each kind of service mid-stream, in the distributed mode; the supervisor restarts
it (as Kubernetes would). Nothing registered may be lost, counted twice or left stale."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

import pytest

from services.core.events import refresh_topic
from tests.faults.scenario import SOURCES_RUN, Scenario, now

pytestmark = pytest.mark.timeout(900)


async def mid_stream(s: Scenario) -> None:
    """Wait until refreshes are flowing (the next round after the baseline has begun)."""
    await s.wait_progress(now(), 120)


async def recovered(
    s: Scenario, fault_time: datetime, ended: float, source: str | None = None
) -> None:
    """Measure the recovery from a fault that began at `fault_time` and ended at `ended`
    (monotonic): seconds from its end until refreshes (of `source`, if given) are stored
    again, and until every work has been refreshed since it began. Then reconcile."""
    try:
        await s.wait_progress(fault_time, 180, source)
        s.timings["refreshes stored again after"] = time.monotonic() - ended
        await s.wait_refreshed(fault_time, 240)
        s.timings["recovered (every work refreshed) after"] = time.monotonic() - ended
    except AssertionError as exc:  # not recovered: the logs, then what is missing
        report = await s.report(fault_time)
        s.print_summary(report)
        raise AssertionError(f"{exc}\n{report.summary()}") from None
    report = await s.report(fault_time)
    s.print_summary(report)
    assert report.problems() == {}, report.summary()


async def test_aggregator_killed_mid_stream(stack: Scenario) -> None:
    """kill -9 of the faust aggregator while observations stream in, then restart: its
    uncommitted batches are redone by the restarted worker (after the dead member's session
    times out), and no change published before the kill is published again."""
    assert stack.supervisor is not None
    await mid_stream(stack)
    fault_time = now()
    killed = stack.supervisor.kill("aggregator")
    await recovered(stack, fault_time, killed)
    assert stack.supervisor.restarts("aggregator") == 1


@pytest.mark.parametrize("source", ["datacite", "crossref"])
async def test_fetcher_killed_mid_batch(stack: Scenario, source: str) -> None:
    """kill -9 of a fetcher while it works through a batch (datacite: one call per work, a
    step takes dozens of calls; crossref: 50 works a call), then restart: the batch is polled
    again from the committed offset and every work refreshed."""
    assert stack.supervisor is not None
    await mid_stream(stack)
    fault_time = now()
    killed = stack.supervisor.kill(f"fetcher-{source}")
    await recovered(stack, fault_time, killed, source)
    assert stack.supervisor.restarts(f"fetcher-{source}") == 1


async def test_scheduler_killed_while_leasing(stack: Scenario) -> None:
    """kill -9 of the scheduler the moment its tick starts publishing refresh requests (before
    it has leased them all), then restart: every due work is emitted again by the restarted
    scheduler; none is left without a due entry."""
    assert stack.supervisor is not None and stack.bus is not None
    bus = stack.bus
    topics = [refresh_topic(s) for s in SOURCES_RUN]

    async def emitted() -> int:
        ends = [await bus.end_offsets(t, range(6)) for t in topics]
        return sum(sum(e.values()) for e in ends)

    before = await emitted()
    fault_time = now()
    for _ in range(1200):  # the next tick (every 5 s) moves the refresh topics' ends
        if await emitted() > before:
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("the scheduler emitted nothing for 30 s")
    killed = stack.supervisor.kill("scheduler")
    await recovered(stack, fault_time, killed)
    assert stack.supervisor.restarts("scheduler") == 1


async def test_scheduler_killed_while_taking_in(half_registered: Scenario) -> None:
    """Half the works refreshed, the other half imported (`alm works import`: each stored in an
    intake chunk, no due entry), then kill -9 of the scheduler the moment its intake loop has
    given some of them due entries: with this test's 150 works, one chunk, whose entries are
    written and whose row may not be dropped yet (what a take does: the entries, then the
    row). Then restart: the restarted scheduler takes in what the intake still holds, and
    every work is refreshed; none is left without a due entry."""
    stack = half_registered
    assert stack.supervisor is not None
    rest = list(stack._rest)
    sample = rest[:: max(1, len(rest) // 20)]
    await mid_stream(stack)
    fault_time = now()
    importing = asyncio.create_task(stack.register_rest())

    async def taken() -> bool:
        for work in sample:
            if await stack.due_of(work, SOURCES_RUN[0]) != "no due entry":
                return True
        return False

    try:
        for _ in range(3000):  # the intake loop takes in every tick (5 s)
            if await taken():
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError("no imported work was taken in within 60 s")
        killed = stack.supervisor.kill("scheduler")
    finally:
        await importing
    held = [await stack.due_of(work, SOURCES_RUN[0]) for work in rest]
    taken_in = sum(h != "no due entry" for h in held)
    print(f"[{stack.name}] taken in just after the kill: {taken_in} of {len(rest)}")
    await recovered(stack, fault_time, killed)
    assert stack.supervisor.restarts("scheduler") == 1
