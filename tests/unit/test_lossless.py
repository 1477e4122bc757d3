"""Nothing lost, nothing counted twice when a step fails: a failed step is redone from the
committed offset, a retried chunk does not publish its changes again, a permanent failure is
dead-lettered instead of retried forever, and the step loops back off and drain."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError
from cassandra import InvalidRequest, OperationTimedOut

from services import embedded
from services.adapters.failures import sqlite_failures
from services.adapters.memory.bus import MemoryBus
from services.adapters.sqlite import SqliteStore
from services.aggregator.agents import Runtime
from services.aggregator.service import Aggregator
from services.core.aggregation import Aggregate
from services.core.events import (
    TOPIC_CHANGED,
    TOPIC_DEADLETTER,
    TOPIC_RAW,
    TOPIC_RETRY,
    FailedRefresh,
    Observation,
    RefreshRequest,
    Status,
    refresh_topic,
)
from services.core.failures import CORE_TYPES, Failures, describe, permanent, unavailable
from services.core.ports import DueEntry, Message
from services.core.schema_check import SchemaViolation
from services.core.staleness import Policy
from services.core.works import Work, WorkRef
from services.embedded import keep_stepping
from services.scheduler.service import Scheduler, SchedulerSettings
from tests.unit.pipeline_kit import pipeline_kit

T0 = datetime(2026, 11, 25, 12, tzinfo=UTC)
SOURCE = "crossref"


class Flaky:
    """A store or bus whose named methods fail on demand (the rest is the real adapter)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.faults: dict[str, tuple[int, Callable[..., BaseException | None]]] = {}
        self.calls: dict[str, int] = {}

    def fail(self, method: str, times: int, error: BaseException) -> None:
        """The next `times` calls of `method` raise `error`."""
        self.faults[method] = (times, lambda *a, **k: error)

    def refuse(self, method: str, when: Callable[..., BaseException | None]) -> None:
        """Every call of `method` for which `when(*args)` gives an error raises it."""
        self.faults[method] = (10**9, when)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if name not in self.faults:
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] = self.calls.get(name, 0) + 1
            times, error_for = self.faults[name]
            error = error_for(*args, **kwargs) if times > 0 else None
            if error is not None:
                self.faults[name] = (times - 1, error_for)
                raise error
            return await attr(*args, **kwargs)

        return call


def observation(n: int, work: str | None = None) -> Observation:
    return Observation(
        work or f"10.5555/lossless.{n}", SOURCE, T0, Status.OK, metrics={"citations": n + 1}
    )


async def store_at(tmp: Path) -> SqliteStore:
    store = SqliteStore(tmp / "alm.sqlite")
    await store.migrate()
    works = [Work(f"10.5555/lossless.{n}", doi=f"10.5555/lossless.{n}") for n in range(20)]
    await store.register([*works, Work("10.5555/bad", doi="10.5555/bad")])
    return store


def aggregator(bus: Any, store: Any) -> Aggregator:
    return Aggregator(bus, store, Policy(), lambda: T0, random.Random(1))


async def until(step: Callable[[], Awaitable[Any]], tries: int = 10) -> int:
    """Run `step` until it stops raising; how many attempts failed."""
    for failed in range(tries):
        try:
            await step()
            return failed
        except Exception as exc:
            if permanent(exc):
                raise
    raise AssertionError(f"still failing after {tries} attempts")


async def test_a_chunk_retried_after_its_write_failed_publishes_each_change_once(
    tmp_path: Path,
) -> None:
    """The faust agent's path: the changes are published, the state write times out twice,
    the chunk is retried until stored. Before, each retry published the chunk's changes again
    (the issue counted 1,470 duplicates)."""
    bus = MemoryBus()
    store = Flaky(await store_at(tmp_path))
    store.fail("write_aggregates", 2, OperationTimedOut("timed out"))
    agg = aggregator(bus, store)
    chunk = [observation(n) for n in range(20)]
    assert await until(partial(agg.settle, chunk)) == 2
    assert bus.published[TOPIC_CHANGED] == 20
    states = await store.inner.states([(o.work_id, SOURCE) for o in chunk])
    assert len(states) == 20 and not agg._unstored
    await store.inner.close()


