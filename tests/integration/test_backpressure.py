"""The scheduler's backpressure over the real broker: a source's refresh topic never holds more
than its queue (what its fetchers take in two ticks at the upstream's rate limit); the rest
stays due in the index, unleased, and every work is handed out exactly once as the fetchers'
group takes and commits what waits."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import pytest

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
