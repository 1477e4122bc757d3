"""Benchmark: a publisher's catalogue in the distributed mode (real Kafka + Cassandra, the stub
upstream). Registers N synthetic works (10.5555/) through the registration path production
uses for a catalogue (`alm works import`: each chunk of works written with its intake chunk,
then announced on alm.works; the scheduler writes their due entries from the intake), in
three stages (10 %, 50 % and 100 % of N), while every service runs as its own process: the
scheduler, a fetcher per source, the faust aggregator and the API. After each stage's
registration the bench waits until the scheduler has taken every registered work in from the
intake (--drain seconds at most), so every stage is measured in the same state: the import
done, the pipeline refreshing the works. Then the pipeline runs for --settle seconds, and it
prints:

- registration works/s of the stage, and the works the scheduler took in from the intake per
  second from the stage's start until the intake was drained (their due entries written:
  `alm_intake_works_total`), with how long the wait after the registration was;
- due-scan time: one scan of each source's due index (`due(source, now, 5000)`), the scan a
  scheduler tick makes;
- emission: refresh requests the scheduler handed out per second over the settle window (its
  `alm_refresh_requests_total`), and how many wait in the refresh topics (its backpressure
  keeps each source's queue short: docs/operations.md);
- RSS of every service process (invariant 7: flat in the number of works): the median of
  samples taken every RSS_EVERY seconds over the settle window, and the largest sample of the
  stage (its import included). The first stage is measured after a warm-up (--warmup
  seconds of the pipeline at work on its works, and one round of the API requests): before
  it, RSS still climbs with the pipeline's ramp and the API's first pages, whatever the
  number of works (docs/performance.md, "Memory from 100,000 to 1,000,000 works");
- API p50/p99 of `GET /api/v1/works` at the first page and at a deep page (a cursor near the
  last work), and of one work, sequential requests from this process.

Not a test: it asserts nothing, it measures.

    .venv/bin/python bench/scale.py --works 1000000
    .venv/bin/python bench/scale.py --works 20000 --settle 20    # a quick look

Kafka and Cassandra are started with deploy/local/infra-up if they are not running. The run
uses its own keyspace and topic prefix and removes them at the end (--keep keeps them).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import shutil
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.distributed import (  # noqa: E402
    CASSANDRA,
    CASSANDRA_PORT,
    KAFKA,
    STATE,
    Proc,
    Run,
    cleanup,
    free_port,
    infra_up,
    memory,
    start_services,
    stop_all,
)
from services.adapters.cassandra import CassandraStore  # noqa: E402
from services.adapters.kafka import KafkaBus, ensure_topics  # noqa: E402
from services.bootstrap import make_scheduling  # noqa: E402
from services.core.events import refresh_topic  # noqa: E402
from services.core.identifiers import parse_identifier  # noqa: E402
from services.fetchers.registry import SOURCES  # noqa: E402
from services.fetchers.service import FetcherService  # noqa: E402
from services.registration import CHUNK, register_parsed  # noqa: E402
from services.settings import Settings  # noqa: E402

STAGES = (0.1, 0.5, 1.0)
RSS_EVERY = 5.0  # seconds between two RSS samples of the services


class ScaleRun(Run):
    """The benchmark's processes; the scheduler serves its Prometheus /metrics on a port of its
    own (ALM_METRICS_PORT), where the emission rate is read."""

    metrics_port = 0

    def start(self, name: str, *args: str) -> Proc:
        """Start `alm ARGS...`, the scheduler with its metrics port."""
        if name != "scheduler":
            return super().start(name, *args)
        env, self.env = self.env, {**self.env, "ALM_METRICS_PORT": str(self.metrics_port)}
        try:
            return super().start(name, *args)
        finally:
            self.env = env


def work_id(n: int) -> str:
    """The n-th synthetic work of the run."""
    return f"10.5555/scale.{n:08d}"


async def scheduler_counter(url: str, name: str = "alm_refresh_requests_total") -> float:
    """A counter of the scheduler's (alm_refresh_requests_total by default), over its labels."""
    async with aiohttp.ClientSession() as s, s.get(url) as resp:
        text = await resp.text()
    pattern = rf"^{name}(?:\{{[^}}]*\}})? (\S+)$"
    return sum(float(m[1]) for m in re.finditer(pattern, text, re.M))