async def test_a_failed_step_is_redone_from_the_committed_offset_and_publishes_once(
    tmp_path: Path,
) -> None:
    """The embedded runner's path: the step fails after publishing, its batch is polled again
    (the consumer rewinds) and stored; every change is on the topic once and the batch is
    committed. Before, the next step polled past the batch: 20 works never stored."""
    bus = MemoryBus()
    store = Flaky(await store_at(tmp_path))
    store.fail("write_aggregates", 1, TimeoutError("store down"))
    agg = aggregator(bus, store)
    await bus.publish(TOPIC_RAW, [(o.work_id, o.to_dict()) for o in map(observation, range(20))])
    assert await until(partial(agg.step, 0)) == 1
    states = await store.inner.states([(f"10.5555/lossless.{n}", SOURCE) for n in range(20)])
    assert len(states) == 20
    assert bus.published[TOPIC_CHANGED] == 20 and bus.lag(TOPIC_RAW, Aggregator.GROUP) == 0
    await store.inner.close()


def refused_for_bad_work(items: list[Aggregate], *rest: Any) -> BaseException | None:
    """The store's refusal of any write holding work 10.5555/bad (a row too large, say)."""
    if any(i.state.work_id == "10.5555/bad" for i in items):
        return InvalidRequest("Error from server: code=2200 [Invalid query] message=too large")
    return None


async def test_an_observation_the_store_refuses_for_good_is_dead_lettered_not_retried(
    tmp_path: Path,
) -> None:
    """One observation in a chunk of 17 is refused by the store every time: it goes to
    alm.deadletter with the reason, the other 16 are stored, nothing is published twice.
    Before, the agent retried the chunk every 30 s forever (until_done)."""
    bus = MemoryBus()
    store = Flaky(await store_at(tmp_path))
    store.refuse("write_aggregates", refused_for_bad_work)
    agg = aggregator(bus, store)
    chunk = [observation(n) for n in range(8)]
    chunk += [observation(99, "10.5555/bad")] + [observation(n) for n in range(8, 16)]
    runtime = Runtime(agg, None)  # type: ignore[arg-type]
    await asyncio.wait_for(runtime.fold(chunk), 10)
    good = [o for o in chunk if o.work_id != "10.5555/bad"]
    states = await store.inner.states([(o.work_id, SOURCE) for o in chunk])
    assert sorted(states) == sorted((o.work_id, SOURCE) for o in good)
    letters = await drain(bus, TOPIC_DEADLETTER)
    assert [m.key for m in letters] == ["10.5555/bad"]
    assert letters[0].value["bad_event"]["work_id"] == "10.5555/bad"
    assert "InvalidRequest" in letters[0].value["reason"]
    assert bus.published[TOPIC_CHANGED] == 17  # once each (bad's went out before the refusal)
    assert not agg._unstored
    await store.inner.close()


async def drain(bus: MemoryBus, topic: str) -> list[Message]:
    consumer = bus.consumer([topic], f"test-{topic}")
    return await consumer.poll(10_000, 0)


async def test_an_observation_that_breaks_its_schema_is_dead_lettered(tmp_path: Path) -> None:
    """An invalid record on alm.metrics.raw goes to alm.deadletter with the reason; the valid
    ones of its batch are stored and the batch is committed."""
    bus = MemoryBus()
    store = await store_at(tmp_path)
    agg = aggregator(bus, store)
    bad = {**observation(1).to_dict(), "metrics": {"citations": -3}}
    await bus.publish(TOPIC_RAW, [("10.5555/lossless.0", observation(0).to_dict())])
    await bus.publish(TOPIC_RAW, [("10.5555/lossless.1", bad)])
    assert await agg.step(0) == 2
    letters = await drain(bus, TOPIC_DEADLETTER)
    assert [m.key for m in letters] == ["10.5555/lossless.1"]
    assert letters[0].value["bad_event"] == bad
    assert "invalid at metrics/citations" in letters[0].value["reason"]
    assert len(await store.states([("10.5555/lossless.0", SOURCE)])) == 1
    assert bus.lag(TOPIC_RAW, Aggregator.GROUP) == 0
    await store.close()


