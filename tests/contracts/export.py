"""`GET /api/v1/works.csv` over each store adapter: the same works and states give the same CSV,
every row once across chunk boundaries, with the publisher, source and metric filters.

tests/unit/test_export_store.py runs it over SQLite (it needs nothing),
tests/integration/test_export_store.py over Cassandra (the shared server, a keyspace of the
test's own: the export walks every work of its keyspace); each gives the `store` fixture,
holding what `fill` writes."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from services.adapters.memory.bus import MemoryBus
from services.api.app import init_app
from services.api.csv_export import COLUMNS
from services.api.state import EXPORT_CHUNK
from services.bootstrap import api_context, make_publishers
from services.core.aggregation import Aggregate, SourceState
from services.core.events import Status
from services.core.ports import Store
from services.core.works import Work
from services.settings import Settings
from tests.unit.pipeline_kit import ApiTestServer

AT = datetime(2026, 11, 29, 12, 0, 3, tzinfo=UTC)
WORKS = 41  # with chunks of 8: six chunks, the last short
CHUNK = 8


def _doi(n: int) -> str:
    return f"10.5555/csv.{n:03d}"


def _works() -> list[Work]:
    """Every third work is publisher 340's; work 0 has a PMID and a DOI with a comma."""
    out = [
        Work(_doi(n), doi=_doi(n), publisher_id="340" if n % 3 == 0 else None)
        for n in range(1, WORKS)
    ]
    odd = '10.5555/csv.000,"x"'
    return [Work(odd, doi=odd, pmid="18974831", publisher_id="340"), *out]


def _states(work: Work, n: int) -> list[SourceState]:
    """Two refreshed sources (n = 0: a zero), and on even works a source that only failed."""
    states = [
        SourceState(work.work_id, "crossref", {"citations": n}, AT, AT, Status.OK),
        SourceState(
            work.work_id, "counter", {"requests": 10 * n, "investigations": n}, AT, AT, Status.OK
        ),
    ]
    if n % 2 == 0:
        states.append(SourceState(work.work_id, "openalex", {}, None, AT, Status.ERROR, "timeout"))
    return states


async def fill(db: Store) -> None:
    """Write exactly the works of `_works()` and their states into a migrated `db`."""
    works = _works()
    await db.register(works)
    # what a publisher import leaves: the works indexed under their publisher (Cassandra's
    # index is a table of its own, written by the import, not by registration)
    listed = [(w.publisher_id, w.work_id) for w in works if w.publisher_id is not None]
    await make_publishers(db).index_publisher_works(listed)
    await db.write_aggregates(
        [Aggregate(s, True) for n, w in enumerate(works) for s in _states(w, n)]
    )


@pytest.fixture
async def client(store: Store, tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    app = init_app(
        api_context(Settings(data_dir=tmp_path, status_cache_seconds=0), store, MemoryBus())
    )
    app[EXPORT_CHUNK] = CHUNK
    async with TestClient(ApiTestServer(app)) as c:
        yield c


def _expected(publisher: str | None = None, source: str | None = None) -> list[list[str]]:
    rows = []
    for n, work in sorted(enumerate(_works()), key=lambda p: p[1].work_id):
        if publisher is not None and work.publisher_id != publisher:
            continue
        for state in sorted(_states(work, n), key=lambda s: s.source):
            if state.retrieved_at is None or source not in (None, state.source):
                continue
            for metric, value in sorted(state.metrics.items()):
                ids = [work.work_id, work.doi or "", work.pmid or "", work.pmcid or ""]
                rows.append([*ids, state.source, metric, str(value), "2026-11-29T12:00:03Z"])
    return rows


async def _export(client: TestClient[Any, Any], query: str = "") -> list[list[str]]:
    resp = await client.get("/api/v1/works.csv" + query)
    assert resp.status == 200, await resp.text()
    rows = list(csv.reader(io.StringIO(await resp.text(), newline="")))
    assert rows[0] == list(COLUMNS)
    return rows[1:]


async def test_every_stored_metric_once_in_work_id_order(client: TestClient[Any, Any]) -> None:
    """All works, walked in chunks of 8 through the adapter's keyset pages: each stored metric
    exactly once, in work-id order, quoted where a DOI needs it."""
    rows = await _export(client)
    assert rows == _expected()
    assert len(rows) == 3 * WORKS


@pytest.mark.parametrize(
    ("query", "publisher", "source"),
    [
        ("?publisher_id=340", "340", None),
        ("?publisher_id=340&source=counter", "340", "counter"),
        ("?source=crossref", None, "crossref"),
    ],
)
async def test_filters_over_the_adapter(
    client: TestClient[Any, Any], query: str, publisher: str | None, source: str | None
) -> None:
    """The publisher's works through the adapter's publisher index, one source's rows."""
    rows = await _export(client, query)
    assert rows == _expected(publisher, source)
    assert rows
