"""Benchmark: the API's hot path for readers next to a bare aiohttp handler, in the same run.

A store (SQLite, or Cassandra in a keyspace of its own, dropped at the end) gets N works, each
with the totals of several sources written through the store's own API (three retrievals per
source, folded by the aggregator's `fold`). The real API then runs in a process of its own, as
`alm api` does (`python -m services.cli.main api`, configured by ALM_* variables), and a bare
aiohttp handler answering a fixed body of a work's size in another. Both are driven by vegeta
(github.com/tsenart/vegeta, built once with `go install` from the Go module proxy into
.alm-local/tools/, as bin/install-tools builds its tools), over keep-alive connections:

- closed loop (`-rate=0`, a fixed number of workers, each sending its next request when the
  last answered): the most requests/s each server answers, and the ratio to the bare handler;
- open loop at a constant rate (`-rate=R/s`, every request sent at its scheduled time whatever
  came back before: vegeta's pacer starts a new worker rather than wait for a busy one, so a
  slow answer does not hold the next request back and hide its own latency): p50 and p99.

for one work (`/api/v1/works/{id}`), a 50-id batch (`/api/v1/works?ids=...`) and the work
page (`/works/{id}` HTML), each over the N works in turn. Not a test: it prints figures.

    PYTHONPATH=$PWD .venv/bin/python bench/api.py --store sqlite --works 2000
    PYTHONPATH=$PWD .venv/bin/python bench/api.py --store cassandra   # ALM_CASSANDRA_*, Kafka

The load generator, both servers and whatever else runs share the machine's cores: quote
medians of several runs and the ratio, not one run's absolute figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import aiohttp

from services.aggregator.service import fold
from services.core.events import Observation, Status
from services.core.ports import Store
from services.core.works import Work
from services.fetchers.registry import catalog as source_catalog
from services.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / ".alm-local" / "tools"
VEGETA_VERSION = "v12.12.0"
CHUNK = 500
SOURCES = 6  # sources with totals per work
SNAPSHOT_DAYS = (400, 30, 2)
BATCH = 50
MAX_OPEN = 2000  # connections an open-loop run may have waiting (an overloaded server)
NOW = datetime.now(UTC).replace(microsecond=0)

BARE = """
import sys
from aiohttp import web
body = open(sys.argv[2], "rb").read()
async def handler(request):
    return web.Response(body=body, content_type="application/json")
app = web.Application()
app.router.add_get("/{tail:.*}", handler)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


def vegeta() -> Path:
    """vegeta, built once into .alm-local/tools (a second run with the same version reuses it)."""
    tool, stamp = TOOLS / "vegeta", TOOLS / ".vegeta-version"
    if tool.exists() and stamp.exists() and stamp.read_text().strip() == VEGETA_VERSION:
        return tool
    if shutil.which("go") is None:
        sys.exit("bench/api.py: needs Go 1.21+ to build vegeta (go install)")
    TOOLS.mkdir(parents=True, exist_ok=True)
    print(f"building vegeta {VEGETA_VERSION} (go install) ...", flush=True)
    with tempfile.TemporaryDirectory() as build:
        env = {**os.environ, "GOBIN": build, "GOFLAGS": "-buildvcs=false"}
        subprocess.run(
            ["go", "install", f"github.com/tsenart/vegeta/v12@{VEGETA_VERSION}"],
            env=env,
            check=True,
        )
        shutil.move(Path(build) / "vegeta", tool)
    stamp.write_text(VEGETA_VERSION + "\n")
    return tool


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def open_store(kind: str, tmp: Path, keyspace: str) -> Store:
    if kind == "sqlite":
        from services.adapters.sqlite import SqliteStore

        return SqliteStore(tmp / "alm.sqlite")
    from services.adapters.cassandra import CassandraConnection, CassandraStore

    settings = Settings.from_env()
    return CassandraStore(
        settings.cassandra_hosts,
        settings.cassandra_port,
        keyspace,
        connection=CassandraConnection.from_env(settings.cassandra_env),
    )