async def test_the_scheduler_redoes_a_batch_whose_step_failed(tmp_path: Path) -> None:
    """Retries read from alm.refresh.retry; the due-index write times out once (Cassandra
    paused). The step is redone from the committed offset: every retry is scheduled. Before,
    the consumer's position had moved past the batch and the works were never scheduled."""
    bus = MemoryBus()
    store = Flaky(await store_at(tmp_path))
    store.fail("set_due", 1, OperationTimedOut("timed out"))
    scheduler = Scheduler([], bus, store, Policy(), SchedulerSettings(), lambda: T0)
    failed = [
        FailedRefresh(
            RefreshRequest(WorkRef(f"10.5555/lossless.{n}"), SOURCE, T0, "retry", 0, 1, T0),
            "timeout",
            T0,
        )
        for n in range(10)
    ]
    await bus.publish(TOPIC_RETRY, [(f.request.work.work_id, f.to_dict()) for f in failed])
    assert await until(partial(scheduler.step, 0)) == 1
    due = await store.inner.due(SOURCE, T0 + timedelta(seconds=1), 100)
    assert sorted(e.work_id for e in due) == sorted(f"10.5555/lossless.{n}" for n in range(10))
    assert {e.attempt for e in due} == {2}
    assert bus.lag(TOPIC_RETRY, Scheduler.GROUP) == 0
    await store.inner.close()


async def test_a_retry_read_after_its_time_is_due_now(tmp_path: Path) -> None:
    """A retry whose not_before has passed when the scheduler reads it (a broker restart, a
    backlog) is due at the scheduler's now, not behind it, where the Cassandra due scan would
    find it only minutes later (it starts a margin behind the present)."""
    bus = MemoryBus()
    store = await store_at(tmp_path)
    late = T0 + timedelta(minutes=10)
    scheduler = Scheduler([], bus, store, Policy(), SchedulerSettings(), lambda: late)
    req = RefreshRequest(WorkRef("10.5555/lossless.late"), SOURCE, T0, "retry", 0, 1, T0)
    failed = FailedRefresh(req, "timeout", T0)
    await bus.publish(TOPIC_RETRY, [(req.work.work_id, failed.to_dict())])
    assert await scheduler.step(0) == 1
    assert await store.due(SOURCE, late - timedelta(seconds=1), 10) == []
    assert [e.at for e in await store.due(SOURCE, late, 10)] == [late]
    await store.close()


async def test_a_fetcher_redoes_a_batch_whose_publishing_failed(tmp_path: Path) -> None:
    """The broker refuses the fetcher's observations once: the step is redone from the
    committed offset and every requested work is refreshed. Before, the requests polled by
    the failed step were skipped."""
    async with pipeline_kit(tmp_path, synthetic=True, sources=("crossref",)) as kit:
        dois = [f"10.5555/fetch.{n}" for n in range(30)]
        await kit.register(dois)
        await kit.pipeline.scheduler.step(0)
        assert await kit.pipeline.scheduler.tick() == 30
        fetcher = kit.pipeline.fetchers[0]
        flaky = Flaky(kit.bus)
        flaky.fail("publish", 1, KafkaTimeoutError("broker restarting"))
        fetcher.bus = flaky
        assert await until(partial(fetcher.step, 0)) == 1
        assert kit.bus.lag(refresh_topic("crossref"), "alm-fetcher-crossref") == 0
        while await kit.pipeline.aggregator.step(0):
            pass
        states = await kit.store.states([(d, "crossref") for d in dois])
        assert len(states) == 30


