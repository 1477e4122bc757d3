"""The long-running scheduler takes the intake in beside its ticks (services/embedded.py's
keep_taking_in): share after share while there is any, then every `every` seconds; a failed
take is retried, and the ticks it runs beside take none themselves."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from services.embedded import keep_taking_in, keep_ticking


class Scheduler:
    """What the loops call: `intake` answers from `shares` (an exception is raised), then 0."""

    def __init__(self, shares: list[int | Exception], stop: asyncio.Event) -> None:
        self.shares, self.stop = shares, stop
        self.takes: list[float] = []
        self.ticks: list[bool] = []

    async def intake(self) -> int:
        self.takes.append(time.monotonic())
        share = self.shares.pop(0) if self.shares else 0
        if isinstance(share, Exception):
            raise share
        return share

    async def tick(self, intake: bool = True) -> int:
        self.ticks.append(intake)
        self.stop.set()
        return 0


async def _until(done: Callable[[], bool]) -> None:
    for _ in range(500):
        if done():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not reached in 5 s")


async def test_shares_are_taken_back_to_back_then_looked_for_every_few_seconds() -> None:
    stop = asyncio.Event()
    scheduler = Scheduler([5000, 5000, 1200], stop)
    loop = asyncio.create_task(keep_taking_in(scheduler, stop, every=1.0))  # type: ignore[arg-type]
    await _until(lambda: len(scheduler.takes) == 5)  # three shares, an empty look, one more
    stop.set()
    await asyncio.wait_for(loop, 5)
    gaps = [b - a for a, b in zip(scheduler.takes, scheduler.takes[1:], strict=False)]
    assert all(g < 0.5 for g in gaps[:3]) and gaps[3] >= 0.99


async def test_a_failed_take_is_tried_again_and_the_loop_goes_on() -> None:
    stop = asyncio.Event()
    scheduler = Scheduler([ConnectionError("store away"), 700], stop)
    loop = asyncio.create_task(keep_taking_in(scheduler, stop, every=0.1))  # type: ignore[arg-type]
    await _until(lambda: len(scheduler.takes) >= 3)  # the failure, the 700, an empty look
    stop.set()
    await asyncio.wait_for(loop, 5)
    assert scheduler.shares == [] and not loop.exception()


async def test_ticks_beside_the_loop_take_nothing_in() -> None:
    stop = asyncio.Event()
    scheduler = Scheduler([], stop)
    await keep_ticking(scheduler, stop, 0.01)  # type: ignore[arg-type]
    assert scheduler.ticks == [False]
