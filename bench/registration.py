"""Benchmark: registering N synthetic works into SQLite or Cassandra, then registering them
again (every one known). Prints works/s. Not a test: it asserts nothing, it measures.

- default: registration and scheduling in one write (each work stored with its due entries,
  what the API's POST does); the second pass is the repair pass that restores a missing entry;
- `--intake`: bulk registration (`alm works import`, `alm publishers import`): each work stored
  with one intake row; then the scheduler's intake (`take_intake` with the real scheduling,
  as its tick does) writes their due entries, timed on its own; with the garbage collector
  `alm works import` has (services/gctune.py; ALM_GC_THRESHOLD=python for CPython's).

    .venv/bin/python bench/registration.py --store sqlite --works 100000 [--intake]
    .venv/bin/python bench/registration.py --store cassandra --works 20000 [--intake]

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

from services import gctune
from services.adapters.memory.bus import MemoryBus
from services.bootstrap import make_scheduling
from services.core.identifiers import parse_identifier
from services.core.ports import Store
from services.registration import BULK_CHUNK, CHUNK, register_parsed
from services.settings import Settings


async def _pass(store: Store, ids: list[str], settings: Settings, intake: bool) -> float:
    bus = MemoryBus(window=0)
    scheduling = make_scheduling(settings)
    size = BULK_CHUNK if intake else CHUNK  # what `alm works import` gives a call
    started = time.perf_counter()
    for i in range(0, len(ids), size):
        parsed = [(raw, parse_identifier(raw), None) for raw in ids[i : i + size]]
        await register_parsed(parsed, store, bus, datetime.now(UTC), scheduling, intake)
    return time.perf_counter() - started


async def _take(store: Store, settings: Settings) -> tuple[float, int]:
    """The scheduler's intake until it is empty: seconds, works taken."""
    scheduling = make_scheduling(settings)
    started, taken = time.perf_counter(), 0
    while n := await store.take_intake(
        50_000, lambda w: scheduling.per_source(w, datetime.now(UTC))
    ):
        taken += n
    return time.perf_counter() - started, taken


async def bench(kind: str, works: int, settings: Settings, intake: bool) -> None:
    ids = [f"10.5555/reg.{secrets.token_hex(2)}.{i}" for i in range(works)]
    sources = len(make_scheduling(settings).sources)
    with tempfile.TemporaryDirectory() as tmp:
        store = await bench_store(kind, Path(tmp), settings)
        try:
            await store.migrate()
            new = await _pass(store, ids, settings, intake)
            if intake:
                took, taken = await _take(store, settings)
            known = await _pass(store, ids, settings, intake)
            if intake:
                await _take(store, settings)
        finally:
            if kind == "cassandra":
                from services.adapters.cassandra import CassandraStore

                assert isinstance(store, CassandraStore)
                # DDL's own timeout (120 s): a busy node takes longer than a request's 20 s
                await store._cql.schema_change([f"DROP KEYSPACE IF EXISTS {store.keyspace}"])
            await store.close()
    mode = "bulk (intake)" if intake else "with due entries"
    print(f"store={kind} works={works:,} sources={sources} ({works * sources:,} due entries)")
    if intake:
        print(f"new works, {mode}: {works / new:,.0f} works/s")
        print(
            f"scheduler intake: {taken:,} works in {took:.1f} s, {taken / took:,.0f} works/s"
            f" ({taken * sources / took:,.0f} entries/s)"
        )
    else:
        print(
            f"new works, {mode}: {works / new:,.0f} works/s"
            f" ({works * sources / new:,.0f} entries/s)"
        )
    print(f"known works, {mode}: {works / known:,.0f} works/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", choices=("sqlite", "cassandra"), default="sqlite")
    parser.add_argument("--works", type=int, default=50_000)
    parser.add_argument("--sources", default="", help="comma-separated (default: all usable)")
    parser.add_argument("--intake", action="store_true", help="bulk registration (see above)")
    args = parser.parse_args()
    settings = Settings.from_env()
    if args.sources:
        settings = settings.with_(sources=tuple(args.sources.split(",")))
    if args.intake:
        gctune.tune(settings.gc_threshold)  # as `alm works import` does (services/cli/main.py)
    asyncio.run(bench(args.store, args.works, settings, args.intake))


if __name__ == "__main__":
    main()