class LateAck:
    """A broker that acknowledges the scheduler's requests only after the fetcher and the
    aggregator have already refreshed them (a broker restart: the records were written, the
    acknowledgement came back late)."""

    def __init__(self, kit: Any) -> None:
        self.kit = kit

    def __getattr__(self, name: str) -> Any:
        return getattr(self.kit.bus, name)

    async def publish(self, topic: str, items: Any, **kwargs: Any) -> None:
        await self.kit.bus.publish(topic, items, **kwargs)
        if topic == refresh_topic("crossref"):
            while await self.kit.pipeline.fetchers[0].step(0):
                pass
            while await self.kit.pipeline.aggregator.step(0):
                pass


async def test_a_refresh_done_before_the_publish_returns_keeps_its_next_due_time(
    tmp_path: Path,
) -> None:
    """The tick leases before it publishes: a refresh fetched and aggregated before the publish
    returned keeps the next due time the aggregator wrote. Before, the lease written after the
    publish replaced it, and the work was not refreshed again for the lease's hour (the fault
    suite's broker restart left 24 and 114 works so)."""
    async with pipeline_kit(tmp_path, synthetic=True, sources=("crossref",)) as kit:
        dois = [f"10.5555/late.{n}" for n in range(5)]
        await kit.register(dois)
        scheduler = kit.pipeline.scheduler
        await scheduler.step(0)
        scheduler.bus = LateAck(kit)
        assert await scheduler.tick() == 5
        states = await kit.store.states([(d, "crossref") for d in dois])
        assert len(states) == 5  # refreshed while the publish was in flight
        entries = await kit.store.due("crossref", kit.clock() + timedelta(days=3650), 100)
        assert sorted(e.work_id for e in entries) == sorted(dois)
        assert not any(e.leased for e in entries), entries


async def test_a_tick_whose_publish_fails_leaves_its_works_due_now(tmp_path: Path) -> None:
    """The broker refuses the scheduler's requests: nothing stays leased (which would keep the
    works from being refreshed for the lease's hour); the next tick emits them."""
    async with pipeline_kit(tmp_path, synthetic=True, sources=("crossref",)) as kit:
        dois = [f"10.5555/refused.{n}" for n in range(4)]
        await kit.register(dois)
        scheduler = kit.pipeline.scheduler
        await scheduler.step(0)
        flaky = Flaky(kit.bus)
        flaky.fail("publish", 1, KafkaTimeoutError("broker restarting"))
        scheduler.bus = flaky
        with pytest.raises(KafkaTimeoutError):
            await scheduler.tick()
        entries = await kit.store.due("crossref", kit.clock(), 100)
        assert sorted(e.work_id for e in entries) == sorted(dois)
        assert not any(e.leased for e in entries)
        assert await scheduler.tick() == 4


async def test_a_lease_write_that_fails_midway_still_sends_its_requests(tmp_path: Path) -> None:
    """The store stalls while the tick writes its leases: some are written, the write still
    fails. The requests are published all the same, so no work is left leased without a
    request (the fault suite's Cassandra pause left works so for the lease's hour); the tick
    then fails, and the entries it did not lease are emitted again by the next one."""
    async with pipeline_kit(tmp_path, synthetic=True, sources=("crossref",)) as kit:
        dois = [f"10.5555/stalled.{n}" for n in range(4)]
        await kit.register(dois)
        scheduler = kit.pipeline.scheduler
        await scheduler.step(0)
        store = Flaky(kit.store)

        def half_then_timeout(
            source: str, entries: list[DueEntry], handoff: object = None
        ) -> BaseException | None:
            if not all(e.leased for e in entries):
                return None
            asyncio.get_running_loop().create_task(kit.store.set_due(source, entries[:2]))
            return OperationTimedOut("store stalled mid-write")

        store.refuse("set_due", half_then_timeout)
        scheduler.store = store
        with pytest.raises(OperationTimedOut):
            await scheduler.tick()
        await asyncio.sleep(0.1)  # the half that was written lands
        scheduler.store = kit.store
        requests = await drain(kit.bus, refresh_topic("crossref"))
        assert sorted(m.key for m in requests) == sorted(dois)
        assert await scheduler.tick() == 2  # the two not leased, again


