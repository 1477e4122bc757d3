"""The home page's recently changed works (services/api/home.py `recent_changes`) read from the
tail of a real Kafka `alm.metrics.changed` of 6 partitions: newest first, one a work, only the
last RECENT_TAIL events of each partition read."""

from __future__ import annotations

import pytest

from services.adapters.kafka.feed import KafkaChangeFeed
from services.api import home
from tests.integration.conftest import Infra
from tests.integration.test_changes_kafka import publish, topics
from tests.unit.changes_kit import change

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


async def test_the_newest_changes_one_a_work(infra: Infra, monkeypatch: pytest.MonkeyPatch) -> None:
    async with topics(infra) as (prefix, bus):
        feed = KafkaChangeFeed(infra.kafka, prefix=prefix)
        assert await home.recent_changes(feed) == []  # nothing published yet
        # 40 changes over 8 works; change n is at AT + n s, so the newest is n = 39
        await publish(bus, [change(n, work=f"10.5555/r{n % 8}") for n in range(40)])
        recent = await home.recent_changes(feed, limit=5)
        assert [c["id"] for c in recent] == [f"10.5555/r{n % 8}" for n in (39, 38, 37, 36, 35)]
        assert recent[0]["at"] > recent[-1]["at"] and recent[0]["source"] == "crossref"
        monkeypatch.setattr(home, "RECENT_TAIL", 1)  # one event a partition: still the newest
        tail = await home.recent_changes(feed, limit=8)
        assert tail[0]["id"] == "10.5555/r7" and len(tail) <= 6
