"""Whole-table counts in the API: bounded in age, computed once for concurrent requests, and
never on the readiness probe."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from services.adapters.memory.bus import MemoryBus
from services.adapters.sqlite import SqliteStore
from services.api.app import init_app
from services.api.cache import TotalsCache
from services.bootstrap import api_context
from services.core.works import Work
from services.settings import Settings


class Counting:
    """A compute function that counts its calls and takes a moment."""

    def __init__(self) -> None:
        self.calls = 0

    async def __call__(self) -> int:
        self.calls += 1
        await asyncio.sleep(0.01)
        return self.calls


async def test_a_figure_is_kept_for_its_max_age() -> None:
    compute = Counting()
    totals = TotalsCache(max_age=60)
    assert [await totals.get("works", compute) for _ in range(3)] == [1, 1, 1]
    assert compute.calls == 1


async def test_concurrent_requests_share_one_computation() -> None:
    compute = Counting()
    totals = TotalsCache(max_age=60)
    assert await asyncio.gather(*(totals.get("works", compute) for _ in range(5))) == [1] * 5
    assert compute.calls == 1


async def test_zero_max_age_is_always_exact() -> None:
    compute = Counting()
    totals = TotalsCache(max_age=0)
    assert [await totals.get("works", compute) for _ in range(3)] == [1, 2, 3]


async def test_an_expired_figure_is_recomputed(monkeypatch: pytest.MonkeyPatch) -> None:
    compute = Counting()
    totals = TotalsCache(max_age=30)
    now = [1000.0]
    monkeypatch.setattr("services.api.cache.monotonic", lambda: now[0])
    assert await totals.get("works", compute) == 1
    now[0] += 29
    assert await totals.get("works", compute) == 1
    now[0] += 2
    assert await totals.get("works", compute) == 2


class NoCounting(SqliteStore):
    """A store whose whole-table counts must not be called."""

    async def count_works(self) -> int:
        raise AssertionError("readiness must not count the works")

    async def source_summary(self) -> dict[str, dict[str, int]]:
        raise AssertionError("readiness must not read every state")


async def test_readiness_does_not_count_works(tmp_path: Path) -> None:
    store = NoCounting(tmp_path / "alm.sqlite")
    await store.migrate()
    app = init_app(api_context(Settings(data_dir=tmp_path), store=store, bus=MemoryBus()))
    async with TestClient(TestServer(app)) as client:
        resp = await client.get("/readyz")
        assert resp.status == 200 and await resp.json() == {"status": "ready"}
    await store.close()


async def test_listing_totals_lag_by_at_most_the_cache_age(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "alm.sqlite")
    await store.migrate()
    await store.register([Work("10.1234/a", doi="10.1234/a")])
    app = init_app(
        api_context(
            Settings(data_dir=tmp_path, status_cache_seconds=60), store=store, bus=MemoryBus()
        )
    )
    async with TestClient(TestServer(app)) as client:
        first: Any = await (await client.get("/api/v1/works")).json()
        await store.register([Work("10.1234/b", doi="10.1234/b")])
        second: Any = await (await client.get("/api/v1/works")).json()
    assert first["total"] == 1 and second["total"] == 1  # cached total
    assert len(second["data"]) == 2  # the page itself is live
    await store.close()
