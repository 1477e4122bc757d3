"""Benchmark: the API's work listing at the first and at a deep page, by page number (an
offset: `page=N`) and by cursor (a keyset page: `cursor=`), all works and one publisher's, and
ALM v5's listing newest first (`/api/v5/articles?info=summary`, by page number), over SQLite or
Cassandra holding N registered works (dated over 36 years, a tenth undated). Prints p50 and p99
latency (ms) of each.
With `--summary`, instead: the per-source status counts (`source_summary`, what /sources and
the summary views read) over N works with a state from each of `--sources` sources (one in ten
failed), from the summary rows, against a full read of the states (what it did before
migration 016): p50 and p99 of each.
Not a test: it asserts nothing, it measures.

    .venv/bin/python bench/listing.py --store sqlite --works 100000
    .venv/bin/python bench/listing.py --store cassandra --works 50000   # ALM_CASSANDRA_*
    .venv/bin/python bench/listing.py --store sqlite --works 100000 --summary

The works are written with the store's `register` (no due entries: the listing does not read
them); the Cassandra run uses a keyspace of its own, dropped at the end. The requests go
through the whole aiohttp application in this process (no network in between).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from aiohttp.test_utils import TestClient, TestServer
from stores import bench_store  # bench/stores.py: this folder is first on sys.path

from services.adapters.memory.bus import MemoryBus
from services.adapters.sqlite import SqliteStore
from services.api.app import init_app
from services.bootstrap import api_context, make_publishers
from services.core.aggregation import aggregate
from services.core.events import FetchError, Observation, Status
from services.core.ports import Store
from services.core.works import Work
from services.settings import Settings

MEMBER = "340"
CHUNK = 5000


async def _fill(store: Store, works: int) -> list[str]:
    """N works, every other one of publisher MEMBER (indexed); their ids in id order."""
    publishers = make_publishers(store)
    ids = [f"10.5555/list.{i:09d}" for i in range(works)]
    for start in range(0, works, CHUNK):
        part = [
            Work(d, doi=d, title=d, issued=_issued(i), publisher_id=MEMBER if i % 2 == 0 else None)
            for i, d in enumerate(ids[start : start + CHUNK], start)
        ]
        await store.register(part)
        await publishers.index_publisher_works(
            [(MEMBER, w.work_id) for w in part if w.publisher_id]
        )
    return ids


def _issued(i: int) -> date | None:
    return None if i % 10 == 0 else date(1990 + i % 36, 1 + i % 12, 1 + i % 28)


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


async def bench(kind: str, works: int, per_page: int, runs: int, settings: Settings) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = await bench_store(kind, Path(tmp), settings)
        try:
            await store.migrate()
            started = time.perf_counter()
            ids = await _fill(store, works)
            filled = time.perf_counter() - started
            app = init_app(api_context(settings.with_(data_dir=Path(tmp)), store, MemoryBus()))
            mine = ids[::2]
            deep_page = works // per_page  # the last full page
            deep_mine = len(mine) // per_page
            cases = {
                "all, page 1": f"page=1&per_page={per_page}",
                f"all, page {deep_page:,}": f"page={deep_page}&per_page={per_page}",
                "all, cursor first": f"cursor=*&per_page={per_page}",
                "all, cursor deep": f"cursor={quote(ids[-per_page - 1], safe='')}"
                f"&per_page={per_page}",
                "publisher, page 1": f"publisher_id={MEMBER}&page=1&per_page={per_page}",
                f"publisher, page {deep_mine:,}": f"publisher_id={MEMBER}&page={deep_mine}"
                f"&per_page={per_page}",
                "publisher, cursor first": f"publisher_id={MEMBER}&cursor=*&per_page={per_page}",
                "publisher, cursor deep": f"publisher_id={MEMBER}"
                f"&cursor={quote(mine[-per_page - 1], safe='')}&per_page={per_page}",
                "v5 newest, page 1": f"v5:page=1&per_page={per_page}",
                f"v5 newest, page {deep_page // 10:,}": f"v5:page={deep_page // 10}"
                f"&per_page={per_page}",
                f"v5 newest, page {deep_page:,}": f"v5:page={deep_page}&per_page={per_page}",
            }
            print(f"store={kind} works={works:,} per_page={per_page} requests={runs} each")
            print(f"(filled in {filled:.0f} s)")
            async with TestClient(TestServer(app)) as client:
                await _timed(client, f"/api/v1/works?{cases['all, page 1']}", 3)  # warm up
                for name, query in cases.items():
                    v5 = query.startswith("v5:")
                    url = (
                        f"/api/v5/articles?info=summary&{query[3:]}"
                        if v5
                        else f"/api/v1/works?{query}"
                    )
                    p50, p99 = await _timed(client, url, runs)
                    print(f"{name:28} p50 {p50:8.1f} ms   p99 {p99:8.1f} ms")
        finally:
            if kind == "cassandra":
                from services.adapters.cassandra import CassandraStore

                assert isinstance(store, CassandraStore)
                await store._cql.query(f"DROP KEYSPACE IF EXISTS {store.keyspace}", keyspace=None)
            await store.close()


async def _fill_states(store: Store, works: int, sources: int) -> None:
    """A state of each of N works from each source, one in ten an error (the aggregator's
    writes: the summary rows move with them)."""
    at = datetime(2026, 11, 1, tzinfo=UTC)
    failed = FetchError("http", "down")
    for start in range(0, works, CHUNK):
        for s in range(sources):
            items = [
                aggregate(
                    Observation(
                        f"10.5555/sum.{i:09d}", f"source{s}", at, Status.ERROR, {}, error=failed
                    )
                    if i % 10 == 0
                    else Observation(f"10.5555/sum.{i:09d}", f"source{s}", at, Status.OK, {"n": i}),
                    None,
                )
                for i in range(start, min(works, start + CHUNK))
            ]
            await store.write_aggregates(items)


async def _full_read(store: Store) -> dict[str, dict[str, int]]:
    """The counts from every state (what `source_summary` read before the summary rows)."""
    out: dict[str, dict[str, int]] = {}
    if isinstance(store, SqliteStore):
        rows = await store.run(
            lambda conn: conn.execute(
                "SELECT source, count(*), sum(json_extract(state, '$.status') = 'error')"
                " FROM source_totals GROUP BY source"
            ).fetchall()
        )
        return {s: {"works": int(w), "errors": int(e or 0)} for s, w, e in rows}
    cql = await store.session()  # type: ignore[attr-defined]
    for row in await cql.query("SELECT source, status FROM source_totals"):
        entry = out.setdefault(row.source, {"works": 0, "errors": 0})
        entry["works"] += 1
        entry["errors"] += row.status == Status.ERROR.value
    return out


async def _timed_call(call: Callable[[], Awaitable[object]], runs: int) -> tuple[float, float]:
    took = []
    for _ in range(runs):
        started = time.perf_counter()
        await call()
        took.append((time.perf_counter() - started) * 1000)
    took.sort()
    return statistics.median(took), took[min(len(took) - 1, round(0.99 * (len(took) - 1)))]


async def bench_summary(kind: str, works: int, sources: int, runs: int, settings: Settings) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = await bench_store(kind, Path(tmp), settings)
        try:
            await store.migrate()
            started = time.perf_counter()
            await _fill_states(store, works, sources)
            filled = time.perf_counter() - started
            print(f"store={kind} works={works:,} sources={sources} calls={runs} each")
            print(f"(states written in {filled:.0f} s)")
            rows, full = await store.source_summary(), await _full_read(store)
            print(f"summary rows == full read: {rows == full}")
            for name, call in (
                ("summary rows", store.source_summary),
                ("full read", lambda: _full_read(store)),
            ):
                p50, p99 = await _timed_call(call, runs)
                print(f"{name:28} p50 {p50:8.1f} ms   p99 {p99:8.1f} ms")
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
    parser.add_argument("--requests", type=int, default=50, help="per case")
    parser.add_argument("--summary", action="store_true", help="time source_summary instead")
    parser.add_argument("--sources", type=int, default=2, help="with --summary")
    args = parser.parse_args()
    env = Settings.from_env()  # no quota: the bench sends more than a client may a minute
    settings = env.with_(status_cache_seconds=60, access=replace(env.access, rate_anonymous=None))
    if args.summary:
        asyncio.run(bench_summary(args.store, args.works, args.sources, args.requests, settings))
    else:
        asyncio.run(bench(args.store, args.works, args.per_page, args.requests, settings))


if __name__ == "__main__":
    main()
