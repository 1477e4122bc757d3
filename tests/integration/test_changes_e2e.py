"""Metric changes reach every kind of subscriber in the distributed mode: each service its own
process on the real Kafka and Cassandra, a change made by a refresh (stub upstream) arrives at
an SSE client of the API, at a webhook receiver on loopback (signature verified; it fails
twice, then gets the change once it is back) and at examples/subscriber.py; a client that
reconnects with Last-Event-ID misses nothing."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from services.adapters.kafka import KafkaBus, ensure_topics
from services.core.changefeed import decode_position
from services.core.events import TOPIC_CHANGED
from services.core.keys import new_secret_key
from services.fetchers.registry import SOURCES
from services.settings import FIXTURES
from services.stub import server as stub_server
from tests.integration.conftest import Infra
from tests.integration.stack import REPO, Stack, changed_events, eventually, free_port, service_env
from tests.sse_kit import Block, Reader
from tests.webhook_kit import Receiver

pytestmark = [pytest.mark.integration, pytest.mark.timeout(420)]

TOKEN = new_secret_key()  # the admin key the API stores at start (ALM_API_ADMIN_KEY)
AUTH = {"Authorization": f"Bearer {TOKEN}"}
FIRST = "10.1371/journal.pcbi.1000204"
LATER = ["10.7717/peerj.4375", "10.1371/journal.pmed.0020124", "10.1371/journal.pone.0000308"]


class Listener:
    """An SSE client collecting the metric_changed events of one stream in the background."""

    def __init__(self, http: aiohttp.ClientSession, url: str, **headers: str) -> None:
        self.http, self.url, self.headers = http, url, headers
        self.events: list[Block] = []
        self.reader: Reader | None = None
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> Listener:
        resp = await self.http.get(self.url, headers=self.headers, timeout=None)
        assert resp.status == 200, await resp.text()
        self.reader = Reader(resp)
        self.task = asyncio.create_task(self._collect())
        return self

    async def _collect(self) -> None:
        assert self.reader is not None
        async for block in self.reader.events():
            self.events.append(block)

    async def stop(self) -> str:
        """Disconnect; the last event id it got."""
        assert self.task is not None and self.reader is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        self.reader.response.close()
        return self.reader.last_id

    def works(self) -> list[str]:
        return [b.json["work_id"] for b in self.events]


@contextlib.asynccontextmanager
async def subscriber(infra: Infra, prefix: str, log: Path) -> AsyncIterator[Path]:
    """examples/subscriber.py running against this test's topic; its output file."""
    out = log.open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(REPO / "examples" / "subscriber.py"),
        "--bootstrap",
        infra.kafka,
        "--topic",
        f"{prefix}{TOPIC_CHANGED}",
        "--group",
        f"{prefix}example",
        "--from-beginning",
        stdout=out,
        stderr=asyncio.subprocess.STDOUT,
        stdin=asyncio.subprocess.DEVNULL,
    )
    out.close()
    try:
        yield log
    finally:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 20)
        except TimeoutError:
            proc.kill()
            await proc.wait()