async def fill(store: Store, works: int) -> list[str]:
    """N works, each with SOURCES sources' totals from three retrievals; their DOIs."""
    catalog = source_catalog()
    names = sorted(catalog)[:SOURCES]
    ids = [f"10.5555/api.{i:07d}" for i in range(works)]
    for start in range(0, works, CHUNK):
        part = [Work(d, doi=d, title=f"Work {d}") for d in ids[start : start + CHUNK]]
        await store.register(part)
        observations = [
            Observation(
                w.work_id,
                name,
                NOW - timedelta(days=ago),
                Status.OK,
                {s.name: (n + 1) * (3 + k % 7) for k, s in enumerate(catalog.specs(name))},
            )
            for w in part
            for name in names
            for n, ago in enumerate(SNAPSHOT_DAYS)
        ]
        keys = sorted({(o.work_id, o.source) for o in observations})
        await store.write_aggregates(fold(observations, await store.states(keys)))
    return ids


def start(cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = log.open("wb")
    return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)


def tail(log: Path) -> str:
    return log.read_text()[-3000:]


async def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                sys.exit(f"server exited ({proc.returncode}):\n{tail(log)}")
            try:
                async with session.get(url) as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    sys.exit(f"server not ready at {url}:\n{tail(log)}")


async def warm(base: str, urls: list[str]) -> None:
    """Ask for every URL once, 32 at a time."""
    queue = list(reversed(urls))
    async with aiohttp.ClientSession() as session:

        async def worker() -> None:
            while queue:
                async with session.get(base + queue.pop()) as resp:
                    await resp.read()

        await asyncio.gather(*(worker() for _ in range(32)))


async def drain(base: str) -> None:
    """Wait until the server has answered what an overloaded run left queued (at most 2 min)."""
    deadline = time.monotonic() + 120
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            began = time.monotonic()
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(f"{base}/healthz") as resp:
                    await resp.read()
            if time.monotonic() - began < 0.05:
                return
            await asyncio.sleep(0.5)


def attack(tool: Path, targets: Path, duration: float, rate: int, workers: int) -> dict[str, float]:
    """One vegeta run: requests/s answered, p50/p99 in ms, share of 200s."""
    pacing = ["-rate=0", f"-max-workers={workers}", f"-workers={workers}"]
    if rate:
        pacing = [f"-rate={rate}/s", "-workers=50", f"-max-workers={MAX_OPEN}"]
    run = subprocess.run(
        [
            str(tool),
            "attack",
            f"-targets={targets}",
            f"-duration={duration}s",
            "-timeout=10s",
            *pacing,
        ],
        capture_output=True,
        check=True,
    )
    report = subprocess.run(
        [str(tool), "report", "-type=json"], input=run.stdout, capture_output=True, check=True
    )
    r = json.loads(report.stdout)
    return {
        "rps": r["throughput"],
        "p50": r["latencies"]["50th"] / 1e6,
        "p99": r["latencies"]["99th"] / 1e6,
        "ok": r["success"],
        "codes": r["status_codes"],
    }


def drop_topics(prefix: str) -> None:
    """Delete the run's own Kafka topics."""
    from kafka.admin import KafkaAdminClient

    admin = KafkaAdminClient(bootstrap_servers=Settings.from_env().kafka_bootstrap)
    try:
        mine = [t for t in admin.list_topics() if t.startswith(prefix)]
        if mine:
            admin.delete_topics(mine)
    finally:
        admin.close()


def targets(path: Path, base: str, urls: list[str]) -> Path:
    path.write_text("".join(f"GET {base}{u}\n\n" for u in urls))
    return path


