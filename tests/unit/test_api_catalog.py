"""The API is handed what it needs: a catalog of the sources (no fetcher plug-in loaded by
importing it), and `ids=` lists read in one batched store call in every API version."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from services.adapters.memory import MemoryBus
from services.adapters.sqlite import SqliteStore
from services.api.app import init_app
from services.bootstrap import api_context
from services.core.identifiers import Identifier
from services.core.metrics import Group
from services.core.works import Work
from services.fetchers.registry import SOURCES, catalog
from services.settings import Settings

PCBI = "10.1371/journal.pcbi.1000204"
PEERJ = "10.7717/peerj.4375"


def test_the_catalog_describes_every_source_as_its_plugin_does() -> None:
    sources = catalog()
    assert list(sources) == list(SOURCES)
    for name, plugin in SOURCES.items():
        info = sources[name]
        assert info.describe()["limits"] == {
            "requests_per_second": plugin.limits.requests_per_second,
            "concurrency": plugin.limits.concurrency,
        }
        assert (info.display_name, info.group, info.metrics) == (
            plugin.display_name,
            plugin.group,
            plugin.metrics,
        )
        assert sources.specs(name) == plugin.metrics
        assert sources.metric_groups()[name] == {m.name: m.group.value for m in plugin.metrics}
    assert sources.group("crossref") is Group.CITED


def test_a_source_no_longer_installed_is_shown_by_its_name() -> None:
    sources = catalog()
    assert "gone" not in sources
    assert sources.specs("gone") == ()
    assert sources.display_name("gone") == "gone"
    assert sources.group("gone") is None


def test_importing_the_api_loads_no_plugin_scheduler_or_aggregator() -> None:
    code = (
        "import sys, services.api.app\n"
        "bad = ('services.bootstrap', 'services.fetchers.registry', 'services.fetchers.sources',"
        " 'services.scheduler', 'services.aggregator')\n"
        "print(sorted(m for m in sys.modules if m.startswith(bad)))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


class Counting(SqliteStore):
    """Counts batched lookups, and single ones not made by a batched lookup."""

    batched = 0
    single = 0
    _inside = False

    async def find_works(self, idents: Sequence[Identifier]) -> dict[Identifier, Work]:
        self.batched += 1
        self._inside = True
        try:
            return await super().find_works(idents)
        finally:
            self._inside = False

    async def find_work(self, ident: Identifier) -> Work | None:
        if not self._inside:
            self.single += 1
        return await super().find_work(ident)


@pytest.fixture
async def counted(tmp_path: Path) -> AsyncIterator[tuple[Counting, TestClient[Any, Any]]]:
    store = Counting(tmp_path / "alm.sqlite")
    await store.migrate()
    await store.register([Work(PCBI, doi=PCBI), Work(PEERJ, doi=PEERJ)])
    settings = Settings(data_dir=tmp_path, status_cache_seconds=0)
    app = init_app(api_context(settings, store=store, bus=MemoryBus()))
    async with TestClient(TestServer(app)) as client:
        yield store, client
    await store.close()


@pytest.mark.parametrize(
    ("path", "works"),
    [
        (f"/api/v1/works?ids={PCBI},{PEERJ},10.9999/nope", lambda b: b["data"]),
        (f"/api/v5/articles?ids={PCBI},{PEERJ},10.9999/nope&info=summary", lambda b: b["data"]),
        (f"/api/v3/articles?ids={PCBI},{PEERJ},10.9999/nope", lambda b: b),
    ],
)
async def test_ids_are_looked_up_in_one_read(
    counted: tuple[Counting, TestClient[Any, Any]], path: str, works: Any
) -> None:
    store, client = counted
    resp = await client.get(path)
    assert resp.status == 200
    assert len(works(await resp.json())) == 2
    assert (store.batched, store.single) == (1, 0)


async def test_a_csv_export_of_ids_looks_them_up_in_one_read(
    counted: tuple[Counting, TestClient[Any, Any]],
) -> None:
    store, client = counted
    resp = await client.get(f"/api/v1/works.csv?ids={PCBI},{PEERJ},10.9999/nope")
    assert resp.status == 200
    await resp.read()
    assert (store.batched, store.single) == (1, 0)
