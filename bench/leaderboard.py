"""Benchmark: a source's leaderboard page (`top_works` with a keyset cursor) at the top of the
board and deep in it, over SQLite or Cassandra holding one state a work for N works with
skewed counts (many ties), and a group's leaders (services/api/leaders.py) over three
sources' boards. Prints p50 and p99 latency (ms) of each.
Not a test: it asserts nothing, it measures.

    .venv/bin/python bench/leaderboard.py --store sqlite --works 100000
    .venv/bin/python bench/leaderboard.py --store cassandra --works 20000   # ALM_CASSANDRA_*

The states are written with the store's `write_aggregates` (as the aggregator writes them);
the Cassandra run uses a keyspace of its own, dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

from stores import bench_store  # bench/stores.py: this folder is first on sys.path

from services.api.leaders import group_leaders
from services.core.aggregation import Aggregate, HistoryPoint, SourceState
from services.core.events import Status
from services.core.metrics import Group
from services.core.ports import Store
from services.fetchers.registry import catalog
from services.settings import Settings

SOURCES = ("crossref", "openalex", "europepmc")
PER_PAGE = 25
CHUNK = 2000
AT = datetime(2026, 11, 25, tzinfo=UTC)


async def _fill(store: Store, works: int) -> None:
    rng = random.Random(7)
    items = []
    for n in range(works):
        work_id = f"10.5555/bench.{n:08d}"
        for source in SOURCES:
            value = int(rng.paretovariate(1.1)) - 1
            metrics = {"citations": value}
            state = SourceState(work_id, source, metrics, AT, AT, Status.OK)
            point = HistoryPoint(work_id, source, date(2026, 11, 25), metrics)
            items.append(Aggregate(state, True, history=point))
        if len(items) >= CHUNK:
            await store.write_aggregates(items)
            items = []
    await store.write_aggregates(items)


async def _timed(call: object, repeat: int) -> tuple[float, float]:
    took = []
    for _ in range(repeat):
        start = time.perf_counter()
        await call()  # type: ignore[operator]
        took.append((time.perf_counter() - start) * 1000)
    took.sort()
    return statistics.median(took), took[min(len(took) - 1, int(len(took) * 0.99))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=("sqlite", "cassandra"), default="sqlite")
    parser.add_argument("--works", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    settings = Settings()
    with tempfile.TemporaryDirectory() as tmp:
        store = await bench_store(args.store, Path(tmp), settings)
        await store.migrate()
        try:
            start = time.perf_counter()
            await _fill(store, args.works)
            print(
                f"filled {args.works:,} works x {len(SOURCES)} sources in "
                f"{time.perf_counter() - start:.1f} s"
            )
            # a cursor deep in the board: the row at 90 % of the counted works
            deep_rows = await store.top_works("crossref", "citations", int(args.works * 0.9))
            value, work_id = deep_rows[-1][1], deep_rows[-1][0]
            first = await _timed(
                lambda: store.top_works("crossref", "citations", PER_PAGE + 1), args.repeat
            )
            deep = await _timed(
                lambda: store.top_works(
                    "crossref", "citations", PER_PAGE + 1, after=(value, work_id)
                ),
                args.repeat,
            )
            sources = catalog()
            leaders = await _timed(
                lambda: group_leaders(store, sources, Group.CITED, 5), max(5, args.repeat // 5)
            )
            print(f"board page 1           p50 {first[0]:7.2f} ms  p99 {first[1]:7.2f} ms")
            print(
                f"board page at 90 %     p50 {deep[0]:7.2f} ms  p99 {deep[1]:7.2f} ms"
                f"  (after value {value}, rank {len(deep_rows):,})"
            )
            print(f"cited leaders (top 5)  p50 {leaders[0]:7.2f} ms  p99 {leaders[1]:7.2f} ms")
        finally:
            if args.store == "cassandra":
                cql = await store.session()  # type: ignore[attr-defined]
                await cql.query(f"DROP KEYSPACE IF EXISTS {cql.keyspace}", keyspace=None)
            await store.close()


if __name__ == "__main__":
    asyncio.run(main())
