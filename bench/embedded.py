"""Benchmark: N synthetic works x the core sources through the embedded pipeline (in-process bus,
SQLite) against the stub upstream running as its own process. Prints refreshes/s, upstream calls
per refresh and peak RSS. Not a test: it asserts nothing, it measures.

    .venv/bin/python bench/embedded.py --works 20000

The stub answers on loopback, so the per-source politeness limits (5-10 requests/s for the real
APIs) are raised with --rate; the figure measured is the pipeline's own throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

from services import gctune
from services.adapters.memory.bus import MemoryBus
from services.adapters.sqlite import SqliteStore
from services.bootstrap import make_pipeline
from services.embedded import refresh_until_idle
from services.fetchers.http import HttpSettings
from services.registration import CHUNK, register
from services.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _wait_for(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(100):
            try:
                async with session.get(url) as resp:
                    await resp.read()
                    return
            except aiohttp.ClientError:
                await asyncio.sleep(0.1)
    raise RuntimeError(f"stub upstream did not start at {url}")


async def bench(root: str, works: int, sources: tuple[str, ...], rate: float) -> None:
    await _wait_for(f"{root}/_stub/hits")
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), upstream_root=root, sources=sources)
        store = SqliteStore(Path(tmp) / "alm.sqlite")
        await store.migrate()
        bus = MemoryBus()
        http = HttpSettings(rates={s: rate for s in sources}, concurrency={s: 8 for s in sources})
        pipeline = make_pipeline(settings, bus, store, rng=random.Random(1), http=http)
        ids = [f"10.5555/bench.{i}" for i in range(works)]
        started = time.perf_counter()
        scheduling = pipeline.scheduler.scheduling
        for i in range(0, works, CHUNK):  # each work stored with its due entries
            await register(ids[i : i + CHUNK], store, bus, pipeline.clock(), scheduling)
        registered = time.perf_counter()
        async with pipeline.caller:
            summary = await refresh_until_idle(pipeline)
        done = time.perf_counter()
        await store.close()
    refresh_s = done - registered
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    per_source = {f.source.name: f.calls for f in pipeline.fetchers}
    print(
        f"works={works} sources={','.join(sources)} stub_rate_limit={rate}/s cpus={os.cpu_count()}"
    )
    print(f"registration (with scheduling): {works / (registered - started):,.0f} works/s")
    print(
        f"refreshes: {summary.refreshed} ok, {summary.errors} errors in {refresh_s:.1f}s "
        f"= {summary.refreshed / refresh_s:,.0f} refreshes/s"
    )
    calls = sum(per_source.values())
    print(
        f"upstream calls per refresh: {calls / max(1, summary.refreshed):.3f} overall; "
        + ", ".join(f"{k} {v / works:.3f}" for k, v in per_source.items())
    )
    print(f"peak RSS: {rss_mb:,.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--works", type=int, default=20_000)
    parser.add_argument("--sources", default="crossref,openalex,europepmc")
    parser.add_argument(
        "--rate", type=float, default=5000.0, help="requests/s per source at the stub"
    )
    args = parser.parse_args()
    port = _free_port()
    command = [sys.executable, "-m", "services.cli.main", "stub-upstream", "--synthetic"]
    stub = subprocess.Popen([*command, "--port", str(port)], cwd=ROOT, stdout=subprocess.DEVNULL)
    try:
        root = f"http://127.0.0.1:{port}"
        gctune.tune(Settings.from_env().gc_threshold)  # as `alm run` does
        asyncio.run(bench(root, args.works, tuple(args.sources.split(",")), args.rate))
    finally:
        stub.terminate()
        stub.wait()


if __name__ == "__main__":
    main()
