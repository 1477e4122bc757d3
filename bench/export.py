"""Benchmark: the CSV export (`GET /api/v1/works.csv`) over SQLite holding N works with two
refreshed sources each (three metric rows a work). Prints, per size, the rows and megabytes
sent, the time and rows per second of a whole download, and the peak of the memory Python
allocated during a second download (tracemalloc, which slows it: timed apart). Flat peaks across
sizes are what the chunked walk promises. Not a test: it asserts nothing, it measures.

    .venv/bin/python bench/export.py --works 10000 40000 --runs 3

The requests go through the whole aiohttp application in this process (no network between);
the client reads the body as it comes, 64 KiB at a time.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from services.adapters.memory.bus import MemoryBus
from services.adapters.sqlite import SqliteStore
from services.api.app import init_app
from services.bootstrap import api_context
from services.core.aggregation import Aggregate, SourceState
from services.core.events import Status
from services.core.works import Work
from services.settings import Settings

FILL = 5000
AT = datetime(2026, 11, 29, 12, tzinfo=UTC)


async def _fill(store: SqliteStore, works: int) -> None:
    for start in range(0, works, FILL):
        part = [
            Work(f"10.5555/csv.{i:09d}", doi=f"10.5555/csv.{i:09d}")
            for i in range(start, min(works, start + FILL))
        ]
        await store.register(part)
        states = [
            s
            for w in part
            for s in (
                SourceState(w.work_id, "crossref", {"citations": 3}, AT, AT, Status.OK),
                SourceState(w.work_id, "datacite", {"views": 9, "downloads": 1}, AT, AT, Status.OK),
            )
        ]
        await store.write_aggregates([Aggregate(s, True) for s in states])


async def _download(client: TestClient[Any, Any]) -> tuple[int, int]:
    """Bytes and lines of one whole export."""
    resp = await client.get("/api/v1/works.csv")
    assert resp.status == 200, await resp.text()
    size = lines = 0
    async for data in resp.content.iter_chunked(65536):
        size += len(data)
        lines += data.count(b"\n")
    return size, lines


async def _measure(works: int, runs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "alm.sqlite")
        await store.migrate()
        await _fill(store, works)
        app = init_app(
            api_context(Settings(data_dir=Path(tmp), status_cache_seconds=0), store, MemoryBus())
        )
        async with TestClient(TestServer(app)) as client:
            times = []
            for _ in range(runs):
                started = time.perf_counter()
                size, lines = await _download(client)
                times.append(time.perf_counter() - started)
            tracemalloc.start()
            tracemalloc.reset_peak()
            base = tracemalloc.get_traced_memory()[0]
            await _download(client)
            peak = tracemalloc.get_traced_memory()[1] - base
            tracemalloc.stop()
        await store.close()
    took = statistics.median(times)
    print(
        f"works {works:>8,}  rows {lines - 1:>9,}  {size / 2**20:7.1f} MiB  "
        f"{took:6.2f} s (median of {runs})  {(lines - 1) / took:>9,.0f} rows/s  "
        f"peak allocated {peak / 2**20:5.1f} MiB"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--works", type=int, nargs="+", default=[10_000, 40_000])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    for works in args.works:
        asyncio.run(_measure(works, args.runs))


if __name__ == "__main__":
    main()
