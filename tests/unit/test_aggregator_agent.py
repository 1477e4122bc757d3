"""The faust agent's scheduling of chunks: up to `max_in_flight` at once, never two sharing a
work, each work's observations folded in the order they came."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from services.aggregator.agents import Runtime
from services.aggregator.chunking import Retry
from services.core.events import Observation, Status

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def obs(work: str, n: int = 0) -> Observation:
    return Observation(work, "crossref", T0, Status.OK, {"citations": n})


class SlowAggregator:
    """Records when each chunk starts and ends; a chunk takes `delay` seconds."""

    def __init__(self, delay: float = 0.02, fail_first: int = 0) -> None:
        self.delay = delay
        self.running: list[list[Observation]] = []
        self.most_at_once = 0
        self.log: list[tuple[str, tuple[str, ...]]] = []
        self.folded: list[Observation] = []
        self.fail_first = fail_first
        self.overlaps: list[str] = []  # works of a chunk that started while another had them

    async def process(self, chunk: list[Observation]) -> None:
        works = tuple(sorted({o.work_id for o in chunk}))
        for other in self.running:  # what the agent promises: no two chunks share a work
            self.overlaps.extend({o.work_id for o in other} & set(works))
        self.running.append(chunk)
        self.most_at_once = max(self.most_at_once, len(self.running))
        self.log.append(("start", works))
        try:
            await asyncio.sleep(self.delay)
            if self.fail_first:
                self.fail_first -= 1
                raise RuntimeError("store down")
            self.folded.extend(chunk)
        finally:
            self.running.remove(chunk)
            self.log.append(("end", works))

    settle = process  # the agent calls settle, which dead-letters what fails for good

    def decode(self, pairs: Any) -> tuple[list[Observation], list[Any]]:
        return [Observation.from_dict(value) for _key, value in pairs], []

    async def dead_letter(self, letters: list[Any]) -> None:
        assert letters == []


class NoRecovery:
    def unknown(self, partitions: Any) -> list[int]:
        return []


class Event:
    """What the agent reads of a faust event: key, value, partition and offset."""

    def __init__(self, work: str, offset: int) -> None:
        self.key = work.encode()
        self.value = obs(work).to_dict()
        tp = type("TP", (), {"partition": 0})()
        self.message = type("M", (), {"tp": tp, "offset": offset})()


def event(work: str, offset: int) -> Event:
    return Event(work, offset)


def runtime(
    aggregator: SlowAggregator, recovery: Any = None, retry: Retry | None = None
) -> Runtime:
    """A runtime folding chunks of 2 observations, 3 at once."""
    return Runtime(
        aggregator,  # type: ignore[arg-type]
        recovery or NoRecovery(),
        chunk_size=2,
        max_in_flight=3,
        retry=retry or Retry(),
    )


async def test_chunks_on_different_works_overlap_up_to_the_limit() -> None:
    agg = SlowAggregator()
    rt = runtime(agg)
    tasks = await rt.chunks.start([obs(f"10.5555/w.{i}") for i in range(12)])  # 6 chunks
    await asyncio.gather(*tasks)
    assert len(tasks) == 6 and agg.most_at_once == 3 and not agg.overlaps
    assert sorted(o.work_id for o in agg.folded) == sorted(f"10.5555/w.{i}" for i in range(12))
    assert not rt.chunks.running


async def test_a_chunk_sharing_a_work_waits_and_order_per_work_is_kept() -> None:
    agg = SlowAggregator()
    rt = runtime(agg)
    seq = [obs("10.5555/a", 1), obs("10.5555/b"), obs("10.5555/a", 2), obs("10.5555/c")]
    seq += [obs("10.5555/d"), obs("10.5555/a", 3)]
    await asyncio.gather(*await rt.chunks.start(seq))
    assert [o.metrics["citations"] for o in agg.folded if o.work_id == "10.5555/a"] == [1, 2, 3]
    first_end = agg.log.index(("end", ("10.5555/a", "10.5555/b")))
    assert agg.log.index(("start", ("10.5555/a", "10.5555/c"))) > first_end
    assert agg.most_at_once == 1 and not agg.overlaps  # every chunk here holds work a


async def test_a_later_batch_waits_for_the_chunk_of_an_earlier_one_on_the_same_work() -> None:
    agg = SlowAggregator(delay=0.05)
    rt = runtime(agg)
    first = await rt.chunks.start([obs("10.5555/a", 1), obs("10.5555/b")])
    second = await rt.chunks.start([obs("10.5555/c"), obs("10.5555/a", 2)])
    await asyncio.gather(*first, *second)
    assert agg.log.index(("end", ("10.5555/a", "10.5555/b"))) < agg.log.index(
        ("start", ("10.5555/a", "10.5555/c"))
    )
    assert [o.metrics["citations"] for o in agg.folded if o.work_id == "10.5555/a"] == [1, 2]
    assert not agg.overlaps


async def test_handle_retries_a_failed_chunk_and_returns_when_all_are_done() -> None:
    agg = SlowAggregator(delay=0.0, fail_first=2)
    sleeps: list[float] = []

    async def quick(delay: float) -> None:
        sleeps.append(delay)  # the agent's back-off, not waited for

    rt = runtime(agg, retry=Retry(most=0.01, sleep=quick))
    await rt.handle([event(f"10.5555/w.{i}", i) for i in range(5)])
    assert sorted(o.work_id for o in agg.folded) == sorted(f"10.5555/w.{i}" for i in range(5))
    assert len(sleeps) == 2 and rt.batches == 1 and rt.observations == 5
    assert not rt.chunks.running


async def test_a_failed_recovery_is_retried_before_the_batch_is_folded() -> None:
    class FlakyRecovery:
        def __init__(self) -> None:
            self.known: set[int] = set()
            self.attempts = 0

        def unknown(self, partitions: Any) -> list[int]:
            return sorted(set(partitions) - self.known)

        async def recover(self, first: dict[int, int]) -> None:
            self.attempts += 1
            if self.attempts == 1:
                raise ConnectionError("broker unreachable")
            self.known.update(first)

    async def quick(delay: float) -> None:
        await asyncio.sleep(0)

    agg = SlowAggregator(delay=0.0)
    recovery = FlakyRecovery()
    rt = runtime(agg, recovery, Retry(sleep=quick))
    await rt.handle([event(f"10.5555/w.{i}", i) for i in range(3)])
    assert recovery.attempts == 2 and recovery.known == {0}
    assert sorted(o.work_id for o in agg.folded) == [f"10.5555/w.{i}" for i in range(3)]


async def test_draining_finishes_the_chunks_in_flight_and_starts_no_new_batch() -> None:
    """SIGTERM: the chunks in flight are folded (then acknowledged and committed by faust); a
    batch arriving after that is not started, so it is never acknowledged and is redone."""
    agg = SlowAggregator(delay=0.05)
    rt = runtime(agg)
    tasks = await rt.chunks.start([obs(f"10.5555/d.{i}") for i in range(4)])
    assert await rt.drain(2.0) is True
    assert all(t.done() for t in tasks) and len(agg.folded) == 4
    later = asyncio.ensure_future(rt.begin([event("10.5555/late", 9)]))
    await asyncio.sleep(0.1)
    assert not later.done() and len(agg.folded) == 4
    later.cancel()


async def test_draining_gives_up_after_its_bound() -> None:
    """A chunk that outlasts the drain (Cassandra down, retried) does not hold the shutdown."""
    agg = SlowAggregator(delay=5.0)
    rt = runtime(agg)
    tasks = await rt.chunks.start([obs("10.5555/slow")])
    started = asyncio.get_running_loop().time()
    assert await rt.drain(0.2) is False
    assert asyncio.get_running_loop().time() - started < 1.0
    for task in tasks:
        task.cancel()