async def latencies(url: str, count: int) -> tuple[float, float, int]:
    """p50 and p99 (ms) of `count` sequential GETs of `url`, and how many were not a 200 (a
    503 of a store that timed out under the load is a figure of the run, not its end)."""
    taken, failed = [], 0
    async with aiohttp.ClientSession() as s:
        for _ in range(count):
            t = time.perf_counter()
            async with s.get(url) as resp:
                await resp.read()
                failed += resp.status != 200
            taken.append((time.perf_counter() - t) * 1000)
    taken.sort()
    return (
        statistics.median(taken),
        taken[min(len(taken) - 1, int(len(taken) * 0.99))],
        failed,
    )


async def register_stage(
    store: CassandraStore, bus: KafkaBus, settings: Settings, start: int, end: int
) -> float:
    """Register works [start, end) as `alm works import` does; seconds it took."""
    scheduling = make_scheduling(settings)
    t = time.perf_counter()
    for i in range(start, end, CHUNK):
        ids = [work_id(n) for n in range(i, min(end, i + CHUNK))]
        parsed = [(raw, parse_identifier(raw), None) for raw in ids]
        now = datetime.now(UTC)
        results = await register_parsed(parsed, store, bus, now, scheduling, intake=True)
        bad = [r for r in results if r.error]
        if bad:
            raise RuntimeError(f"registration refused {bad[0]}")
    return time.perf_counter() - t


async def due_scan(store: CassandraStore, sources: list[str]) -> str:
    """How long one scan of every source's due index takes (5,000 entries at most each), or
    which read failed after how long (a figure, not a reason to lose the run)."""
    t = time.perf_counter()
    for source in sources:
        try:
            await store.due(source, datetime.now(UTC), 5000)
        except Exception as exc:  # a read timeout on a loaded box
            return f"{type(exc).__name__} ({source}) after {time.perf_counter() - t:.1f} s"
    return f"{time.perf_counter() - t:.3f}"


async def waiting(bus: KafkaBus, sources: list[str]) -> int:
    """Refresh requests handed out and not yet taken by the fetchers, over every source."""
    queues = {refresh_topic(s): (FetcherService.group_of(s), 10_000_000) for s in sources}
    return sum((await bus.waiting(queues)).values())


async def stage(
    sampler: RssSampler,
    store: CassandraStore,
    bus: KafkaBus,
    settings: Settings,
    span: tuple[int, int],
    args: argparse.Namespace,
    urls: dict[str, str],
) -> dict[str, object]:
    """Register one stage's works, let the pipeline run (after the warm-up, for the first
    stage), measure."""
    start, end = span
    deep = work_id(max(0, end - 2 * args.page))
    api = urls["api"]
    pages = {
        "list_first": f"{api}/api/v1/works?per_page={args.page}",
        "list_deep": f"{api}/api/v1/works?per_page={args.page}&cursor={deep}",
        "one_work": f"{api}/api/v1/works/{work_id(end // 2)}",
    }
    intake, metrics = "alm_intake_works_total", urls["metrics"]
    stage_start, taken_before = time.monotonic(), await scheduler_counter(metrics, intake)
    seconds = await register_stage(store, bus, settings, start, end)
    registered = time.monotonic()
    while (taken := await scheduler_counter(metrics, intake)) < end:  # the intake drained
        if time.monotonic() - registered > args.drain:
            break
        await asyncio.sleep(1.0)
    drained = time.monotonic()
    if start == 0 and args.warmup > 0:
        for url in pages.values():  # answered once before anything is measured
            await latencies(url, args.requests)
        print(f"scale: warm-up, {args.warmup:.0f} s", flush=True)
        await asyncio.sleep(args.warmup)
    before, t0 = await scheduler_counter(metrics), time.monotonic()
    sampler.window.clear()
    await asyncio.sleep(args.settle)
    settled = sampler.settled()
    emitted = await scheduler_counter(metrics) - before
    window = time.monotonic() - t0
    figures: dict[str, object] = {
        "works": end,
        "registered_per_s": (end - start) / seconds,
        "intake_per_s": (taken - taken_before) / (drained - stage_start),
        "intake_total": taken,
        "drain_s": drained - registered,
        "due_scan_s": await due_scan(store, list(settings.sources)),
        "emitted_per_s": emitted / window,
        "waiting": await waiting(bus, list(settings.sources)),
        "rss": settled,
    }
    for key, url in pages.items():
        figures[key] = await latencies(url, args.requests)
    figures["rss_peak"] = sampler.peak()
    return figures


