"""Bulk registration in chunks, pipelined (`registration._write`): a chunk is checked while the
one before is written and announced while the one after is written, and a chunk's write starts
only once the one before is written; a failed write or a stop request ends the call between
chunks, with results for the chunks written."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from services import registration
from services.adapters.memory.bus import MemoryBus
from services.core.events import TOPIC_WORKS
from services.core.identifiers import Identifier, parse_identifier
from services.core.ports import Registration, Schedule
from services.core.works import Work
from services.registration import register_parsed
from tests.unit.test_registration import NOW, SCHEDULING, FakeWorkStore

CHUNK = 40


class Recording(FakeWorkStore):
    """The fake store, recording each write (its first work id) and failing the `fail`th."""

    bulk_writes = True

    def __init__(self, fail: int | None = None) -> None:
        super().__init__()
        self.writes: list[str] = []
        self.fail = fail
        self.running = 0

    async def register(
        self, works: Sequence[Work], schedule: Schedule | None = None, intake: bool = False
    ) -> list[Registration]:
        assert self.running == 0, "a write started before the one before ended"
        self.running += 1
        try:
            await asyncio.sleep(0)  # let the caller go on meanwhile
            self.writes.append(works[0].work_id)
            if len(self.writes) == self.fail:
                raise OSError("disk")
            return await super().register(works, schedule, intake)
        finally:
            self.running -= 1


def _parsed(n: int) -> list[tuple[str, Identifier | None, str | None]]:
    return [(f"10.5555/pipe.{i}", parse_identifier(f"10.5555/pipe.{i}"), None) for i in range(n)]


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registration, "BULK_CHUNK", CHUNK)


async def test_every_chunk_is_written_in_order_and_announced_once() -> None:
    store, bus, told = Recording(), MemoryBus(window=0), list[int]()
    consumer = bus.consumer([TOPIC_WORKS], "subscriber")
    parsed = _parsed(CHUNK * 3 + 7)

    results = await register_parsed(
        parsed,
        store,
        bus,
        NOW,
        SCHEDULING,
        True,
        told.append,
    )

    assert [r.work_id for r in results] == [raw for raw, _, _ in parsed]
    assert all(r.created for r in results)
    assert store.writes == [f"10.5555/pipe.{i}" for i in range(0, len(parsed), CHUNK)]
    assert store.intake == [raw for raw, _, _ in parsed]
    assert told == [CHUNK, CHUNK, CHUNK, 7]
    assert len(await consumer.poll(len(parsed) * 2, timeout=0)) == len(parsed)


async def test_a_failed_write_stops_the_call_before_the_next_chunk() -> None:
    store, bus = Recording(fail=2), MemoryBus(window=0)
    consumer = bus.consumer([TOPIC_WORKS], "subscriber")

    with pytest.raises(OSError, match="disk"):
        await register_parsed(_parsed(CHUNK * 4), store, bus, NOW, SCHEDULING, True)

    assert len(store.writes) == 2  # the third chunk is never written
    assert len(store.works) == CHUNK and len(store.intake) == CHUNK
    assert len(await consumer.poll(CHUNK * 4, timeout=0)) == CHUNK  # the first announced


async def test_a_stop_ends_the_call_between_chunks_with_the_results_written() -> None:
    store, bus, stop = Recording(), MemoryBus(window=0), asyncio.Event()

    results = await register_parsed(
        _parsed(CHUNK * 5),
        store,
        bus,
        NOW,
        SCHEDULING,
        True,
        lambda n: stop.set(),  # told the first chunk is done: the second is being written
        stop,
    )

    assert len(results) == CHUNK * 2 == len(store.works) == len(store.intake)
    assert all(r.created for r in results)
