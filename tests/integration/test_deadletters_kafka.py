"""`GET /api/v1/deadletters` and `/admin/deadletters` reading real dead letters from Kafka:
letters the services' own functions build (services/core/deadletters.py) spread over the
partitions of this run's `alm.deadletter`, and a record no service wrote (not JSON), read back
with KafkaBus's PartitionReader through the API app: newest first, paged back with `next`
until every letter was listed once, the malformed one shown as such."""

from __future__ import annotations

import secrets
import warnings
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from services.adapters.kafka import KafkaBus, ensure_topics
from services.adapters.sqlite import SqliteStore
from services.api.app import init_app
from services.bootstrap import api_context
from services.core.deadletters import refused, unreadable
from services.core.events import TOPIC_DEADLETTER
from services.settings import Settings
from tests.integration.conftest import Infra
from tests.unit.pipeline_kit import ApiTestServer, admin_headers

pytestmark = pytest.mark.integration

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # kafka-python's importlib use
    from kafka import KafkaProducer

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
async def served(
    infra: Infra, tmp_path: Path
) -> AsyncIterator[tuple[TestClient[Any, Any], KafkaBus]]:
    """The API over this run's Kafka topics (the bus its context builds) and an SQLite store,
    every request with an admin key. Its topics have their own prefix: the session's topics
    are made with 6 partitions by other files, and one made here first with 3 would keep 3."""
    prefix = f"{infra.prefix}dl{secrets.token_hex(2)}."
    await ensure_topics(infra.kafka, ["crossref"], 3, prefix=prefix)
    settings = Settings(
        data_dir=tmp_path, bus="kafka", kafka_bootstrap=infra.kafka, topic_prefix=prefix
    )
    store = SqliteStore(tmp_path / "alm.sqlite")
    await store.migrate()
    bus = KafkaBus(infra.kafka, client_id="it-letters", prefix=prefix)
    context = api_context(settings, store=store, bus=bus)
    headers = await admin_headers(store)
    try:
        async with TestClient(ApiTestServer(init_app(context)), headers=headers) as c:
            yield c, bus
    finally:
        await bus.close()
        await store.close()


async def test_real_dead_letters_are_listed_newest_first_and_paged_back(
    infra: Infra, served: tuple[TestClient[Any, Any], KafkaBus]
) -> None:
    client, bus = served
    letters = []
    for n in range(9):
        at = T0 + timedelta(minutes=n)
        work = f"10.5555/it.{n}"
        if n % 2:
            request = {"work_id": work, "source": "crossref", "attempt": 9}
            letters.append((work, refused("alm.refresh.crossref", work, request, f"r{n}", at)))
        else:
            letters.append((work, unreadable("alm.works", work, {"x": n}, f"bad {n}", at)))
    await bus.publish(TOPIC_DEADLETTER, letters)
    producer = KafkaProducer(bootstrap_servers=infra.kafka, client_id="it-garbage")
    try:
        producer.send(bus.topic(TOPIC_DEADLETTER), key=b"junk", value=b"{not json").get(30)
    finally:
        producer.close(timeout=30)

    seen: list[dict[str, Any]] = []
    url: str | None = "/api/v1/deadletters?per_page=4"
    while url:
        resp = await client.get(url)
        assert resp.status == 200, await resp.text()
        body = await resp.json()
        assert len(body["data"]) <= 4
        seen += body["data"]
        url = body["next"]
    page = await (await client.get("/admin/deadletters?per_page=200")).text()

    valid = [d for d in seen if d["malformed"] is None]
    [junk] = [d for d in seen if d["malformed"] is not None]
    assert len(seen) == 10 and len({(d["partition"], d["offset"]) for d in seen}) == 10
    assert [d["work_id"] for d in valid] == [f"10.5555/it.{n}" for n in range(8, -1, -1)]
    assert [d["reason"] for d in valid[:2]] == ["unreadable alm.works record: bad 8", "r7"]
    assert valid[0]["failed_at"] == "2026-11-25T12:08:00Z"
    crossref = [d for d in valid if d["source"] == "crossref"]
    assert {d["topic"] for d in crossref} == {"alm.refresh.crossref"} and len(crossref) == 4
    assert {d["topic"] for d in valid if d["source"] is None} == {"alm.works"}
    assert junk["key"] == "junk" and junk["malformed"].startswith("not a letter")
    assert '<a href="/works/10.5555/it.8">10.5555/it.8</a>' in page
    assert "malformed: not a letter" in page