class RssSampler:
    """RSS of every service every RSS_EVERY seconds: the samples of the current settle window
    (`window`, cleared by the stage) and the largest sample since the last `peak()`."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.window: dict[str, list[int]] = {}
        self.largest: dict[str, int] = {}

    async def loop(self) -> None:
        while True:
            for p in self.run.procs:
                try:
                    rss = memory(p.proc.pid)[0]
                except (OSError, KeyError):  # the process has ended: no sample
                    continue
                self.window.setdefault(p.name, []).append(rss)
                self.largest[p.name] = max(rss, self.largest.get(p.name, 0))
            await asyncio.sleep(RSS_EVERY)

    def settled(self) -> dict[str, int]:
        """The median RSS of each service over the window's samples."""
        return {n: int(statistics.median(v)) for n, v in self.window.items() if v}

    def peak(self) -> dict[str, int]:
        """The largest RSS of each service since the last call."""
        out, self.largest = self.largest, {}
        return out


def report(figures: list[dict[str, object]], procs: list[Proc]) -> None:
    """Print the stages side by side."""
    print(f"\n{'works':>28}" + "".join(f"{f['works']:>14,}" for f in figures))

    def row(label: str, values: list[str]) -> None:
        print(f"{label:>28}" + "".join(f"{v:>14}" for v in values))

    row("registered works/s", [f"{f['registered_per_s']:,.0f}" for f in figures])
    row("intake: works taken in/s", [f"{f['intake_per_s']:,.0f}" for f in figures])
    row("intake: works taken so far", [f"{f['intake_total']:,.0f}" for f in figures])
    row("intake: drained after (s)", [f"{f['drain_s']:,.0f}" for f in figures])
    row("due scan, all sources (s)", [str(f["due_scan_s"]) for f in figures])
    row("emitted requests/s", [f"{f['emitted_per_s']:,.0f}" for f in figures])
    row("requests waiting in Kafka", [f"{f['waiting']:,}" for f in figures])
    for key, label in (
        ("list_first", "list first page p50/p99 ms"),
        ("list_deep", "list deep page p50/p99 ms"),
        ("one_work", "one work p50/p99 ms"),
    ):
        row(label, [answered(f[key]) for f in figures])  # type: ignore[arg-type]
    for p in procs:
        row(
            f"RSS {p.name} MB",
            [f"{f['rss'].get(p.name, '-')} ({f['rss_peak'].get(p.name, '-')})" for f in figures],  # type: ignore[attr-defined]
        )
    print(f"{'':>28}(RSS: median over the settle window, sampled every {RSS_EVERY:.0f} s; largest)")
    first, last = figures[0]["rss"], figures[-1]["rss"]
    growth = {n: (last[n] - first[n]) / first[n] * 100 for n in first if first.get(n) and n in last}  # type: ignore[index,attr-defined,operator]
    worst = max(growth.items(), key=lambda kv: kv[1])
    print(f"\nRSS growth from the first to the last stage: at most {worst[1]:+.1f} % ({worst[0]})")


def answered(figure: tuple[float, float, int]) -> str:
    """p50/p99, and the requests not answered 200, if any."""
    p50, p99, failed = figure
    return f"{p50:.1f}/{p99:.1f}" + (f" ({failed} failed)" if failed else "")


