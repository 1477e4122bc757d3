"""Benchmark: registering N synthetic works, each stored with its due entries (registration and
scheduling are one write), into SQLite or Cassandra; then registering them again (every one
known: the repair pass that restores a missing entry). Prints works/s and due entries written.
Not a test: it asserts nothing, it measures.

    .venv/bin/python bench/registration.py --store sqlite --works 100000
    .venv/bin/python bench/registration.py --store cassandra --works 20000   # ALM_CASSANDRA_*

The Cassandra run uses a keyspace of its own (dropped at the end). Sources: those `alm run`
uses without credentials (11), or --sources.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from stores import bench_store  # bench/stores.py: this folder is first on sys.path

from services.adapters.memory.bus import MemoryBus
from services.bootstrap import make_scheduling
from services.core.ports import Store
from services.registration import CHUNK, register
from services.settings import Settings


async def _pass(store: Store, ids: list[str], settings: Settings) -> float:
    bus = MemoryBus(window=0)
    scheduling = make_scheduling(settings)
    started = time.perf_counter()
    for i in range(0, len(ids), CHUNK):
        await register(ids[i : i + CHUNK], store, bus, datetime.now(UTC), scheduling)
    return time.perf_counter() - started


async def bench(kind: str, works: int, settings: Settings) -> None:
    ids = [f"10.5555/reg.{secrets.token_hex(2)}.{i}" for i in range(works)]
    sources = len(make_scheduling(settings).sources)
    with tempfile.TemporaryDirectory() as tmp:
        store = await bench_store(kind, Path(tmp), settings)
        try:
            await store.migrate()
            new = await _pass(store, ids, settings)
            known = await _pass(store, ids, settings)
        finally:
            if kind == "cassandra":
                from services.adapters.cassandra import CassandraStore

                assert isinstance(store, CassandraStore)
                await store._cql.query(f"DROP KEYSPACE IF EXISTS {store.keyspace}", keyspace=None)
            await store.close()
    print(f"store={kind} works={works:,} sources={sources} ({works * sources:,} due entries)")
    print(f"new works:   {works / new:,.0f} works/s ({works * sources / new:,.0f} entries/s)")
    print(f"known works: {works / known:,.0f} works/s (each entry checked, none missing)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", choices=("sqlite", "cassandra"), default="sqlite")
    parser.add_argument("--works", type=int, default=50_000)
    parser.add_argument("--sources", default="", help="comma-separated (default: all usable)")
    args = parser.parse_args()
    settings = Settings.from_env()
    if args.sources:
        settings = settings.with_(sources=tuple(args.sources.split(",")))
    asyncio.run(bench(args.store, args.works, settings))


if __name__ == "__main__":
    main()
