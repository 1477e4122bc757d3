"""The distributed mode end to end, every service its own process on Kafka and Cassandra:
works registered -> scheduler -> fetchers (stub upstream) -> faust aggregator -> Cassandra ->
API, with metric-changed events on alm.metrics.changed; the totals equal the embedded mode's."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from pathlib import Path

import aiohttp
import pytest

from services.adapters.cassandra import CassandraStore
from services.adapters.kafka import KafkaBus, ensure_topics
from services.core.aggregation import SourceState
from services.core.identifiers import parse_identifier
from services.core.imports import read_lines
from services.embedded import refresh_until_idle
from services.fetchers.registry import SOURCES
from services.settings import FIXTURES, SAMPLE_WORKS
from services.stub import server as stub_server
from tests.integration.conftest import Infra, _cleanup_keyspace
from tests.integration.stack import Stack, changed_events, eventually, free_port, service_env
from tests.unit.pipeline_kit import pipeline_kit

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

SOURCES_RUN = ("crossref", "openalex")


def sample_work_ids() -> list[str]:
    """The work ids of data/sample-works.txt."""
    lines, _ = read_lines(SAMPLE_WORKS.read_text(), SAMPLE_WORKS.name)
    return sorted({parse_identifier(line.value).work_id for line in lines})


async def embedded_totals(tmp: Path, ids: list[str]) -> dict[tuple[str, str], dict[str, int]]:
    """What the embedded mode stores for the same works and stub upstream."""
    await asyncio.to_thread(tmp.mkdir, parents=True, exist_ok=True)
    async with pipeline_kit(tmp, sources=SOURCES_RUN) as kit:
        await kit.register(ids)
        await refresh_until_idle(kit.pipeline)
        states = await kit.store.states_for(ids)
    return {(w, s.source): dict(s.metrics) for w, rows in states.items() for s in rows}


async def test_refreshed_from_the_stub_readable_from_the_api_and_announced(
    infra: Infra, tmp_path: Path
) -> None:
    """Registered sample works are refreshed by separate services; the API serves the totals
    (the embedded mode's), and each change is on alm.metrics.changed once."""
    prefix = f"{infra.prefix}e2e{secrets.token_hex(2)}."
    # a keyspace of its own: other tests of the session store states of the same sample works
    infra = dataclasses.replace(infra, keyspace=f"{infra.keyspace}_e2e")
    await ensure_topics(infra.kafka, sorted(SOURCES), 6, prefix=prefix)
    stub_runner, root = await stub_server.start(stub_server.init_app(SOURCES, FIXTURES))
    api_port = free_port()
    env = service_env(
        infra,
        prefix,
        tmp_path / "data",
        ALM_UPSTREAM_ROOT=root,
        ALM_SOURCES=",".join(SOURCES_RUN),
        **{f"ALM_{s.upper()}_RATE": "200" for s in SOURCES_RUN},
    )
    stack = Stack(env, tmp_path)
    store = CassandraStore([infra.cassandra_host], infra.cassandra_port, infra.keyspace)
    bus = KafkaBus(infra.kafka, prefix=prefix)
    try:
        await stack.run("db", "migrate")
        stack.start("aggregator", "aggregator")
        stack.start("scheduler", "scheduler")
        for source in SOURCES_RUN:
            stack.start(f"fetcher-{source}", "fetcher", "--source", source)
        stack.start("api", "api", "--port", str(api_port))
        api = f"http://127.0.0.1:{api_port}"
        async with aiohttp.ClientSession() as http:

            async def api_ready() -> bool:
                try:
                    async with http.get(f"{api}/readyz") as resp:
                        return resp.status == 200
                except aiohttp.ClientError:
                    return False

            await eventually(api_ready, 60, "the API to be ready", stack)
            output = await stack.run("works", "import", str(SAMPLE_WORKS))
            assert "9 registered" in output, output
            ids = sample_work_ids()

            async def refreshed() -> dict[str, list[SourceState]] | None:
                states = await store.states_for(ids)
                done = all(
                    {s.source for s in states[w] if s.status is not None} == set(SOURCES_RUN)
                    for w in ids
                )
                return states if done else None

            await eventually(refreshed, 180, "every work refreshed from both sources", stack)
            states = await refreshed()
            assert states is not None
            stored = {(w, s.source): dict(s.metrics) for w, rows in states.items() for s in rows}
            assert stored == await embedded_totals(tmp_path / "embedded", ids)
            assert any(m.get("citations", 0) > 0 for m in stored.values())

            for work_id in ids:
                async with http.get(f"{api}/api/v1/works/{work_id}") as resp:
                    assert resp.status == 200, await resp.text()
                    body = await resp.json()
                served = {s["name"]: s["metrics"] for s in body["sources"]}
                for source in SOURCES_RUN:
                    assert served[source] == stored[(work_id, source)]

        events = [m for m in await changed_events(bus) if m.key in ids]
        announced: dict[tuple[str, str], list[dict[str, int]]] = {}
        for m in events:
            announced.setdefault((m.value["work_id"], m.value["source"]), []).append(
                m.value["current"]
            )
        nonzero = {k: v for k, v in stored.items() if any(v.values())}
        assert announced == {k: [v] for k, v in nonzero.items()}
    finally:
        await stack.stop_all()
        await stub_runner.cleanup()
        await bus.close()
        await store.close()
        _cleanup_keyspace(infra)
