"""Shared by the tests of the change channels: an API over a SQLite store and an in-process bus
whose change topic is retained, and changes to publish on it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from services.adapters.memory.bus import MemoryBus
from services.adapters.sqlite import SqliteStore
from services.api.app import init_app
from services.bootstrap import api_context
from services.core.events import TOPIC_CHANGED, MetricChanged
from services.notify_settings import NotifySettings
from services.settings import Settings
from tests.unit.pipeline_kit import admin_headers

AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def change(
    n: int,
    work: str | None = None,
    source: str = "crossref",
    delta: dict[str, int] | None = None,
    publisher: str | None = None,
) -> MetricChanged:
    """Change number `n` (its time is AT + n seconds, so every n is a distinct change)."""
    delta = delta or {"citations": 1}
    current = {k: 10 + v for k, v in delta.items()}
    previous = {k: 10 for k in delta}
    return MetricChanged(
        work or f"10.5555/w{n}",
        source,
        previous,
        current,
        delta,
        AT + timedelta(seconds=n),
        publisher,
    )


async def publish(bus: MemoryBus, *changes: MetricChanged) -> None:
    """Publish changes on alm.metrics.changed as the aggregator does (one a record)."""
    await bus.publish(TOPIC_CHANGED, [(c.work_id, c.to_dict()) for c in changes])


@dataclass
class Api:
    """The API's test client with its bus and store."""

    client: TestClient[Any, Any]
    bus: MemoryBus
    store: SqliteStore
    settings: Settings
    admin: dict[str, str]  # headers carrying an admin key (the client's own unless admin=False)


@asynccontextmanager
async def api(
    tmp: Path,
    window: int = 10_000,
    store_timeout: float = 3.0,
    admin: bool = True,
    **notify: Any,
) -> AsyncIterator[Api]:
    """An API over a fresh SQLite store and an in-process bus keeping `window` changes (each
    request's deadline: 3 x `store_timeout`); its client sends an admin key unless `admin` is
    False (the webhook routes need one)."""
    store = SqliteStore(tmp / "alm.sqlite")
    await store.migrate()
    headers = await admin_headers(store)
    bus = MemoryBus(window=window, retained=(TOPIC_CHANGED,))
    settings = Settings(data_dir=tmp, status_cache_seconds=0, api_store_timeout=store_timeout)
    settings = replace(settings, notify=replace(NotifySettings(), **notify))
    try:
        app = init_app(api_context(settings, store=store, bus=bus))
        async with TestClient(TestServer(app), headers=headers if admin else None) as client:
            yield Api(client, bus, store, settings, headers)
    finally:
        await store.close()
