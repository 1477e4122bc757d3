"""Benchmark: the distributed pipeline on this machine. N synthetic works (10.5555/) x sources:
refresh requests -> fetcher processes (stub upstream, synthetic mode) -> Kafka -> the faust
aggregator -> Cassandra. In the same run, the raw ceilings of the two servers: cassandra-driver
prepared single-row inserts (execute_concurrent_with_args, concurrency 200) and kafka-python
produce. Prints refreshes/s, the ratios, and start-up time and RSS of every server and service.
Two rounds by default (--rounds): the first collection, where every total is new (history,
leaderboard and a metric-changed event for each), and a routine refresh of the same works, where
the upstream answers the same numbers (the common case once a work has been collected).
Not a test: it asserts nothing, it measures.

    deploy/local/infra-down   # optional: so the servers' start-up is measured too
    .venv/bin/python bench/distributed.py --works 10000

Kafka and Cassandra are started with deploy/local/infra-up if they are not running. The run
uses its own keyspace and topic prefix and removes them at the end (--keep keeps them). The
stub answers on loopback, so the politeness rates are raised (--rate); the per-source
concurrency caps of the plug-ins stay (Crossref 1, OpenAlex 2), as with the real APIs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services.adapters.cassandra import CassandraStore  # noqa: E402
from services.adapters.kafka import KafkaBus, ensure_topics  # noqa: E402
from services.core.events import (  # noqa: E402
    PACK_REQUESTS,
    TOPIC_RAW,
    Observation,
    RefreshRequest,
    Status,
    refresh_topic,
)
from services.core.works import Work, WorkRef  # noqa: E402
from services.fetchers.registry import SOURCES  # noqa: E402
from services.stub.upstream import synthetic_count  # noqa: E402

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka import KafkaAdminClient, KafkaProducer, TopicPartition

STATE = Path(os.environ.get("ALM_LOCAL_DIR", ROOT / ".alm-local"))
KAFKA = os.environ.get("ALM_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
CASSANDRA = os.environ.get("ALM_CASSANDRA_HOSTS", "127.0.0.1").split(",")[0]
CASSANDRA_PORT = int(os.environ.get("ALM_CASSANDRA_PORT", "9042"))


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def server_pids() -> dict[str, int]:
    """The pids of the Kafka and Cassandra servers started by deploy/local."""
    return {
        name: int((STATE / "pids" / f"{name}.pid").read_text().strip())
        for name in ("kafka", "cassandra")
    }


def memory(pid: int) -> tuple[int, int]:
    """(current RSS, peak RSS) of a process in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]) // 1024, int(fields["VmHWM"].split()[0]) // 1024


@dataclass
class Proc:
    """A service process of the benchmark."""

    name: str
    proc: subprocess.Popen[bytes]
    started: float
    ready_after: float | None = None
    stopped_after: float | None = None
    rss: tuple[int, int] = (0, 0)
    cpu: float = 0.0  # CPU seconds used during the pipeline run