async def bench(args: argparse.Namespace) -> None:
    tool = vegeta()
    keyspace = f"alm_bench_{secrets.token_hex(3)}"
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        store = await open_store(args.store, tmp, keyspace)
        procs: list[subprocess.Popen[bytes]] = []
        try:
            await store.migrate()
            started = time.perf_counter()
            ids = await fill(store, args.works)
            print(
                f"store={args.store} works={args.works:,} sources/work={SOURCES} "
                f"(filled in {time.perf_counter() - started:.0f} s); load: {os.getloadavg()[0]:.1f}"
            )
            if args.store == "sqlite":
                await store.close()
            api_port, bare_port = free_port(), free_port()
            env = {
                **os.environ,
                "PYTHONPATH": str(ROOT),
                "ALM_DATA_DIR": str(tmp),
                "ALM_STORE": args.store,
                "ALM_HOST": "127.0.0.1",
                "ALM_PORT": str(api_port),
                "ALM_API_RATE_ANONYMOUS": "unlimited",
                "ALM_STATUS_CACHE_SECONDS": "60",
                "ALM_METRICS_PORT": "0",
            }
            if args.cache_seconds is not None:
                env["ALM_API_WORK_CACHE_SECONDS"] = str(args.cache_seconds)
            if args.store == "cassandra":
                env |= {
                    "ALM_CASSANDRA_KEYSPACE": keyspace,
                    "ALM_BUS": "kafka",
                    "ALM_TOPIC_PREFIX": f"{keyspace}.",
                }
                topics = [sys.executable, "-m", "services.cli.main", "topics", "create"]
                await asyncio.to_thread(
                    subprocess.run, topics, env=env, cwd=ROOT, check=True, capture_output=True
                )
            api_log, bare_log = tmp / "api.log", tmp / "bare.log"
            procs.append(start([sys.executable, "-m", "services.cli.main", "api"], env, api_log))
            api = f"http://127.0.0.1:{api_port}"
            await wait_ready(f"{api}/healthz", procs[0], api_log)
            first = f"{api}/api/v1/works/{quote(ids[0], safe='/')}"
            async with aiohttp.ClientSession() as session, session.get(first) as resp:
                body = await resp.read()
            (tmp / "body.json").write_bytes(body)
            procs.append(
                start(
                    [sys.executable, "-c", BARE, str(bare_port), str(tmp / "body.json")],
                    env,
                    bare_log,
                )
            )
            bare = f"http://127.0.0.1:{bare_port}"
            await wait_ready(f"{bare}/healthz", procs[1], bare_log)
            rng = random.Random(7)
            shuffled = rng.sample(ids, len(ids))
            one = [f"/api/v1/works/{quote(i, safe='/')}" for i in shuffled]
            batches = [
                "/api/v1/works?ids=" + ",".join(rng.sample(ids, BATCH))
                for _ in range(max(1, len(ids) // BATCH))
            ]
            pages = [f"/works/{quote(i, safe='/')}" for i in shuffled]
            cases = {
                "bare handler": (bare, one),
                "one work": (api, one),
                f"{BATCH}-id batch": (api, batches),
                "work page": (api, pages),
            }
            print(
                f"closed loop: {args.workers} workers, {args.duration:g} s; open loop: "
                f"{args.rate}/s for {args.duration:g} s (latency from each request's send time)"
            )
            bare_rps = 0.0
            for n, (name, (base, urls)) in enumerate(cases.items()):
                path = targets(tmp / f"targets{n}.txt", base, urls)
                began = time.monotonic()
                await warm(base, urls)  # every URL once: the answers kept, as in steady use
                warmed = time.monotonic() - began
                closed = attack(tool, path, args.duration, 0, args.workers)
                bare_rps = bare_rps or closed["rps"]
                opened = attack(tool, path, args.duration, args.rate, 0)
                await drain(api)
                print(
                    f"{name:16} max {closed['rps']:8.0f}/s ({closed['rps'] / bare_rps:4.2f} x bare)"
                    f"   at {args.rate}/s: p50 {opened['p50']:7.2f} ms  p99 {opened['p99']:7.2f} ms"
                    f"  ok {opened['ok']:.3f} (sent {opened['rps']:.0f}/s) {opened['codes']}"
                    f" warm-up {warmed:.0f} s"
                )
            print(f"load after: {os.getloadavg()[0]:.1f}")
        finally:
            for proc in procs:
                proc.terminate()
            for proc in procs:
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            if args.store == "cassandra":
                from services.adapters.cassandra import CassandraStore

                assert isinstance(store, CassandraStore)
                await store._cql.query(f"DROP KEYSPACE IF EXISTS {keyspace}", keyspace=None)
                await store.close()
                drop_topics(f"{keyspace}.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", choices=("sqlite", "cassandra"), default="sqlite")
    parser.add_argument("--works", type=int, default=2000)
    parser.add_argument("--rate", type=int, default=1000, help="open-loop requests/s")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run")
    parser.add_argument("--workers", type=int, default=32, help="closed-loop connections")
    parser.add_argument(
        "--cache-seconds",
        type=float,
        default=None,
        help="ALM_API_WORK_CACHE_SECONDS for the API (default: its own default, 300; 0: none)",
    )
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
