"""The scheduler's backpressure when the brokers do not answer: the backlog read gives up within
its timeout (and at once while the last one still hangs), and the tick then fails before it
emits or leases anything: every due work stays due. The brokers' side is a stand-in here (a
read that hangs or fails); tests/integration/test_backpressure.py reads a real one."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from services.adapters.kafka import KafkaBus
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


class Brokers:
    """What the probe's admin requests meet: nothing (a read that hangs until released)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.reads = 0

    def read(self, queues: Any) -> Any:
        self.reads += 1
        self.release.wait(10)
        raise ConnectionError("no broker answered")


@pytest.fixture
def hanging(monkeypatch: pytest.MonkeyPatch) -> Brokers:
    brokers = Brokers()
    from services.adapters.kafka.backlog import BacklogProbe

    monkeypatch.setattr(BacklogProbe, "_read", lambda self, queues: brokers.read(queues))
    return brokers


async def test_a_read_that_hangs_is_given_up_on_and_the_next_fails_at_once(
    hanging: Brokers,
) -> None:
    bus = KafkaBus("127.0.0.1:9", prefix="dead.")
    bus.backlog.timeout = 0.2
    try:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await bus.waiting(QUEUES)
        assert 0.2 <= time.monotonic() - started < 2
        with pytest.raises(TimeoutError, match="has not answered yet"):
            await bus.waiting(QUEUES)  # the first still hangs: not a second thread on it
        assert hanging.reads == 1
        hanging.release.set()  # the brokers answer (with an error): the next read is made
        await asyncio.sleep(0.1)
        with pytest.raises(ConnectionError):
            await bus.waiting(QUEUES)
        assert hanging.reads == 2
    finally:
        hanging.release.set()
        await bus.close()


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
    ("env", "on"), [({}, False), ({"ALM_SCHEDULER_BACKPRESSURE": "true"}, True)]
)
async def test_alm_scheduler_over_kafka_reads_the_backlog_only_when_asked(
    tmp_path: Path, env: dict[str, str], on: bool
) -> None:
    """ALM_SCHEDULER_BACKPRESSURE switches the brokers' backlog read on for `alm scheduler`
    over Kafka (off by default); the in-process bus always has its own."""
    settings = Settings.from_env({"ALM_DATA_DIR": str(tmp_path), "ALM_BUS": "kafka", **env})
    store = SqliteStore(tmp_path / "alm.sqlite")
    bus = KafkaBus("127.0.0.1:9", prefix="dead.")
    try:
        assert (make_scheduler(settings, bus, store).backlog is not None) is on
        assert make_scheduler(settings, MemoryBus(), store).backlog is not None
    finally:
        await bus.close()
