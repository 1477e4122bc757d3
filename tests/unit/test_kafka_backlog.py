"""The scheduler's backpressure when the brokers do not answer: the backlog read gives up within
its timeout (and at once while the last one still hangs), and the tick then fails before it
emits or leases anything: every due work stays due."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import time
import warnings
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import pytest

from services.adapters.kafka import KafkaBus
from services.adapters.sqlite import SqliteStore
from services.bootstrap import _backlog
from services.core.staleness import Policy
from services.core.works import Work
from services.fetchers.registry import get_source
from services.registration import Scheduling
from services.scheduler.service import Scheduler, SchedulerSettings

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # kafka-python's importlib use
    from kafka.errors import KafkaError

QUEUES = {"alm.refresh.datacite": ("alm-fetcher-datacite", 100)}

# kafka-python drops the socket of a refused connection without closing it
pytestmark = [
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]


async def _closed(bus: KafkaBus) -> None:
    """Close the bus once its backlog read has given up (its client's refused sockets are
    then collected here, where their ResourceWarnings are expected)."""
    running = bus.backlog._running
    if running is not None:
        with contextlib.suppress(Exception):
            await asyncio.wrap_future(running)
    await bus.close()
    gc.collect()


def _dead_bus() -> KafkaBus:
    """A bus whose bootstrap address nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    bus = KafkaBus(f"127.0.0.1:{port}", prefix="dead.")
    bus.backlog.timeout = 1.0
    return bus


async def test_a_broker_that_does_not_answer_is_given_up_on_within_the_timeout() -> None:
    bus = _dead_bus()
    try:
        for _ in range(2):  # and again: a fresh client, not a broken one
            started = time.monotonic()
            with pytest.raises((TimeoutError, KafkaError)):
                await bus.waiting(QUEUES)
            assert time.monotonic() - started < 3
    finally:
        await _closed(bus)


async def test_a_read_still_hanging_fails_the_next_one_at_once() -> None:
    """A read that outlasts its caller keeps the probe's one thread; the next read does not
    queue behind it (every tick would then wait): it fails at once."""
    bus = _dead_bus()
    bus.backlog.timeout = 0.01  # the caller gives up long before the client's bootstrap does
    try:
        with pytest.raises(TimeoutError):
            await bus.waiting(QUEUES)
        started = time.monotonic()
        with pytest.raises(TimeoutError, match="has not answered yet"):
            await bus.waiting(QUEUES)
        assert time.monotonic() - started < 0.5
    finally:
        await _closed(bus)


async def test_a_tick_that_cannot_read_the_backlog_leaves_every_work_due(tmp_path: Path) -> None:
    bus = _dead_bus()
    store = SqliteStore(tmp_path / "alm.sqlite")
    await store.migrate()
    now = datetime.now(UTC)
    source = get_source("datacite")
    ids = [f"10.5555/dead.{n}" for n in range(20)]
    await store.register(
        [Work(i, doi=i) for i in ids], partial(Scheduling((source,), Policy()).first_due, now=now)
    )
    scheduler = Scheduler(
        [source], bus, store, Policy(), SchedulerSettings(), lambda: now, backlog=_backlog(bus)
    )
    try:
        with pytest.raises((TimeoutError, KafkaError)):
            await scheduler.tick()
        due = await store.due("datacite", now, 100)
        assert sorted(e.work_id for e in due) == sorted(ids)
        assert not any(e.leased for e in due)
    finally:
        await _closed(bus)
        await store.close()
