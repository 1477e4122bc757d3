"""Benchmark: `alm publishers import` of a stub catalogue of N works into SQLite (or
Cassandra), offline. The stub upstream runs as a process of its own (`alm stub-upstream
--catalogue-works N`), so its CPU is not the importer's; each run imports into a fresh store.
Prints, per run and as medians: works/s end to end, and the split between asking Crossref
(the stub) for pages and registering them. Not a test: it asserts nothing, it measures.

    .venv/bin/python bench/catalogue_import.py --works 50000 --runs 3
    .venv/bin/python bench/catalogue_import.py --works 50000 --rate 3   # Crossref's polite pace
    .venv/bin/python bench/catalogue_import.py --store cassandra --works 20000   # ALM_CASSANDRA_*
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.adapters.memory.bus import MemoryBus
from services.bootstrap import make_caller, make_publishers, make_scheduling, make_store
from services.catalogue_import import Importer, ImportOptions
from services.core.catalogue_state import ImportState, Scope
from services.core.publishers import Publisher
from services.fetchers.catalogue import CatalogueClient
from services.fetchers.http import HttpSettings
from services.fetchers.registry import get_source
from services.settings import REPO_ROOT, Settings


class Quiet:
    """The import's watcher: counts pages."""

    def __init__(self) -> None:
        self.pages = 0

    def found(self, publisher: Publisher) -> None:
        pass

    def planned(self, state: ImportState) -> None:
        pass

    def advanced(self, state: ImportState) -> None:
        self.pages += 1

    def note(self, text: str) -> None:
        print(f"  note: {text}", file=sys.stderr)


def _timed(
    spent: list[float], call: Callable[..., Awaitable[Any]]
) -> Callable[..., Awaitable[Any]]:
    async def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await call(*args, **kwargs)
        finally:
            spent[0] += time.perf_counter() - started

    return timed


class TimedImporter(Importer):
    """An Importer that adds the time it spends registering pages to `spent[0]`."""

    spent: list[float] = [0.0]

    async def _register(self, page: Any) -> Any:
        started = time.perf_counter()
        try:
            return await Importer._register(self, page)
        finally:
            self.spent[0] += time.perf_counter() - started


def _free_port(low: int = 22000, high: int = 22999) -> int:
    for port in range(low, high):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 22000-22999")


async def one_run(settings: Settings, rows: int) -> dict[str, float]:
    store = make_store(settings)
    await store.migrate()
    crossref = get_source("crossref")
    http = HttpSettings(user_agent=settings.user_agent, rates=settings.rates, retries=0, timeout=60)
    watcher = Quiet()
    fetching, registering = [0.0], [0.0]
    try:
        async with make_caller(settings, [crossref], http) as caller:
            client = CatalogueClient(caller, crossref, settings.source_config("crossref"))
            client.page = _timed(fetching, client.page)  # type: ignore[method-assign]
            importer = TimedImporter(
                client,
                store,
                make_publishers(store),
                MemoryBus(window=0),
                make_scheduling(settings),
                lambda: datetime.now(UTC),
                watcher,
                ImportOptions(rows=rows),
            )
            importer.spent = registering
            started = time.perf_counter()
            state = await importer.run(Scope.member("340"), None, True, asyncio.Event())
            elapsed = time.perf_counter() - started
    finally:
        await store.close()
    assert state.complete
    return {
        "works": float(state.done),
        "seconds": elapsed,
        "rate": state.done / elapsed,
        "fetch": fetching[0],
        "register": registering[0],
        "pages": float(watcher.pages),
    }


async def bench(args: argparse.Namespace, root: str) -> None:
    results = []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            base = Settings.from_env()
            settings = base.with_(
                data_dir=Path(tmp),
                store=args.store,
                keyspace=f"alm_bench_{secrets.token_hex(3)}",
                upstream_root=root,
                rates={**base.rates, "crossref": args.rate},
            )
            result = await one_run(settings, args.rows)
            results.append(result)
            print(
                f"run {run + 1}: {result['works']:,.0f} works in {result['seconds']:.2f} s = "
                f"{result['rate']:,.0f} works/s ({result['pages']:.0f} pages; asking "
                f"{result['fetch']:.2f} s, registering {result['register']:.2f} s)",
                flush=True,
            )
            if args.store == "cassandra":
                await _drop(settings)
    median = {k: statistics.median(r[k] for r in results) for k in results[0]}
    print(
        f"median of {args.runs}: {median['rate']:,.0f} works/s into {args.store} "
        f"({args.works:,} works, rows={args.rows}, crossref rate {args.rate:g} req/s; "
        f"asking {median['fetch']:.2f} s, registering {median['register']:.2f} s, "
        f"queued for the scheduler's intake of {len(make_scheduling(Settings.from_env()).sources)}"
        " sources)"
    )


async def _drop(settings: Settings) -> None:
    from services.adapters.cassandra.session import CqlSession

    cql = CqlSession(settings.cassandra_hosts, settings.cassandra_port, settings.keyspace)
    try:
        await cql.query(f"DROP KEYSPACE IF EXISTS {settings.keyspace}", keyspace=None)
    finally:
        await cql.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--works", type=int, default=50_000)
    parser.add_argument("--rows", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--store", choices=("sqlite", "cassandra"), default="sqlite")
    parser.add_argument(
        "--rate", type=float, default=1000.0, help="Crossref requests/s (3 = the polite pool)"
    )
    args = parser.parse_args()
    port = _free_port()
    command = [sys.executable, "-m", "services.cli.main", "stub-upstream", "--port", str(port)]
    command += ["--catalogue-works", str(args.works - 4)]  # 4 recorded PLOS works come first
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    stub = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert stub.stdout is not None
        stub.stdout.readline()  # "stub upstream: ..." once it listens
        asyncio.run(bench(args, f"http://127.0.0.1:{port}"))
    finally:
        stub.terminate()
        stub.wait(timeout=30)


if __name__ == "__main__":
    main()
