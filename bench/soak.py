"""Soak benchmark: minutes of continuous refreshes plus API load, in the embedded mode (one
`alm run` process, SQLite) and in the distributed mode (every service its own process, on the
fault suite's private Kafka and Cassandra: tests/faults/cluster.py). Synthetic works
(10.5555/) are refreshed every --refresh from the stub upstream (its own process) while a client
sends --api-rps requests a second (a work, a batch of ten, a page of the list, the sources, a
history). Not a test: it asserts nothing, it measures and prints:

- the RSS of every process, sampled every --sample seconds: its mean over the minute after the
  warm-up, over the last minute, the growth between them (target: under 10 %) and its peak;
- per minute: (work, source) pairs refreshed, pairs whose last fetch failed, API requests, API
  errors (non-2xx), API latency p50 / p99: the first minute after the warm-up against the last
  (error-rate drift);
- distributed: the reconciliation at the end (tests/faults/oracle.py: lost, wrong, twice).

    .venv/bin/python bench/soak.py --mode both --minutes 10
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services.adapters.cassandra import CassandraStore  # noqa: E402
from tests.faults import scenario as sc  # noqa: E402
from tests.faults.cluster import Cluster, port  # noqa: E402
from tests.faults.oracle import expected  # noqa: E402
from tests.faults.toxiproxy import Toxiproxy  # noqa: E402

EMBEDDED_API_PORT = port(81)


def rss_mb(pid: int) -> float | None:
    """Resident set size of a process in MB (None if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


@dataclass
class Run:
    """What one mode's soak recorded."""

    mode: str
    started: float = field(default_factory=time.monotonic)
    rss: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # name: (t, MB)
    api: list[tuple[float, int, float]] = field(default_factory=list)  # (t, status, seconds)
    refreshed: list[tuple[float, int, int]] = field(default_factory=list)  # (t, new, in error)

    def at(self) -> float:
        return time.monotonic() - self.started


async def sample(run: Run, pids: dict[str, int], every: float, stop: asyncio.Event) -> None:
    """Record the RSS of every process every `every` seconds."""
    while not stop.is_set():
        for name, pid in pids.items():
            mb = rss_mb(pid)
            if mb is not None:
                run.rss.setdefault(name, []).append((run.at(), mb))
        await asyncio.sleep(every)


async def api_load(run: Run, api: str, works: list[str], rps: float, stop: asyncio.Event) -> None:
    """`rps` GETs a second, of the kinds a reader of the API makes."""
    rng = random.Random(7)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:

        async def one(path: str) -> None:
            started = time.monotonic()
            try:
                async with http.get(api + path) as resp:
                    await resp.read()
                    status = resp.status
            except (aiohttp.ClientError, TimeoutError):
                status = 0
            run.api.append((run.at(), status, time.monotonic() - started))

        pending: set[asyncio.Task[None]] = set()
        while not stop.is_set():
            kind = rng.random()
            if kind < 0.5:
                path = f"/api/v1/works/{rng.choice(works)}"
            elif kind < 0.7:
                path = "/api/v1/works?ids=" + ",".join(rng.sample(works, 10))
            elif kind < 0.85:
                path = f"/api/v1/works?page={rng.randint(1, max(1, len(works) // 50))}"
            elif kind < 0.95:
                path = f"/api/v1/works/{rng.choice(works)}/history?period=day"
            else:
                path = "/api/v1/sources"
            task = asyncio.create_task(one(path))
            pending.add(task)
            task.add_done_callback(pending.discard)
            await asyncio.sleep(1 / rps)
        await asyncio.gather(*pending)


async def refreshes(
    run: Run, api: str, works: list[str], every: float, stop: asyncio.Event
) -> None:
    """Every `every` seconds, read every work's sources through the batch API and count the
    (work, source) pairs refreshed since the last look, and those whose last fetch failed."""
    last: dict[tuple[str, str], str] = {}
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        while not stop.is_set():
            new = errors = 0
            for i in range(0, len(works), 100):
                try:
                    async with http.get(
                        f"{api}/api/v1/works", params={"ids": ",".join(works[i : i + 100])}
                    ) as resp:
                        body = await resp.json() if resp.status == 200 else {"data": []}
                except (aiohttp.ClientError, TimeoutError):
                    continue
                for work in body["data"]:
                    for source in work["sources"]:
                        key = (work["work_id"], source["name"])
                        when = source.get("retrieved_at") or ""
                        if when and when != last.get(key):
                            new += 1
                        last[key] = when
                        errors += source.get("status") == "error"
            run.refreshed.append((run.at(), new, errors))
            await asyncio.sleep(every)


async def load(
    run: Run, api: str, works: list[str], pids: dict[str, int], args: argparse.Namespace
) -> None:
    """Sample, load and count for `args.minutes`."""
    stop = asyncio.Event()
    tasks = [
        asyncio.create_task(sample(run, pids, args.sample, stop)),
        asyncio.create_task(api_load(run, api, works, args.api_rps, stop)),
        asyncio.create_task(refreshes(run, api, works, 15.0, stop)),
    ]
    await asyncio.sleep(args.minutes * 60)
    stop.set()
    await asyncio.gather(*tasks)


async def wait_http(url: str, timeout: float) -> None:
    """Until `url` answers 200."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
        while time.monotonic() < deadline:
            try:
                async with http.get(url) as resp:
                    if resp.status == 200:
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(0.5)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s")


def spawn(args: list[str], env: dict[str, str], logs: str) -> subprocess.Popen[bytes]:
    """Start `alm ARGS...` with its output in LOGS/alm.log."""
    with (Path(logs) / "alm.log").open("wb") as log:
        return subprocess.Popen(
            [*sc.ALM, *args],
            env=env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


async def embedded(args: argparse.Namespace, works: list[str], stub_pid: int) -> Run:
    """`alm run` (every service in one process, SQLite) against the synthetic stub."""
    run = Run("embedded")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "works.txt"
        path.write_text("\n".join(works) + "\n")
        env = {k: v for k, v in os.environ.items() if not k.startswith("ALM_")}
        env.update(
            ALM_DATA_DIR=tmp,
            ALM_UPSTREAM_ROOT=f"http://127.0.0.1:{sc.STUB_PORT}",
            ALM_SOURCES=",".join(sc.SOURCES_RUN),
            ALM_DEFAULT_REFRESH=f"{args.refresh},{args.refresh},{args.refresh}",
            ALM_LOG_LEVEL="warning",
            PYTHONPATH=str(ROOT),
            **{f"ALM_{s.upper()}_RATE": "100" for s in sc.SOURCES_RUN},
        )
        env.update(extra_env(args))
        proc = spawn(["run", "--works", str(path), "--port", str(EMBEDDED_API_PORT)], env, tmp)
        try:
            api = f"http://127.0.0.1:{EMBEDDED_API_PORT}"
            await wait_http(api + "/readyz", 600)
            print(f"soak: embedded ready after {run.at():.0f} s; loading {args.minutes} min")
            run.started = time.monotonic()
            await load(run, api, works, {"alm run": proc.pid, "stub-upstream": stub_pid}, args)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(120)
    return run


async def distributed(args: argparse.Namespace, works: list[str], stub_pid: int) -> Run:
    """Every service its own process on the private Kafka and Cassandra."""
    run = Run("distributed")
    cluster = Cluster()
    await cluster.up()
    store = CassandraStore([cluster.cassandra_host], cluster.cassandra_port, sc.KEYSPACE)
    await store.migrate()
    await store.close()
    proxy = Toxiproxy(sc.TOXIPROXY_PORT)
    proxy.spawn()
    await proxy.ready()
    with tempfile.TemporaryDirectory() as tmp:
        want = await expected(works, sc.SOURCES_RUN, Path(tmp))
    scenario = sc.Scenario(
        "soak", cluster, proxy, want, refresh=args.refresh, extra_env=extra_env(args)
    )
    try:
        await scenario.start()
        assert scenario.supervisor is not None
        pids = {n: s.proc.pid for n, s in scenario.supervisor.services.items() if s.proc}
        pids |= {"stub-upstream": stub_pid, "kafka": cluster.pid("kafka")}
        pids["cassandra"] = cluster.pid("cassandra")
        print(f"soak: distributed ready after {run.at():.0f} s; loading {args.minutes} min")
        run.started = time.monotonic()
        begun = datetime.now(UTC)
        await load(run, scenario.api, works, pids, args)
        report = await scenario.report(None)
        print(f"soak: distributed reconciliation: {report.summary()}")
        restarts = {n: scenario.supervisor.restarts(n) for n in scenario.supervisor.services}
        print(f"soak: restarts {restarts} since {begun:%H:%M:%S}")
    finally:
        await scenario.stop()
        proxy.stop()
    return run


def extra_env(args: argparse.Namespace) -> dict[str, str]:
    """--service-env NAME=VALUE pairs, after what the load needs: the client reads without a
    key from one address, at --api-rps, over the API's per-address limit for anonymous reads
    (otherwise most answers are 429s, and the soak measures the rate limiter)."""
    pairs = [item.split("=", 1) for item in args.service_env]
    return {"ALM_API_RATE_ANONYMOUS": "unlimited", **{name: value for name, value in pairs}}


def window(points: list[tuple[float, float]], start: float, end: float) -> list[float]:
    return [v for t, v in points if start <= t < end]


def report(run: Run, args: argparse.Namespace) -> None:
    """Print what the run measured."""
    warm, total = args.warmup * 60, args.minutes * 60
    print(f"\n== {run.mode}: {args.minutes} min, warm-up {args.warmup} min")
    print(f"  {'process':<22}{'after warm-up':>14}{'last minute':>13}{'growth':>9}{'peak':>9}")
    for name, points in sorted(run.rss.items()):
        first = window(points, warm, warm + 60)
        last = window(points, total - 60, total + 1)
        if not first or not last:
            continue
        a, b = statistics.mean(first), statistics.mean(last)
        peak = max(v for _, v in points)
        print(f"  {name:<22}{a:>11.0f} MB{b:>10.0f} MB{(b - a) / a:>8.1%}{peak:>6.0f} MB")
    minutes = int(total // 60)
    print(f"  RSS, MB, minute by minute:{''.join(f'{m + 1:>5}' for m in range(minutes))}")
    for name, points in sorted(run.rss.items()):
        means = [window(points, m * 60, m * 60 + 60) for m in range(minutes)]
        cells = "".join(f"{statistics.mean(v):>5.0f}" if v else "    -" for v in means)
        print(f"  {name:<26}{cells}")
    print(
        f"  {'minute':<8}{'refreshed':>10}{'in error':>9}{'requests':>9}{'errors':>7}"
        f"{'p50 ms':>8}{'p99 ms':>8}"
    )
    for minute in range(int(total // 60)):
        lo, hi = minute * 60, minute * 60 + 60
        new = sum(n for t, n, _ in run.refreshed if lo <= t < hi)
        in_error = max((e for t, _, e in run.refreshed if lo <= t < hi), default=0)
        calls = [(s, d) for t, s, d in run.api if lo <= t < hi]
        errors = sum(1 for s, _ in calls if not 200 <= s < 300)
        lat = sorted(d for _, d in calls) or [0.0]
        p50, p99 = lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        mark = " (warm-up)" if hi <= warm else ""
        print(
            f"  {minute + 1:<8}{new:>10}{in_error:>9}{len(calls):>9}{errors:>7}"
            f"{p50 * 1000:>8.0f}{p99 * 1000:>8.0f}{mark}"
        )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["embedded", "distributed", "both"], default="both")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=2.0, help="minutes before RSS counts")
    parser.add_argument("--works", type=int, default=1000)
    parser.add_argument("--refresh", default="30s", help="how often every work is refreshed")
    parser.add_argument("--api-rps", type=float, default=20.0)
    parser.add_argument("--sample", type=float, default=10.0, help="seconds between RSS samples")
    parser.add_argument(
        "--service-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an ALM_ setting for the services (e.g. ALM_GC_THRESHOLD=python); repeatable",
    )
    args = parser.parse_args()
    if args.minutes < args.warmup + 2:
        parser.error("--minutes must leave at least two minutes after --warmup")
    works = sc.dois(args.works)
    stub = sc.spawn_stub()
    try:
        await sc.stub_ready()
        runs = []
        if args.mode in ("embedded", "both"):
            runs.append(await embedded(args, works, stub.pid))
        if args.mode in ("distributed", "both"):
            runs.append(await distributed(args, works, stub.pid))
    finally:
        stub.terminate()
        stub.wait(30)
    for run in runs:
        report(run, args)


if __name__ == "__main__":
    asyncio.run(main())
