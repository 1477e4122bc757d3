"""The scheduler's backpressure when the brokers do not answer: the backlog read gives up within
its timeout, and the tick then fails before it emits or leases anything: every due work stays
due. After any failure the probe's clients are closed (without waiting on them) and the next
read connects afresh. The brokers' side is a stand-in here (clients that hang or fail), or a
port no broker listens on; tests/integration/test_backpressure.py reads a real one."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import KafkaConnectionError

from services.adapters.kafka import KafkaBus
from services.adapters.kafka import backlog as backlog_module
from services.adapters.memory.bus import MemoryBus
from services.adapters.sqlite import SqliteStore
from services.bootstrap import _backlog, make_scheduler
from services.core.staleness import Policy
from services.core.works import Work
from services.fetchers.registry import get_source
from services.registration import Scheduling
from services.scheduler.service import Scheduler, SchedulerSettings
from services.settings import Settings

QUEUES = {"alm.refresh.datacite": ("alm-fetcher-datacite", 100)}


class Client:
    """A stand-in of one of the probe's aiokafka clients."""

    def __init__(self, brokers: Brokers) -> None:
        self.brokers = brokers
        self.closed = False

    async def start(self) -> None:
        if self.brokers.bootstrap_fails:
            raise KafkaConnectionError("Unable to bootstrap from 127.0.0.1:9")

    async def close(self) -> None:
        await asyncio.sleep(self.brokers.close_takes)
        self.closed = True

    stop = close


class Brokers:
    """What the probe's requests meet: nothing (a read that hangs until released)."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.reads = 0
        self.bootstrap_fails = False
        self.close_takes = 0.0
        self.clients: list[tuple[Client, Client]] = []

    def make(self) -> tuple[Client, Client]:
        self.clients.append((Client(self), Client(self)))
        return self.clients[-1]

    async def read(self) -> Any:
        self.reads += 1
        await self.release.wait()
        raise ConnectionError("no broker answered")


@pytest.fixture
def hanging(monkeypatch: pytest.MonkeyPatch) -> Brokers:
    brokers = Brokers()
    from services.adapters.kafka.backlog import BacklogProbe

    async def read(self: BacklogProbe, *_: Any) -> Any:
        return await brokers.read()

    monkeypatch.setattr(BacklogProbe, "_make", lambda self: brokers.make())
    monkeypatch.setattr(BacklogProbe, "_read", read)
    return brokers


async def test_a_read_that_hangs_is_given_up_on_and_the_next_connects_afresh(
    hanging: Brokers,
) -> None:
    bus = KafkaBus("127.0.0.1:9", prefix="dead.")
    bus.backlog.timeout = 0.2
    try:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await bus.waiting(QUEUES)
        assert 0.2 <= time.monotonic() - started < 2
        await asyncio.sleep(0.05)
        assert len(hanging.clients) == 1 and all(c.closed for c in hanging.clients[0])
        with pytest.raises(TimeoutError):
            await bus.waiting(QUEUES)  # a fresh pair of clients, given up on too
        assert hanging.reads == 2 and len(hanging.clients) == 2
        hanging.release.set()  # the brokers answer (with an error): the next read is made
        with pytest.raises(ConnectionError):
            await bus.waiting(QUEUES)
        assert hanging.reads == 3 and len(hanging.clients) == 3
    finally:
        hanging.release.set()
        await bus.close()


async def test_a_failed_bootstrap_is_not_asked_again_and_a_hanging_close_is_not_waited_on(
    hanging: Brokers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each failure drops the clients, closed behind the caller, and the next read makes
    new ones: a client whose bootstrap failed is never asked again."""
    monkeypatch.setattr(backlog_module, "_CLOSE_WITHIN", 0.3)
    hanging.bootstrap_fails, hanging.close_takes = True, 10.0
    bus = KafkaBus("127.0.0.1:9", prefix="dead.")
    try:
        for n in range(1, 4):
            started = time.monotonic()
            with pytest.raises(KafkaConnectionError):
                await bus.waiting(QUEUES)
            assert time.monotonic() - started < 0.2  # closing the old pair is not waited on
            assert len(hanging.clients) == n and hanging.reads == 0
        hanging.bootstrap_fails = False
        hanging.release.set()
        with pytest.raises(ConnectionError):  # connected: the read itself is made
            await bus.waiting(QUEUES)
        assert hanging.reads == 1 and len(hanging.clients) == 4
    finally:
        started = time.monotonic()
        await bus.close()
        assert time.monotonic() - started < 2  # every close given up on after _CLOSE_WITHIN


async def test_no_broker_at_the_address_fails_the_read_within_its_timeout() -> None:
    """aiokafka itself, at a port nothing listens on: the read fails (or times out) in time,
    again on the next call, and closing the probe does not hang."""
    bus = KafkaBus("127.0.0.1:9", prefix="dead.")
    bus.backlog.timeout = 2.0
    try:
        for _ in range(2):
            started = time.monotonic()
            with pytest.raises((KafkaConnectionError, TimeoutError)):
                await bus.waiting(QUEUES)
            assert time.monotonic() - started < 3
    finally:
        started = time.monotonic()
        await bus.close()
        assert time.monotonic() - started < 2


async def test_a_tick_that_cannot_read_the_backlog_leaves_every_work_due(
    tmp_path: Path, hanging: Brokers
) -> None:
    hanging.release.set()  # every read fails at once
    bus = KafkaBus("127.0.0.1:9", prefix="dead.")
    store = SqliteStore(tmp_path / "alm.sqlite")
    await store.migrate()
    now = datetime.now(UTC)
    source = get_source("datacite")
    ids = [f"10.5555/dead.{n}" for n in range(20)]
    first_due = partial(Scheduling((source,), Policy()).first_due, now=now)
    await store.register([Work(i, doi=i) for i in ids], first_due)
    scheduler = Scheduler(
        [source],
        bus,
        store,
        Policy(),
        SchedulerSettings(),
        lambda: now,
        backlog=_backlog(bus, brokers=True),
    )
    try:
        with pytest.raises(ConnectionError):
            await scheduler.tick()
        due = await store.due("datacite", now, 100)
        assert sorted(e.work_id for e in due) == sorted(ids)
        assert not any(e.leased for e in due)
        assert scheduler.emitted == 0
    finally:
        await bus.close()
        await store.close()


@pytest.mark.parametrize(
    ("env", "on"),
    [
        ({}, True),
        ({"ALM_SCHEDULER_BACKPRESSURE": "true"}, True),
        ({"ALM_SCHEDULER_BACKPRESSURE": "false"}, False),
    ],
)
async def test_alm_scheduler_over_kafka_reads_the_backlog_unless_told_not_to(
    tmp_path: Path, env: dict[str, str], on: bool
) -> None:
    """ALM_SCHEDULER_BACKPRESSURE switches the brokers' backlog read on for `alm scheduler`
    over Kafka (on by default, `false` turns it off); the in-process bus always has its own."""
    settings = Settings.from_env({"ALM_DATA_DIR": str(tmp_path), "ALM_BUS": "kafka", **env})
    store = SqliteStore(tmp_path / "alm.sqlite")
    bus = KafkaBus("127.0.0.1:9", prefix="dead.")
    try:
        assert (make_scheduler(settings, bus, store).backlog is not None) is on
        assert make_scheduler(settings, MemoryBus(), store).backlog is not None
    finally:
        await bus.close()