@dataclass
class Run:
    """Names, environment and processes of this run."""

    keyspace: str
    prefix: str
    env: dict[str, str]
    logs: Path
    procs: list[Proc] = field(default_factory=list)

    def start(self, name: str, *args: str) -> Proc:
        """Start `alm ARGS...` in the background."""
        log = (self.logs / f"{name}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.cli.main", *args],
            env=self.env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        log.close()
        p = Proc(name, proc, time.monotonic())
        self.procs.append(p)
        return p

    def alm(self, *args: str) -> float:
        """Run `alm ARGS...` to completion; seconds it took."""
        t = time.monotonic()
        subprocess.run(
            [sys.executable, "-m", "services.cli.main", *args],
            env=self.env,
            cwd=ROOT,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        return time.monotonic() - t


def infra_up() -> dict[str, str]:
    """Start the servers if needed; what infra-up said about each one's start-up."""
    env = {**os.environ, "ALM_PYTHON": sys.executable}
    out = subprocess.run(
        [str(ROOT / "deploy/local/infra-up")], env=env, check=True, capture_output=True, text=True
    ).stdout
    said = {}
    for name in ("kafka", "cassandra"):
        if f"{name} already running" in out:
            said[name] = "already running (not measured)"
        elif m := re.search(rf"{name} ready in ([\d.]+) s", out):
            said[name] = f"{m[1]} s to ready"
    return said


def group_ready(admin: Any, group: str, members: int = 1) -> bool:
    """Whether `group` is stable with `members` members, each holding partitions."""
    try:
        g = admin.describe_groups([group])[group]
    except Exception:
        return False
    holding = [
        m
        for m in g["members"]
        if any(
            a["partitions"]
            for a in (m.get("member_assignment") or {}).get("assigned_partitions", [])
        )
    ]
    return g["group_state"] == "Stable" and len(holding) >= members


def lag(admin: Any, group: str, topic: str, parts: int) -> int:
    """Records of `topic` the group has not committed."""
    tps = [TopicPartition(topic, p) for p in range(parts)]
    ends = _end_offsets(tps)
    try:
        committed = admin.list_group_offsets({group: None})[group]
    except Exception:
        committed = {}
    done = {tp: int(getattr(o, "offset", o)) for tp, o in committed.items()}
    return sum(ends[tp] - max(0, done.get(tp, 0)) for tp in tps)


_reader: Any = None


def _end_offsets(tps: list[Any]) -> dict[Any, int]:
    global _reader
    if _reader is None:
        from kafka import KafkaConsumer

        _reader = KafkaConsumer(bootstrap_servers=KAFKA, group_id=None)
    return {tp: int(o) for tp, o in _reader.end_offsets(tps).items()}


async def http_ready(url: str) -> bool:
    """Whether `url` answers."""
    try:
        async with aiohttp.ClientSession() as s, s.get(url) as resp:
            return resp.status < 500
    except aiohttp.ClientError:
        return False


async def start_services(
    run: Run, sources: list[str], stub_port: int, api_port: int, aggregators: int
) -> None:
    """Start every service and wait until each is ready (HTTP answers, consumer group joined)."""
    admin = KafkaAdminClient(bootstrap_servers=KAFKA)
    waits: dict[str, Any] = {}
    stub = run.start("stub-upstream", "stub-upstream", "--port", str(stub_port), "--synthetic")
    waits["stub-upstream"] = (stub, f"http://127.0.0.1:{stub_port}/_stub/hits")
    for n in range(aggregators):
        name = "aggregator" if aggregators == 1 else f"aggregator-{n + 1}"
        waits[name] = (run.start(name, "aggregator"), f"{run.prefix}alm-aggregator")
    sch = run.start("scheduler", "scheduler")
    waits["scheduler"] = (sch, f"{run.prefix}alm-scheduler")
    for source in sources:
        f = run.start(f"fetcher-{source}", "fetcher", "--source", source)
        waits[f.name] = (f, f"{run.prefix}alm-fetcher-{source}")
    api = run.start("api", "api", "--port", str(api_port))
    waits["api"] = (api, f"http://127.0.0.1:{api_port}/readyz")
    deadline = time.monotonic() + 180
    while waits and time.monotonic() < deadline:
        for name, (p, probe) in list(waits.items()):
            if p.proc.poll() is not None:
                raise RuntimeError(f"{name} exited; see {run.logs}/{name}.log")
            if probe.startswith("http"):
                ok = await http_ready(probe)
            else:
                expect = aggregators if name.startswith("aggregator") else 1
                ok = await asyncio.to_thread(group_ready, admin, probe, expect)
            if ok:
                p.ready_after = time.monotonic() - p.started
                del waits[name]
        await asyncio.sleep(0.2)
    admin.close()
    if waits:
        raise RuntimeError(f"not ready after 180 s: {sorted(waits)}; logs in {run.logs}")


async def wait_done(run: Run, sources: list[str], expected: int, t0: float) -> dict[str, float]:
    """Wait until every fetcher group committed its requests (so their `expected`
    observations are on the raw topic, packed into fewer records) and the aggregator then
    committed every raw record; when each fetcher group had finished (seconds after t0)."""
    admin = KafkaAdminClient(bootstrap_servers=KAFKA)
    raw_topic = run.prefix + TOPIC_RAW
    deadline = t0 + 600 + expected / 20
    fetched: dict[str, float] = {}
    try:
        while time.monotonic() < deadline:
            await asyncio.sleep(0.25)
            for p in run.procs:
                if p.proc.poll() is not None:
                    raise RuntimeError(f"{p.name} exited; see {run.logs}/{p.name}.log")
            for source in (s for s in sources if s not in fetched):
                group = f"{run.prefix}alm-fetcher-{source}"
                topic = run.prefix + refresh_topic(source)
                if await asyncio.to_thread(lag, admin, group, topic, 6) == 0:
                    fetched[source] = time.monotonic() - t0
            if len(fetched) < len(sources):
                continue
            group = f"{run.prefix}alm-aggregator"
            if await asyncio.to_thread(lag, admin, group, raw_topic, 6) == 0:
                return fetched
    finally:
        admin.close()
    raise RuntimeError(f"pipeline did not finish; logs in {run.logs}")


async def pipeline(run: Run, works: int, sources: list[str], rounds: int) -> list[dict[str, float]]:
    """Refresh `works` synthetic works from `sources` through the running services, `rounds`
    times: the first collects every total (all new), later rounds refresh what is stored (the
    stub answers the same numbers, so nothing changes: the routine case)."""
    store = CassandraStore([CASSANDRA], CASSANDRA_PORT, run.keyspace)
    bus = KafkaBus(KAFKA, client_id="bench", prefix=run.prefix)  # as the scheduler
    ids = [f"10.5555/bench.{i}" for i in range(works)]
    t = time.monotonic()
    for i in range(0, works, 2000):
        await store.register([Work(w, doi=w) for w in ids[i : i + 2000]])
    registered = works / (time.monotonic() - t)
    out = []
    for round_ in range(rounds):
        settled = await settle()
        now = datetime.now(UTC)
        cpu_before = cpu_snapshot(run)
        t0 = time.monotonic()
        reason = "on_demand" if round_ == 0 else "scheduled"
        for source in sources:
            requests = [
                (w, RefreshRequest(WorkRef(w, doi=w), source, now, reason).to_dict()) for w in ids
            ]
            for i in range(0, works, 5000):
                chunk = requests[i : i + 5000]
                await bus.publish(refresh_topic(source), chunk, pack=PACK_REQUESTS)
        published = time.monotonic() - t0
        expected = works * len(sources)
        fetched = await wait_done(run, sources, expected, t0)
        elapsed = time.monotonic() - t0
        cpu = {n: c - cpu_before[n] for n, c in cpu_snapshot(run).items()}
        sample = ids[:: max(1, works // 500)]
        states = await store.states([(w, s) for w in sample for s in sources])
        right = 0
        for w in sample:
            crossref = states.get((w, "crossref"))
            fresh = [states.get((w, s)) for s in sources]
            ok = all(st and st.retrieved_at and st.retrieved_at >= now for st in fresh) and (
                crossref is None
                or crossref.metrics.get("citations") == synthetic_count(w, "crossref")
            )
            right += ok
        out.append(
            {
                "refreshes": float(expected),
                "seconds": elapsed,
                "refreshes_per_s": expected / elapsed,
                "publish_seconds": published,
                "registrations_per_s": registered,
                "settle_seconds": settled,
                "sampled": float(len(sample)),
                "sampled_right": float(right),
                **{f"fetched_{source}": seconds for source, seconds in fetched.items()},
                **{f"cpu_{name}": seconds for name, seconds in cpu.items()},
            }
        )
    await bus.close()
    await store.close()
    return out


async def settle(idle: float = 0.15, longest: float = 90.0) -> float:
    """Wait until Cassandra is idle (under `idle` of a core over a second): the flushes and
    compactions that creating this run's keyspace and registering its works set off are not
    the pipeline's work. Returns the seconds waited."""
    pid = server_pids()["cassandra"]
    t = time.monotonic()
    while time.monotonic() - t < longest:
        before = cpu_seconds(pid)
        await asyncio.sleep(1.0)
        if cpu_seconds(pid) - before < idle:
            break
    return time.monotonic() - t


def cpu_snapshot(run: Run) -> dict[str, float]:
    """CPU seconds used so far by every service and server (and this process: it publishes)."""
    pids = {p.name: p.proc.pid for p in run.procs} | server_pids() | {"bench": os.getpid()}
    return {name: cpu_seconds(pid) for name, pid in pids.items()}


def cassandra_ceiling(keyspace: str, rows: int) -> float:
    """Prepared single-row inserts/s with execute_concurrent_with_args(concurrency=200)."""
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.concurrent import execute_concurrent_with_args
    from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy

    profile = ExecutionProfile(load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy()))
    cluster = Cluster(
        [CASSANDRA],
        port=CASSANDRA_PORT,
        protocol_version=5,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
    )
    session = cluster.connect()
    session.execute(
        f"CREATE TABLE IF NOT EXISTS {keyspace}.bench_raw (k text PRIMARY KEY, v bigint, t text)"
    )
    stmt = session.prepare(f"INSERT INTO {keyspace}.bench_raw (k, v, t) VALUES (?, ?, ?)")
    params = [(f"10.5555/raw.{i}", i, "crossref") for i in range(rows)]
    execute_concurrent_with_args(session, stmt, params[:2000], concurrency=200)  # warm up
    t = time.monotonic()
    execute_concurrent_with_args(session, stmt, params, concurrency=200, raise_on_first_error=True)
    rate = rows / (time.monotonic() - t)
    cluster.shutdown()
    return rate


def kafka_ceiling(prefix: str, messages: int) -> tuple[float, int]:
    """kafka-python produce rate (acks=all, idempotent, linger 5 ms) of observation-sized
    records; returns (msgs/s, bytes per record)."""
    topic = f"{prefix}bench.produce"
    admin = KafkaAdminClient(bootstrap_servers=KAFKA)
    admin.create_topics({topic: {"num_partitions": 6, "replication_factor": 1}})
    admin.wait_for_topics([topic])
    admin.close()
    obs = Observation("10.5555/raw.1", "crossref", datetime.now(UTC), Status.OK, {"citations": 7})
    value = json.dumps(obs.to_dict(), separators=(",", ":")).encode()
    producer = KafkaProducer(
        bootstrap_servers=KAFKA, acks="all", enable_idempotence=True, linger_ms=5
    )
    for i in range(2000):
        producer.send(topic, key=f"w{i}".encode(), value=value)
    producer.flush()
    t = time.monotonic()
    for i in range(messages):
        producer.send(topic, key=f"10.5555/raw.{i}".encode(), value=value)
    producer.flush()
    rate = messages / (time.monotonic() - t)
    producer.close()
    return rate, len(value)


async def stop_all(run: Run) -> None:
    """SIGTERM every service; how long each took to exit."""
    t = time.monotonic()
    for p in run.procs:
        if p.proc.poll() is None:
            p.proc.send_signal(signal.SIGTERM)
    while any(p.proc.poll() is None for p in run.procs) and time.monotonic() - t < 60:
        for p in run.procs:
            if p.stopped_after is None and p.proc.poll() is not None:
                p.stopped_after = time.monotonic() - t
        await asyncio.sleep(0.05)
    for p in run.procs:
        if p.proc.poll() is None:
            p.proc.kill()
        elif p.stopped_after is None:
            p.stopped_after = time.monotonic() - t


def cleanup(run: Run) -> None:
    """Drop the keyspace and delete the topics of this run."""
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import DCAwareRoundRobinPolicy

    profile = ExecutionProfile(load_balancing_policy=DCAwareRoundRobinPolicy(), request_timeout=60)
    cluster = Cluster(
        [CASSANDRA],
        port=CASSANDRA_PORT,
        protocol_version=5,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
    )
    cluster.connect().execute(f"DROP KEYSPACE IF EXISTS {run.keyspace}")
    cluster.shutdown()
    admin = KafkaAdminClient(bootstrap_servers=KAFKA)
    mine = [t for t in admin.list_topics() if t.startswith(run.prefix)]
    if mine:
        admin.delete_topics(mine)
    admin.close()


ROUND_TITLES = ("first collection: every total is new", "routine refresh: upstream unchanged")


def report(
    run: Run,
    servers: dict[str, str],
    rounds: list[dict[str, float]],
    ceilings: dict[str, float],
) -> None:
    """Print every figure."""
    print("\n== start-up and memory (RSS now / peak, MB)")
    for name in ("kafka", "cassandra"):
        pid = int((STATE / "pids" / f"{name}.pid").read_text().strip())
        rss, peak = memory(pid)
        print(f"  {name:<24} {servers.get(name, '?'):<32} {rss:>6} / {peak:<6}")
    for p in run.procs:
        ready = f"{p.ready_after:.1f} s to ready" if p.ready_after is not None else "-"
        stop = f", stop {p.stopped_after:.1f} s" if p.stopped_after is not None else ""
        print(f"  {p.name:<24} {ready + stop:<32} {p.rss[0]:>6} / {p.rss[1]:<6}")
    for number, figures in enumerate(rounds, 1):
        title = ROUND_TITLES[min(number, len(ROUND_TITLES)) - 1]
        print(f"\n== pipeline, round {number} ({title})")
        report_round(figures)
    print("\n== raw ceilings, same run, services stopped")
    print(
        f"  cassandra-driver prepared inserts (concurrency 200): {ceilings['cassandra']:.0f} rows/s"
    )
    print(f"  kafka-python produce ({int(ceilings['record_bytes'])} B records, acks=all): "
          f"{ceilings['kafka']:.0f} msgs/s")  # fmt: skip
    print("\n== ratios")
    for number, figures in enumerate(rounds, 1):
        rate = figures["refreshes_per_s"]
        print(f"  round {number}: pipeline / Cassandra raw inserts: "
              f"{rate / ceilings['cassandra']:.3f}; pipeline / Kafka raw produce: "
              f"{rate / ceilings['kafka']:.4f}")  # fmt: skip


def report_round(figures: dict[str, float]) -> None:
    """Print one round's rate, fetchers and CPU."""
    print(f"  {int(figures['refreshes'])} refreshes in {figures['seconds']:.1f} s")
    print(f"  pipeline: {figures['refreshes_per_s']:.0f} refreshes/s")
    for key, seconds in figures.items():
        if key.startswith("fetched_"):
            n = figures["refreshes"] / sum(k.startswith("fetched_") for k in figures)
            print(f"  fetcher {key[8:]}: its {int(n)} requests done after {seconds:.1f} s "
                  f"({n / seconds:.0f}/s)")  # fmt: skip
    print(f"  (requests published in {figures['publish_seconds']:.1f} s; works registered at "
          f"{figures['registrations_per_s']:.0f}/s beforehand, then Cassandra idle after "
          f"{figures['settle_seconds']:.0f} s)")  # fmt: skip
    cpu = {k[4:]: v for k, v in figures.items() if k.startswith("cpu_")}
    total = sum(cpu.values())
    cores = os.cpu_count() or 1
    per = 1e6 / figures["refreshes"]
    print(f"  CPU during the run: {total:.1f} s of {cores * figures['seconds']:.1f} s available "
          f"on {cores} cores, {per * total:.0f} us per refresh:")  # fmt: skip
    for name, seconds in sorted(cpu.items(), key=lambda kv: -kv[1]):
        print(f"    {name:<22} {seconds:6.1f} s  {per * seconds:5.0f} us/refresh")
    print(f"  check: {int(figures['sampled_right'])}/{int(figures['sampled'])} sampled works "
          "stored this round's totals, equal to the stub's")  # fmt: skip


async def main() -> None:
    """Run the benchmark."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--works", type=int, default=10000)
    parser.add_argument("--sources", default="crossref,openalex")
    parser.add_argument("--aggregators", type=int, default=1, help="aggregator processes")
    parser.add_argument("--rate", type=float, default=10000.0, help="requests/s per source")
    parser.add_argument("--cassandra-rows", type=int, default=50000)
    parser.add_argument("--kafka-messages", type=int, default=200000)
    parser.add_argument(
        "--rounds", type=int, default=2, help="1: first collection; 2: and a routine refresh"
    )
    parser.add_argument("--keep", action="store_true", help="keep keyspace, topics and logs")
    args = parser.parse_args()
    sources = [s for s in args.sources.split(",") if s]
    unknown = [s for s in sources if s not in SOURCES]
    if unknown:
        parser.error(f"unknown sources {unknown}")

    servers = infra_up()
    tag = secrets.token_hex(3)
    logs = STATE / "logs" / f"bench-{tag}"
    logs.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ALM_")}
    stub_port, api_port = free_port(), free_port()
    env.update(
        ALM_BUS="kafka",
        ALM_STORE="cassandra",
        ALM_KAFKA_BOOTSTRAP=KAFKA,
        ALM_CASSANDRA_HOSTS=CASSANDRA,
        ALM_CASSANDRA_PORT=str(CASSANDRA_PORT),
        ALM_CASSANDRA_KEYSPACE=f"alm_bench_{tag}",
        ALM_TOPIC_PREFIX=f"bench{tag}.",
        ALM_DATA_DIR=str(logs / "data"),
        ALM_UPSTREAM_ROOT=f"http://127.0.0.1:{stub_port}",
        ALM_SOURCES=",".join(sources),
        PYTHONPATH=str(ROOT),
        **{f"ALM_{s.upper()}_RATE": str(args.rate) for s in sources},
    )
    run = Run(env["ALM_CASSANDRA_KEYSPACE"], env["ALM_TOPIC_PREFIX"], env, logs)
    try:
        print(f"bench: keyspace {run.keyspace}, topics {run.prefix}*, logs {logs}")
        print(f"bench: alm db migrate {run.alm('db', 'migrate'):.1f} s")
        await ensure_topics(KAFKA, sorted(SOURCES), 6, prefix=run.prefix)
        await start_services(run, sources, stub_port, api_port, args.aggregators)
        print(
            f"bench: services ready; {args.works} works x {sources}, "
            f"{args.aggregators} aggregator process(es)"
        )
        figures = await pipeline(run, args.works, sources, max(1, args.rounds))
        for p in run.procs:
            p.rss = memory(p.proc.pid)
        await stop_all(run)
        print("bench: services stopped; measuring raw ceilings")
        ceilings = {"cassandra": cassandra_ceiling(run.keyspace, args.cassandra_rows)}
        ceilings["kafka"], size = kafka_ceiling(run.prefix, args.kafka_messages)
        ceilings["record_bytes"] = float(size)
        report(run, servers, figures, ceilings)
    finally:
        await stop_all(run)
        if not args.keep:
            cleanup(run)


if __name__ == "__main__":
    asyncio.run(main())