async def main() -> None:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--works", type=int, default=1_000_000)
    parser.add_argument("--sources", default="crossref,openalex,europepmc,datacite")
    parser.add_argument("--rate", type=float, default=200.0, help="stub calls/s per source")
    parser.add_argument("--settle", type=float, default=60.0, help="seconds after each stage")
    parser.add_argument(
        "--drain",
        type=float,
        default=900.0,
        help="seconds at most to wait after a stage's registration for the intake to drain",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=120.0,
        help="seconds the pipeline runs on the first stage's works before it is measured",
    )
    parser.add_argument("--page", type=int, default=50, help="works per listing page")
    parser.add_argument("--requests", type=int, default=200, help="API requests per figure")
    parser.add_argument("--keep", action="store_true", help="keep keyspace, topics and logs")
    parser.add_argument(
        "--trace-memory",
        type=float,
        metavar="SECONDS",
        help="services trace their allocations (ALM_TRACE_MEMORY: slower, RSS inflated) and log "
        "what grew every SECONDS; those lines are printed at the end",
    )
    args = parser.parse_args()
    sources = [s for s in args.sources.split(",") if s]
    if unknown := [s for s in sources if s not in SOURCES]:
        parser.error(f"unknown sources {unknown}")

    infra_up()
    tag = secrets.token_hex(3)
    logs = STATE / "logs" / f"scale-{tag}"
    logs.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALM_")}
    stub_port, api_port, metrics_port = free_port(), free_port(), free_port()
    env.update(
        ALM_BUS="kafka",
        ALM_STORE="cassandra",
        ALM_KAFKA_BOOTSTRAP=KAFKA,
        ALM_CASSANDRA_HOSTS=CASSANDRA,
        ALM_CASSANDRA_PORT=str(CASSANDRA_PORT),
        ALM_CASSANDRA_KEYSPACE=f"alm_scale_{tag}",
        ALM_TOPIC_PREFIX=f"scale{tag}.",
        ALM_DATA_DIR=str(logs / "data"),
        ALM_UPSTREAM_ROOT=f"http://127.0.0.1:{stub_port}",
        ALM_SOURCES=",".join(sources),
        ALM_API_RATE_ANONYMOUS="unlimited",  # the bench measures latency, not the quota
        ALM_SCHEDULER_BACKPRESSURE="true",  # the default, said: each source's queue bounded
        PYTHONPATH=str(ROOT),
        **{f"ALM_{s.upper()}_RATE": str(args.rate) for s in sources},
    )
    if args.trace_memory:
        env["ALM_TRACE_MEMORY"] = str(args.trace_memory)
    os.environ.update({k: v for k, v in env.items() if k.startswith("ALM_")})
    settings = Settings.from_env()
    run = ScaleRun(env["ALM_CASSANDRA_KEYSPACE"], env["ALM_TOPIC_PREFIX"], env, logs)
    run.metrics_port = metrics_port
    store = CassandraStore([CASSANDRA], CASSANDRA_PORT, run.keyspace)
    bus = KafkaBus(KAFKA, client_id="scale", prefix=run.prefix)
    sampler = RssSampler(run)
    sampling: asyncio.Future[None] | None = None
    try:
        print(f"scale: keyspace {run.keyspace}, topics {run.prefix}*, logs {logs}")
        run.alm("db", "migrate")
        await ensure_topics(KAFKA, sorted(SOURCES), 6, prefix=run.prefix)
        await start_services(run, sources, stub_port, api_port, 1)
        urls = {
            "api": f"http://127.0.0.1:{api_port}",
            "metrics": f"http://127.0.0.1:{metrics_port}/metrics",
        }
        print(f"scale: services ready; {args.works:,} works x {sources}")
        figures, done = [], 0
        sampling = asyncio.ensure_future(sampler.loop())
        for share in STAGES:
            end = int(args.works * share)
            figures.append(await stage(sampler, store, bus, settings, (done, end), args, urls))
            done = end
            print(f"scale: {end:,} works registered and measured: {figures[-1]}", flush=True)
        report(figures, [p for p in run.procs if p.name != "stub-upstream"])
    finally:
        if sampling is not None:
            sampling.cancel()
        await bus.close()
        await store.close()
        await stop_all(run)
        if args.trace_memory:
            grown(logs)
        if not args.keep:
            cleanup(run)
            shutil.rmtree(logs, ignore_errors=True)


def grown(logs: Path) -> None:
    """Each service's last `memory_growth` report (services/telemetry/memory.py), from its log."""
    for path in sorted(logs.glob("*.log")):
        lines = [x for x in path.read_text(errors="replace").splitlines() if "memory_growth" in x]
        if lines:
            print(f"memory growth, {path.stem}: {lines[-1]}")


if __name__ == "__main__":
    asyncio.run(main())
