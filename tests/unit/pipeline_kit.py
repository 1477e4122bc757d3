"""Shared test kit: the embedded pipeline wired against the stub upstream on loopback."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from aiohttp.web_runner import BaseRunner

from services.adapters.memory.bus import MemoryBus
from services.adapters.sqlite import SqliteStore
from services.adapters.sqlite.keys import SqliteKeyStore
from services.api.app import init_app
from services.api.server import ApiRunner
from services.bootstrap import Pipeline, api_context, make_pipeline
from services.core.keys import Role
from services.fetchers.http import HttpSettings
from services.fetchers.registry import SOURCES
from services.keyring import create_key
from services.registration import RegisterResult, register
from services.settings import FIXTURES, Settings
from services.stub import server as stub_server
from services.stub.upstream import StubAnswer, StubUpstream


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@dataclass
class Kit:
    """The pipeline, its store and bus, the stub app and the clock."""

    pipeline: Pipeline
    store: SqliteStore
    bus: MemoryBus
    stub_app: web.Application
    clock: Clock

    def stub(self, source: str) -> StubUpstream:
        """The stub of one source (to inject error answers)."""
        stubs: dict[str, StubUpstream] = self.stub_app[stub_server.STUBS]
        return stubs[source]

    def fail(self, source: str, doi: str, status: int, body: str, content_type: str) -> None:
        """Make the stub answer `doi` from `source` with this response."""
        self.stub(source).errors[doi] = StubAnswer(
            status, body.encode(), {"Content-Type": content_type}
        )

    def heal(self, source: str, doi: str) -> None:
        """Undo fail()."""
        self.stub(source).errors.pop(doi, None)

    def hits(self) -> dict[str, int]:
        """Calls the stub answered per source."""
        return dict(self.stub_app[stub_server.HITS])

    async def admin_headers(self) -> dict[str, str]:
        """Headers carrying a new admin API key (stored in the kit's store)."""
        return await admin_headers(self.store, self.clock())

    async def register(self, ids: Sequence[str]) -> list[RegisterResult]:
        """Register `ids` now, scheduled for the kit's sources."""
        scheduling = self.pipeline.scheduler.scheduling
        return await register(ids, self.store, self.bus, self.clock(), scheduling)


async def admin_headers(store: SqliteStore, now: datetime | None = None) -> dict[str, str]:
    """Headers carrying a new admin API key stored in `store` (the API's write routes)."""
    keys = SqliteKeyStore(store)
    _, key = await create_key(keys, "tests", Role.ADMIN, now or datetime.now(UTC))
    return {"Authorization": f"Bearer {key}"}


CORE_SOURCES = ("crossref", "openalex", "europepmc")


@asynccontextmanager
async def pipeline_kit(
    tmp: Path,
    synthetic: bool = False,
    sources: tuple[str, ...] = CORE_SOURCES,
    rates: Mapping[str, float] | None = None,
) -> AsyncIterator[Kit]:
    """A migrated SQLite store, a memory bus and every service, fetching from the stub (at
    1,000 requests/s a source unless `rates` says otherwise)."""
    app = stub_server.init_app(SOURCES, FIXTURES, synthetic)
    runner, root = await stub_server.start(app)
    clock = Clock(datetime(2026, 11, 25, 12, 0, tzinfo=UTC))
    settings = Settings(data_dir=tmp, upstream_root=root, sources=sources)
    store = SqliteStore(tmp / "alm.sqlite")
    await store.migrate()
    bus = MemoryBus()
    http = HttpSettings(
        retries=0, max_wait=0.5, rates={**{name: 1000.0 for name in SOURCES}, **(rates or {})}
    )
    pipeline = make_pipeline(settings, bus, store, clock=clock, rng=random.Random(7), http=http)
    try:
        async with pipeline.caller:
            yield Kit(pipeline, store, bus, app, clock)
    finally:
        await store.close()
        await runner.cleanup()


class ApiTestServer(TestServer):
    """aiohttp's TestServer serving through the API's own runner (JSON for parse errors)."""

    async def _make_runner(self, **kwargs: Any) -> BaseRunner:
        return ApiRunner(self.app, **kwargs)


@asynccontextmanager
async def api_client(
    kit: Kit, tmp: Path, admin: bool = False, settings: Settings | None = None
) -> AsyncIterator[TestClient[Any, Any]]:
    """An aiohttp test client of the API over the kit's store, bus and clock; with `admin`,
    every request carries an admin key (for tests of what the write routes do)."""
    settings = settings or Settings(data_dir=tmp, status_cache_seconds=0)
    context = api_context(settings, store=kit.store, bus=kit.bus, clock=kit.clock)
    app = init_app(replace(context, scheduling=kit.pipeline.scheduler.scheduling))
    headers = await kit.admin_headers() if admin else None
    async with TestClient(ApiTestServer(app), headers=headers) as client:
        yield client
