"""ChunkScheduler and Retry on their own: chunks of `size`, at most `max_in_flight` at once,
never two on one key, backpressure on `start`; retries with doubling pauses."""

from __future__ import annotations

import asyncio

import pytest

from services.aggregator.chunking import ChunkScheduler, Retry


class Gated:
    """A fold that records the chunks it starts and finishes each when its gate is opened."""

    def __init__(self) -> None:
        self.started: list[list[str]] = []
        self.finished: list[list[str]] = []
        self.gates: list[asyncio.Event] = []

    async def __call__(self, chunk: list[str]) -> None:
        gate = asyncio.Event()
        self.started.append(chunk)
        self.gates.append(gate)
        await gate.wait()
        self.finished.append(chunk)

    def open(self, n: int) -> None:
        self.gates[n].set()


def key(item: str) -> str:
    return item.split(":")[0]  # "work:n": the work is the key


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_items_are_cut_into_chunks_of_size_and_start_holds_back_at_the_limit() -> None:
    fold = Gated()
    chunks = ChunkScheduler(fold, key, size=2, max_in_flight=2)
    starting = asyncio.ensure_future(chunks.start([f"w{i}:0" for i in range(7)]))
    await settle()
    assert fold.started == [["w0:0", "w1:0"], ["w2:0", "w3:0"]]
    assert not starting.done() and len(chunks.running) == 2  # backpressure: the third waits
    fold.open(1)
    await settle()
    assert fold.started[2] == ["w4:0", "w5:0"] and not starting.done()
    fold.open(0)
    tasks = await asyncio.wait_for(starting, 1)
    assert fold.started[3] == ["w6:0"] and len(tasks) == 4
    fold.open(2)
    fold.open(3)
    await asyncio.gather(*tasks)
    assert not chunks.running and len(fold.finished) == 4


async def test_a_chunk_sharing_a_key_waits_for_the_earlier_one_though_there_is_room() -> None:
    fold = Gated()
    chunks = ChunkScheduler(fold, key, size=2, max_in_flight=5)
    first = await chunks.start(["a:1", "b:1"])
    later = asyncio.ensure_future(chunks.start(["c:1", "a:2"]))
    await settle()
    assert fold.started == [["a:1", "b:1"]] and not later.done()
    fold.open(0)
    second = await asyncio.wait_for(later, 1)
    assert fold.started == [["a:1", "b:1"], ["c:1", "a:2"]]
    fold.open(1)
    await asyncio.gather(*first, *second)
    assert fold.finished == [["a:1", "b:1"], ["c:1", "a:2"]]  # a's in the order given


async def test_chunks_on_other_keys_run_beside_each_other() -> None:
    fold = Gated()
    chunks = ChunkScheduler(fold, key, size=1, max_in_flight=3)
    tasks = await chunks.start(["a:1", "b:1", "c:1"])
    await settle()
    assert len(fold.started) == 3 and len(chunks.running) == 3
    chunks.cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(r, asyncio.CancelledError) for r in results)
    assert not chunks.running and fold.finished == []


@pytest.mark.parametrize(("size", "at_once"), [(0, 1), (1, 0)])
def test_a_chunk_size_or_limit_below_one_is_refused(size: int, at_once: int) -> None:
    with pytest.raises(ValueError, match="must be >= 1"):
        ChunkScheduler(Gated(), key, size=size, max_in_flight=at_once)


async def test_retry_pauses_doubling_up_to_its_most_until_the_step_succeeds() -> None:
    pauses: list[float] = []

    async def pause(seconds: float) -> None:
        pauses.append(seconds)

    failures = iter([ConnectionError("down")] * 4)

    async def step() -> str:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        return "done"

    assert await Retry(first=0.5, most=1.5, sleep=pause)(step, 3) == "done"
    assert pauses == [0.5, 1.0, 1.5, 1.5]


async def test_retry_does_not_swallow_a_cancellation() -> None:
    async def pause(seconds: float) -> None:
        raise AssertionError("a cancellation is not retried")

    async def step() -> None:
        raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await Retry(sleep=pause)(step, 1)
