"""The stub upstream's fault mode (for the fault suite): 429 storms with or without
Retry-After, answers cut short, limited to some sources and to a time, and switched off."""

from __future__ import annotations

from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from services.fetchers.registry import SOURCES
from services.settings import FIXTURES
from services.stub import server as stub_server

WORK = "/crossref/works/10.5555/fault.1"


async def client() -> TestClient[Any, Any]:
    app = stub_server.init_app(SOURCES, FIXTURES, synthetic=True)
    return TestClient(TestServer(app))


async def test_a_429_storm_with_and_without_retry_after_then_normal_answers() -> None:
    async with await client() as c:
        normal = await (await c.get(WORK)).json()
        await c.post("/_stub/fault", json={"status": 429, "retry_after": "2", "seconds": 60})
        resp = await c.get(WORK)
        assert (resp.status, resp.headers.get("Retry-After")) == (429, "2")
        await c.post("/_stub/fault", json={"status": 429, "seconds": 60})
        resp = await c.get(WORK)
        assert resp.status == 429 and "Retry-After" not in resp.headers
        await c.delete("/_stub/fault")
        assert await (await c.get(WORK)).json() == normal
        assert (await (await c.get("/_stub/hits")).json())["crossref:fault"] == 2


async def test_a_truncated_body_only_for_the_sources_named_and_only_for_a_while() -> None:
    async with await client() as c:
        whole = await (await c.get(WORK)).read()
        spec = {"truncate": True, "sources": ["crossref"], "seconds": 60}
        assert (await c.post("/_stub/fault", json=spec)).status == 200
        resp = await c.get(WORK)
        assert resp.status == 200 and await resp.read() == whole[: len(whole) // 2]
        other = await c.get("/openalex/works", params={"filter": "doi:10.5555/fault.1"})
        assert other.status == 200 and (await other.json())["results"]
        await c.post("/_stub/fault", json={"truncate": True, "seconds": 0})  # already over
        assert await (await c.get(WORK)).read() == whole
        assert (await c.post("/_stub/fault", json={"seconds": 5})).status == 400
