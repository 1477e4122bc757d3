"""The failed-refresh listing's page reads (`GET /api/v1/failures`) as the listing grows:
the first page and the last page, newest first and by work id, over SQLite
and Cassandra (a keyspace of its own on the server given, dropped at the end). Keyset pages read
O(sources x page) rows, so a page should cost the same with 1,000 failures as with 20,000.

    PYTHONPATH=. .venv/bin/python bench/failures.py --failures 1000 20000 --store sqlite cassandra

Prints the median of `--repeat` reads of each page, in milliseconds.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from services.aggregator.service import fold
from services.core.events import FetchError, Observation, Status
from services.core.failed_refreshes import FailureOrder, FailureQuery, cursor_of
from services.core.ports import Store

T0 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SOURCES = ("crossref", "openalex", "europepmc")


async def fill(store: Store, count: int) -> None:
    """`count` failed refreshes over SOURCES, each at its own time."""
    error = FetchError("http", "upstream answered 503", True, 503)
    for start in range(0, count, 500):
        batch = [
            Observation(
                f"10.5555/bench.{n:06d}",
                SOURCES[n % len(SOURCES)],
                T0 + timedelta(seconds=n),
                Status.ERROR,
                error=error,
            )
            for n in range(start, min(count, start + 500))
        ]
        keys = [(o.work_id, o.source) for o in batch]
        await store.write_aggregates(fold(batch, await store.states(keys)))


async def timed(store: Store, query: FailureQuery, repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        began = time.perf_counter()
        page = await store.failed_refreshes(query)
        samples.append((time.perf_counter() - began) * 1000)
        assert len(page) == query.limit, len(page)
    return statistics.median(samples)


async def measure(store: Store, count: int, per_page: int, repeat: int) -> list[str]:
    await fill(store, count)
    out = []
    for order in FailureOrder:
        first = await timed(store, FailureQuery(order, None, per_page), repeat)
        # the cursor of the row before the last page: what following `next` to the end reaches
        everything = await store.failed_refreshes(FailureQuery(order, None, count))
        after = cursor_of(everything[-per_page - 1], order)
        last = await timed(store, FailureQuery(order, None, per_page, after), repeat)
        one = await timed(store, FailureQuery(order, "crossref", per_page), repeat)
        out.append(
            f"{count:>7} failures  {order.value:<6}  first page {first:7.2f} ms"
            f"  last page {last:7.2f} ms  one source {one:7.2f} ms"
        )
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--failures", type=int, nargs="+", default=[1000, 20000])
    parser.add_argument("--store", nargs="+", default=["sqlite"], choices=["sqlite", "cassandra"])
    parser.add_argument("--per-page", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--cassandra", default="127.0.0.1:9042")
    args = parser.parse_args()
    for kind in args.store:
        for count in args.failures:
            store: Store
            if kind == "sqlite":
                from services.adapters.sqlite import SqliteStore

                folder = tempfile.mkdtemp(prefix="alm-bench-")
                store = SqliteStore(Path(folder) / "alm.sqlite")
            else:
                from services.adapters.cassandra import CassandraStore

                host, port = args.cassandra.rsplit(":", 1)
                keyspace = f"alm_bench_f{secrets.token_hex(3)}"
                store = CassandraStore([host], int(port), keyspace)
            await store.migrate()
            try:
                for line in await measure(store, count, args.per_page, args.repeat):
                    print(f"{kind:<9} {line}", flush=True)
            finally:
                if kind == "cassandra":
                    cql = await store.session()  # type: ignore[attr-defined]
                    await cql.query(f"DROP KEYSPACE IF EXISTS {keyspace}", keyspace=None)
                await store.close()


if __name__ == "__main__":
    asyncio.run(main())
