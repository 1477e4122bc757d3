"""Benchmark: the API's search (`GET /api/v1/works?q=`) at the first and at a deep page (by
cursor), one word matching every work, one matching a tenth, two words ANDed, the publisher
filter, and a sort over a narrow query (at most 1,000 matches ranked), over SQLite (FTS5) or
Cassandra (SAI on the terms set) holding N registered works. Prints p50 and p99 latency (ms).
Not a test: it asserts nothing, it measures.

    .venv/bin/python bench/search.py --store sqlite --works 100000
    .venv/bin/python bench/search.py --store cassandra --works 20000   # ALM_CASSANDRA_*

The deep page is reached by walking the cursors (`--deep` pages in); then the same deep
request is timed. The Cassandra run uses a keyspace of its own, dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from dataclasses import replace
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any
from urllib.parse import quote

from aiohttp.test_utils import TestClient, TestServer
from stores import bench_store  # bench/stores.py: this folder is first on sys.path

from services.adapters.memory.bus import MemoryBus
from services.api.app import init_app
from services.bootstrap import api_context
from services.core.ports import Store
from services.core.works import Work
from services.settings import Settings

CHUNK = 5000
WORDS = ["coral", "reef", "ocean", "kelp", "forest", "climate", "genome", "protein", "cell"]


async def _timed(client: TestClient[Any, Any], url: str, runs: int) -> tuple[float, float]:
    took = []
    for _ in range(runs):
        started = time.perf_counter()
        resp = await client.get(url)
        assert resp.status == 200, await resp.text()
        await resp.read()
        took.append((time.perf_counter() - started) * 1000)
    took.sort()
    return statistics.median(took), took[min(len(took) - 1, round(0.99 * (len(took) - 1)))]


def _title(i: int) -> str:
    return f"Study {i} of {WORDS[i % 9]} and {WORDS[(i // 9) % 9]} tenth{i % 10}"


async def _fill(store: Store, works: int) -> None:
    for start in range(0, works, CHUNK):
        await store.register(
            [
                Work(d, doi=d, title=_title(i), publisher="Bench", publisher_id=str(1 + i % 4))
                for i in range(start, min(works, start + CHUNK))
                for d in [f"10.5555/find.{i:09d}"]
            ]
        )


async def _deep(client: TestClient[Any, Any], query: str, pages: int) -> str:
    """The cursor of page `pages` of `query` (walked), or '*' if it ends before."""
    cursor = "*"
    for _ in range(pages):
        body = await (await client.get(f"/api/v1/works?{query}&cursor={quote(cursor)}")).json()
        if body["next_cursor"] is None:
            break
        cursor = body["next_cursor"]
    return cursor


async def bench(kind: str, works: int, per_page: int, runs: int, deep: int, env: Settings) -> None:
    with TemporaryDirectory() as tmp:
        store = await bench_store(kind, Path(tmp), env)
        try:
            await store.migrate()
            started = time.perf_counter()
            await _fill(store, works)
            filled = time.perf_counter() - started
            app = init_app(api_context(env.with_(data_dir=Path(tmp)), store, MemoryBus()))
            queries = {
                "one word, all match": "q=study",
                "one word, a tenth": "q=tenth3",
                "two words": "q=coral+reef",
                "publisher filter": "q=study&publisher_id=2",
            }
            print(f"store={kind} works={works:,} per_page={per_page} requests={runs} each")
            print(f"(filled in {filled:.0f} s)")
            async with TestClient(TestServer(app)) as client:
                await _timed(client, f"/api/v1/works?q=study&per_page={per_page}", 3)
                for name, query in queries.items():
                    query += f"&per_page={per_page}"
                    first = await _timed(client, f"/api/v1/works?{query}&cursor=*", runs)
                    cursor = quote(await _deep(client, query, deep))
                    far = await _timed(client, f"/api/v1/works?{query}&cursor={cursor}", runs)
                    print(
                        f"{name:22} first p50 {first[0]:7.1f} p99 {first[1]:7.1f} ms   "
                        f"page {deep} p50 {far[0]:7.1f} p99 {far[1]:7.1f} ms"
                    )
                narrow = f"q=tenth3+coral+reef&sort=crossref&per_page={per_page}"
                count = min(works // 810 + 1, 1000)
                p50, p99 = await _timed(client, f"/api/v1/works?{narrow}", runs)
                print(
                    f"{'sorted (~' + str(count) + ' matches)':22} p50 {p50:7.1f} p99 {p99:7.1f} ms"
                )
        finally:
            if kind == "cassandra":
                from services.adapters.cassandra import CassandraStore

                assert isinstance(store, CassandraStore)
                await store._cql.query(f"DROP KEYSPACE IF EXISTS {store.keyspace}", keyspace=None)
            await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", choices=("sqlite", "cassandra"), default="sqlite")
    parser.add_argument("--works", type=int, default=100_000)
    parser.add_argument("--per-page", type=int, default=50)
    parser.add_argument("--requests", type=int, default=30, help="per case")
    parser.add_argument("--deep", type=int, default=100, help="pages walked to the deep page")
    args = parser.parse_args()
    env = Settings.from_env()  # no quota: the bench sends more than a client may a minute
    settings = env.with_(status_cache_seconds=60, access=replace(env.access, rate_anonymous=None))
    asyncio.run(bench(args.store, args.works, args.per_page, args.requests, args.deep, settings))


if __name__ == "__main__":
    main()