async def test_a_scheduler_starting_releases_the_leases_a_killed_one_left(
    tmp_path: Path,
) -> None:
    """A scheduler killed between its lease and its publish leaves leases whose requests were
    never sent: the next one releases them as it starts (again until the store answers), and
    its first tick emits them, instead of the works waiting out the lease's hour."""
    async with pipeline_kit(tmp_path, synthetic=True, sources=("crossref",)) as kit:
        dois = [f"10.5555/killed.{n}" for n in range(3)]
        await kit.register(dois)
        await kit.pipeline.scheduler.step(0)
        lease = kit.clock() + timedelta(hours=1)
        await kit.store.set_due("crossref", [DueEntry(d, lease, 1, leased=True) for d in dois])
        assert await kit.pipeline.scheduler.tick() == 0  # leased: nothing to emit
        flaky = Flaky(kit.store)
        flaky.fail("release_leases", 1, OperationTimedOut("store still starting"))
        scheduler = kit.pipeline.scheduler
        scheduler.store = flaky
        await embedded.release_leases_at_start(scheduler, asyncio.Event(), every=0)
        scheduler.store = kit.store
        assert flaky.calls["release_leases"] == 2
        assert await kit.pipeline.scheduler.tick() == 3


async def test_a_fetcher_dead_letters_the_request_whose_record_the_broker_refuses(
    tmp_path: Path,
) -> None:
    """The broker refuses a record as too large whenever it holds one work's observation: that
    request is dead-lettered with the reason, the others' observations are published."""
    async with pipeline_kit(tmp_path, synthetic=True, sources=("crossref",)) as kit:
        dois = [f"10.5555/big.{n}" for n in range(6)]
        await kit.register(dois)
        await kit.pipeline.scheduler.step(0)
        await kit.pipeline.scheduler.tick()
        fetcher = kit.pipeline.fetchers[0]
        flaky = Flaky(kit.bus)

        def too_large(topic: str, items: list[Any], **kw: Any) -> BaseException | None:
            if topic == TOPIC_RAW and any(k == "10.5555/big.3" for k, _ in items):
                return MessageSizeTooLargeError("record too large")
            return None

        flaky.refuse("publish", too_large)
        fetcher.bus = flaky
        assert await fetcher.step(0) == 6
        raw = await drain(kit.bus, TOPIC_RAW)
        assert sorted(m.key for m in raw) == sorted(d for d in dois if d != "10.5555/big.3")
        letters = await drain(kit.bus, TOPIC_DEADLETTER)
        assert [m.key for m in letters] == ["10.5555/big.3"]
        assert "MessageSizeTooLargeError" in letters[0].value["reason"]
        assert letters[0].value["request"]["work_id"] == "10.5555/big.3"


@pytest.mark.parametrize(
    ("error", "is_permanent", "is_unavailable"),
    [
        (InvalidRequest("Batch too large"), True, False),
        (SchemaViolation("metrics.citations: -3 is less than 0"), True, False),
        (MessageSizeTooLargeError(), True, False),
        (TypeError('Received an argument of invalid type for column "value"'), True, False),
        (OperationTimedOut("timed out"), False, True),
        (KafkaTimeoutError(), False, True),
        (ConnectionRefusedError(), False, True),
        (TimeoutError(), False, True),
        (RuntimeError("a bug"), False, False),
    ],
)
def test_failures_are_classified(
    error: BaseException, is_permanent: bool, is_unavailable: bool
) -> None:
    assert permanent(error) is is_permanent
    assert unavailable(error) is is_unavailable
    assert describe(error).startswith(type(error).__name__)