async def test_a_refresh_reaches_sse_webhook_and_kafka_subscribers(
    infra: Infra, tmp_path: Path
) -> None:
    """One refresh's change, same event id, at all three; the webhook after two 500s."""
    prefix = f"{infra.prefix}n{secrets.token_hex(2)}."
    await ensure_topics(infra.kafka, sorted(SOURCES), 6, prefix=prefix)
    stub_runner, root = await stub_server.start(stub_server.init_app(SOURCES, FIXTURES))
    api_port = free_port()
    env = service_env(
        infra,
        prefix,
        tmp_path / "data",
        ALM_UPSTREAM_ROOT=root,
        ALM_SOURCES="crossref",
        ALM_CROSSREF_RATE="200",
        ALM_API_ADMIN_KEY=TOKEN,
        ALM_WEBHOOK_ALLOW_PRIVATE="true",
        ALM_WEBHOOK_RETRY_BASE="0.3",
        ALM_WEBHOOK_RETRY_MAX="2",
        ALM_CHANGES_HEARTBEAT="2",
    )
    stack = Stack(env, tmp_path)
    receiver = Receiver(script=[500, 500])
    bus = KafkaBus(infra.kafka, prefix=prefix)
    await receiver.start()
    try:
        await stack.run("db", "migrate")
        for name, args in [
            ("aggregator", ["aggregator"]),
            ("scheduler", ["scheduler"]),
            ("fetcher-crossref", ["fetcher", "--source", "crossref"]),
            ("notifier", ["notifier"]),
            ("api", ["api", "--port", str(api_port)]),
        ]:
            stack.start(name, *args)
        api = f"http://127.0.0.1:{api_port}"
        async with (
            aiohttp.ClientSession() as http,
            subscriber(infra, prefix, tmp_path / "subscriber.log") as printed,
        ):
            await _wait_ready(http, api, stack)
            resp = await http.post(
                f"{api}/api/v1/webhooks",
                json={"url": receiver.url, "filters": {"sources": ["crossref"]}},
                headers=AUTH,
            )
            assert resp.status == 201, await resp.text()
            hook = await resp.json()
            receiver.secret = hook["secret"]
            sse = await Listener(http, f"{api}/api/v1/changes?source=crossref").start()
            await asyncio.sleep(2)  # the notifier reads the hooks every second
            resp = await http.post(f"{api}/api/v1/works", json=[FIRST], headers=AUTH)
            assert resp.status == 200, await resp.text()

            async def at_sse() -> bool:
                return FIRST in sse.works()

            await eventually(at_sse, 120, "the change at the SSE client", stack)
            event_id = sse.events[0].json["event_id"]

            async def at_webhook() -> bool:
                return any(r.json["event_id"] == event_id for r in receiver.delivered())

            await eventually(at_webhook, 60, "the change at the webhook receiver", stack)

            async def at_subscriber() -> bool:
                return event_id in printed.read_text()

            await eventually(at_subscriber, 60, "the change printed by the subscriber", stack)
            log = await (
                await http.get(f"{api}/api/v1/webhooks/{hook['id']}/deliveries", headers=AUTH)
            ).json()

            last = await sse.stop()
            resp = await http.post(f"{api}/api/v1/works", json=LATER, headers=AUTH)
            assert resp.status == 200
            on_topic = await _crossref_changes_after(bus, last, len(LATER))
            again = await Listener(
                http, f"{api}/api/v1/changes?source=crossref", **{"Last-Event-ID": last}
            ).start()

            async def resumed() -> bool:
                return len(again.events) >= len(on_topic)

            await eventually(resumed, 60, "the changes made while away", stack)
            await asyncio.sleep(1)  # anything more would be a duplicate
            await again.stop()
    finally:
        await stack.stop_all()
        await receiver.stop()
        await stub_runner.cleanup()
        await bus.close()
    tries = [r for r in receiver.got if r.json["event_id"] == event_id]
    assert [r.status for r in tries] == [500, 500, 200]
    assert all(r.signed for r in tries)
    assert [r.headers["ALM-Event-Id"] for r in tries] == [event_id] * 3
    assert [a["outcome"] for a in log["data"]][:3] == ["delivered", "retry", "retry"]
    resumed_ids = [e.json["event_id"] for e in again.events]
    assert sorted(resumed_ids) == sorted(on_topic)  # all of them, each once


async def _wait_ready(http: aiohttp.ClientSession, api: str, stack: Stack) -> None:
    async def ready() -> bool:
        try:
            async with http.get(f"{api}/readyz") as resp:
                return resp.status == 200
        except aiohttp.ClientError:
            return False

    await eventually(ready, 60, "the API to be ready", stack)


async def _crossref_changes_after(bus: KafkaBus, last: str, count: int) -> list[str]:
    """The event ids of the crossref changes on the topic after position `last`, once there are
    at least `count` of them."""
    position = decode_position(last)
    found: list[Any] = []

    async def enough() -> bool:
        nonlocal found
        found = [
            m
            for m in await changed_events(bus)
            if m.value["source"] == "crossref" and m.offset >= position.get(m.partition, 0)
        ]
        return len(found) >= count

    await eventually(enough, 120, f"{count} more changes on the topic")
    return [m.value["event_id"] for m in found]
