"""The scheduler's backpressure over the real broker: a source's refresh topic never holds more
than its queue (what its fetchers take in two ticks at the upstream's rate limit); the rest
stays due in the index, unleased, and every work is handed out exactly once as the fetchers'
group takes and commits what waits; and the read recovers once a broker that did not answer
does."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import pytest
from aiokafka.errors import KafkaError

from services.adapters.kafka import KafkaBus, ensure_topics
from services.adapters.sqlite import SqliteStore
from services.bootstrap import _backlog
from services.core.events import refresh_topic
from services.core.staleness import Policy
from services.core.works import Work
from services.fetchers.registry import get_source
from services.fetchers.service import FetcherService
from services.registration import Scheduling
from services.scheduler.service import Scheduler, SchedulerSettings
from tests.integration.conftest import Infra
from tests.integration.test_kafka_bus import drain

pytestmark = pytest.mark.integration

SOURCE = "datacite"  # one work a call, 3 calls/s: a queue of 128 requests


async def test_a_source_gets_no_more_than_its_fetchers_take(infra: Infra, tmp_path: Path) -> None:
    prefix = f"{infra.prefix}bp{secrets.token_hex(2)}."
    await ensure_topics(infra.kafka, [SOURCE], 6, prefix=prefix)
    kafka = KafkaBus(infra.kafka, client_id="it-backpressure", prefix=prefix)
    store = SqliteStore(tmp_path / "alm.sqlite")
    await store.migrate()
    now = datetime.now(UTC)
    source = get_source(SOURCE)
    scheduling = Scheduling((source,), Policy())
    ids = [f"10.5555/backpressure.{n}" for n in range(400)]
    await store.register([Work(i, doi=i) for i in ids], partial(scheduling.first_due, now=now))
    settings = SchedulerSettings()
    queue = settings.queue(source)
    scheduler = Scheduler(
        [source],
        kafka,
        store,
        Policy(),
        settings,
        lambda: now,
        backlog=_backlog(kafka, brokers=True),
    )
    topic, group = refresh_topic(SOURCE), FetcherService.group_of(SOURCE)
    fetcher = kafka.consumer([topic], group)
    try:
        first, second = await scheduler.tick(), await scheduler.tick()
        assert (first, second) == (queue, 0)  # nothing taken yet: no room
        assert await kafka.waiting({topic: (group, 10_000)}) == {topic: queue}
        assert await kafka.waiting({topic: (group, 10)}) == {topic: 10}
        assert len(await store.due(SOURCE, now, 1000)) == len(ids) - queue  # due, not leased

        received: list[str] = []
        emitted = first
        for _ in range(40):
            taken = await drain(fetcher, 1, within=20)
            received += [m.value["work_id"] for m in taken]
            await fetcher.commit()
            waiting = (await kafka.waiting({topic: (group, 10_000)}))[topic]
            topped = await scheduler.tick()
            assert topped == min(queue - waiting, len(ids) - emitted)  # topped up, no more
            emitted += topped
            assert (await kafka.waiting({topic: (group, 10_000)}))[topic] <= queue
            if len(received) == len(ids):
                break
        assert sorted(received) == sorted(ids)  # every work once, none twice
        assert emitted == len(ids)
        assert await store.due(SOURCE, now, 1000) == []
    finally:
        await fetcher.close()
        await kafka.close()
        await store.close()


class Gate:
    """A TCP stand-in for the broker's address: `drop` closes each connection at once, `hang`
    takes it and never answers (as a broker that cannot bootstrap a client: its ApiVersions
    times out), `forward` relays it to the real broker."""

    def __init__(self, broker: str) -> None:
        host, port = broker.rsplit(":", 1)
        self.broker = (host, int(port))
        self.mode = "drop"
        self.server: asyncio.Server | None = None
        self.held: list[asyncio.StreamWriter] = []

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.mode == "drop":
            writer.close()
            return
        if self.mode == "hang":
            self.held.append(writer)
            while await reader.read(65536):
                pass
            return
        up_reader, up_writer = await asyncio.open_connection(*self.broker)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def close(self) -> None:
        for writer in self.held:
            writer.close()
        if self.server is not None:
            self.server.close()


async def test_the_backlog_read_recovers_once_the_broker_answers(infra: Infra) -> None:
    """The read fails in time while its bootstrap address refuses connections or never
    answers, and reads the real backlog as soon as it does: each failure drops the probe's
    clients and the next read connects afresh. (The landing rehearsal's every-tick failure was
    inside kafka-python's networking, which the probe no longer uses; this guards recovery.)"""
    prefix = f"{infra.prefix}bpr{secrets.token_hex(2)}."
    await ensure_topics(infra.kafka, [SOURCE], 6, prefix=prefix)
    topic, group = refresh_topic(SOURCE), FetcherService.group_of(SOURCE)
    writer = KafkaBus(infra.kafka, client_id="it-backpressure-writer", prefix=prefix)
    gate = Gate(infra.kafka)
    probe = KafkaBus(await gate.start(), client_id="it-backpressure-gate", prefix=prefix)
    probe.backlog.timeout = 3.0
    try:
        await writer.publish(topic, [(f"w{n}", {"work_id": f"w{n}"}) for n in range(7)])
        for mode in ("drop", "hang", "drop", "hang"):
            gate.mode = mode
            started = time.monotonic()
            with pytest.raises((KafkaError, TimeoutError)):
                await probe.waiting({topic: (group, 100)})
            assert time.monotonic() - started < 3.0 + 1.0, mode  # given up on in time
        gate.mode = "forward"
        started = time.monotonic()
        assert await probe.waiting({topic: (group, 100)}) == {topic: 7}
        assert time.monotonic() - started < 3.0
        assert await probe.waiting({topic: (group, 100)}) == {topic: 7}  # the clients kept
    finally:
        await probe.close()
        await writer.close()
        await gate.close()