def test_an_exception_type_no_adapter_registered_is_unknown_and_retried() -> None:
    """A driver's error is only classified once its family is registered: before, it is an
    unknown failure (neither permanent nor unavailable), retried with backoff."""
    failures = Failures(CORE_TYPES)
    locked, too_big = sqlite3.OperationalError("database is locked"), sqlite3.DataError("big")
    assert not failures.permanent(locked) and not failures.unavailable(locked)
    assert not failures.permanent(too_big) and not failures.unavailable(too_big)
    failures.register(sqlite_failures)
    assert failures.unavailable(locked) and not failures.permanent(locked)
    assert failures.permanent(too_big) and not failures.unavailable(too_big)


async def test_keep_stepping_backs_off_more_and_more_then_starts_over(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Failures pause 0.5, 1, 2 s... (up to STEP_RETRY_MAX); a success resets the pause."""
    pauses: list[float] = []

    async def pause(stop: asyncio.Event, seconds: float) -> None:
        if seconds > 0.1:
            pauses.append(seconds)
        await asyncio.sleep(0)

    monkeypatch.setattr(embedded, "_pause", pause)
    stop = asyncio.Event()
    error = OperationTimedOut("timed out")
    outcomes: list[BaseException | int] = [error, error, error, 1, error]

    async def step(idle: float) -> int:
        if not outcomes:
            stop.set()
            return 0
        outcome = outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    await asyncio.wait_for(keep_stepping("test", step, stop), 5)
    assert pauses == [0.5, 1.0, 2.0, 0.5]


async def test_stopping_lets_the_step_in_progress_finish_and_commit() -> None:
    """SIGTERM while a step is half done: it finishes (and commits) before the loop ends."""
    stop = asyncio.Event()
    done: list[str] = []

    async def step(idle: float) -> int:
        stop.set()  # the signal arrives mid-step
        await asyncio.sleep(0.05)
        done.append("committed")
        return 1

    await asyncio.wait_for(keep_stepping("test", step, stop, drain=2.0), 5)
    assert done == ["committed"]


async def test_a_step_that_outlasts_the_drain_bound_is_cancelled() -> None:
    """A step still running DRAIN seconds after the stop is cancelled (its batch is not
    committed, so the next owner redoes it): shutdown is bounded."""
    stop = asyncio.Event()
    cancelled: list[bool] = []

    async def step(idle: float) -> int:
        stop.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        return 1

    loop = asyncio.get_running_loop()
    started = loop.time()
    await asyncio.wait_for(keep_stepping("test", step, stop, drain=0.2), 5)
    assert cancelled == [True] and loop.time() - started < 2


async def test_the_scheduler_dead_letters_an_event_it_can_never_apply(tmp_path: Path) -> None:
    """The due-index refuses one work's entry for good: that retry event goes to
    alm.deadletter with the reason, the others are scheduled, the batch is committed."""
    bus = MemoryBus()
    store = Flaky(await store_at(tmp_path))

    def refused(source: str, entries: list[Any], handoff: object = None) -> BaseException | None:
        if entries[0].work_id == "10.5555/bad":
            return InvalidRequest("Key length of 70000 is longer than maximum of 65535")
        return None

    store.refuse("set_due", refused)
    scheduler = Scheduler([], bus, store, Policy(), SchedulerSettings(), lambda: T0)
    works = ["10.5555/lossless.1", "10.5555/bad", "10.5555/lossless.2"]
    failed = [
        FailedRefresh(RefreshRequest(WorkRef(w), SOURCE, T0, "retry", 0, 1, T0), "timeout", T0)
        for w in works
    ]
    await bus.publish(TOPIC_RETRY, [(f.request.work.work_id, f.to_dict()) for f in failed])
    assert await scheduler.step(0) == 3
    due = await store.inner.due(SOURCE, T0 + timedelta(seconds=1), 100)
    assert sorted(e.work_id for e in due) == ["10.5555/lossless.1", "10.5555/lossless.2"]
    letters = await drain(bus, TOPIC_DEADLETTER)
    assert [m.key for m in letters] == ["10.5555/bad"]
    assert letters[0].value["reason"].startswith("scheduler: InvalidRequest")
    assert bus.lag(TOPIC_RETRY, Scheduler.GROUP) == 0
    await store.inner.close()
