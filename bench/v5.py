"""Benchmark: ALM v5's listing of every work (`/api/v5/articles` without `ids` or `source_id`:
newest first, every installed source per work, with its history), over a SQLite store holding
N works, each with a state (and a few daily snapshots) from every source. Prints p50 and p99
latency (ms) per request of the first page (default `info`, and `info=summary`) and of a deep
page. Not a test: it asserts nothing, it measures.

    .venv/bin/python bench/v5.py --works 2000 --requests 200
    .venv/bin/python bench/v5.py --profile 50      # cProfile of 50 first-page requests
    .venv/bin/python bench/v5.py --dump out.txt    # the bodies, to compare two versions

The requests go through the whole aiohttp application in this process (no network).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import statistics
import tempfile
import time
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from services.adapters.memory.bus import MemoryBus
from services.adapters.sqlite import SqliteStore
from services.aggregator.service import fold
from services.api.app import init_app
from services.bootstrap import api_context
from services.core.events import Observation, Status
from services.core.works import Work
from services.fetchers.registry import catalog as source_catalog
from services.settings import Settings

CHUNK = 500
SNAPSHOT_DAYS = (400, 30, 2)  # days before now of each source's retrievals (totals growing)
NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


async def _fill(store: SqliteStore, works: int) -> None:
    """N works dated over 36 years (a tenth undated), each with every source's state."""
    catalog = source_catalog()
    ids = [f"10.5555/v5.{i:07d}" for i in range(works)]
    for start in range(0, works, CHUNK):
        part = [
            Work(d, doi=d, title=d, issued=_issued(i))
            for i, d in enumerate(ids[start : start + CHUNK], start)
        ]
        await store.register(part)
        observations = [
            Observation(
                w.work_id,
                name,
                NOW - timedelta(days=ago),
                Status.OK,
                {spec.name: (n + 1) * (3 + i % 7) for i, spec in enumerate(catalog.specs(name))},
            )
            for w in part
            for name in catalog
            for n, ago in enumerate(SNAPSHOT_DAYS)
        ]
        keys = sorted({(o.work_id, o.source) for o in observations})
        await store.write_aggregates(fold(observations, await store.states(keys)))


def _issued(i: int) -> date | None:
    return None if i % 10 == 0 else date(1990 + i % 36, 1 + i % 12, 1 + i % 28)


async def _timed(client: TestClient[Any, Any], url: str, runs: int) -> tuple[float, float, float]:
    """p50 and p99 of the wall time, and the p50 of the CPU time this process spent (less
    sensitive to a loaded machine), in ms."""
    took, cpu = [], []
    for _ in range(runs):
        started, started_cpu = time.perf_counter(), time.process_time()
        resp = await client.get(url)
        assert resp.status == 200, await resp.text()
        await resp.read()
        took.append((time.perf_counter() - started) * 1000)
        cpu.append((time.process_time() - started_cpu) * 1000)
    took.sort()
    p99 = took[min(len(took) - 1, round(0.99 * (len(took) - 1)))]
    return statistics.median(took), p99, statistics.median(cpu)


async def bench(
    works: int, per_page: int, runs: int, profile: int, dump: bool, settings: Settings
) -> bytes:
    """The bodies of a few answers with `dump`, else b"" (the figures are printed)."""
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp) / "alm.sqlite")
        try:
            await store.migrate()
            started = time.perf_counter()
            await _fill(store, works)
            filled = time.perf_counter() - started
            ctx = api_context(
                settings.with_(data_dir=Path(tmp)), store, MemoryBus(), clock=lambda: NOW
            )
            app = init_app(ctx)
            deep = max(1, works // per_page)
            cases = {
                "page 1": f"page=1&per_page={per_page}",
                "page 1, info=summary": f"page=1&per_page={per_page}&info=summary",
                f"page {deep}": f"page={deep}&per_page={per_page}",
            }
            print(f"store=sqlite works={works:,} sources={len(source_catalog())} ", end="")
            print(f"per_page={per_page} requests={runs} each (filled in {filled:.0f} s)")
            async with TestClient(TestServer(app)) as client:
                await _timed(client, f"/api/v5/articles?{cases['page 1']}", 5)  # warm up
                if dump:
                    bodies = b""
                    for query in (*cases.values(), "info=detail&per_page=7&page=3"):
                        resp = await client.get(f"/api/v5/articles?{query}")
                        bodies += query.encode() + b"\n" + await resp.read() + b"\n"
                    return bodies
                if profile:
                    prof = cProfile.Profile()
                    prof.enable()
                    await _timed(client, f"/api/v5/articles?{cases['page 1']}", profile)
                    prof.disable()
                    pstats.Stats(prof).sort_stats("cumulative").print_stats(40)
                    return b""
                for name, query in cases.items():
                    p50, p99, cpu = await _timed(client, f"/api/v5/articles?{query}", runs)
                    print(
                        f"{name:22} p50 {p50:8.2f} ms   p99 {p99:8.2f} ms   cpu p50 {cpu:8.2f} ms"
                    )
                return b""
        finally:
            await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--works", type=int, default=2000)
    parser.add_argument("--per-page", type=int, default=50)
    parser.add_argument("--requests", type=int, default=200, help="per case")
    parser.add_argument("--profile", type=int, default=0, help="profile N requests instead")
    parser.add_argument("--dump", default="", help="write the answers' bodies to this file")
    args = parser.parse_args()
    env = Settings.from_env()  # no quota: the bench sends more than a client may a minute
    settings = env.with_(status_cache_seconds=60, access=replace(env.access, rate_anonymous=None))
    bodies = asyncio.run(
        bench(args.works, args.per_page, args.requests, args.profile, bool(args.dump), settings)
    )
    if args.dump:
        Path(args.dump).write_bytes(bodies)


if __name__ == "__main__":
    main()
