"""Benchmark: how long a metric change takes to reach an SSE client of the API and a webhook
receiver, at a steady rate of changes. Prints p50/p90/p99/max per channel and what was missed.
Not a test: it asserts nothing, it measures.

    .venv/bin/python bench/changes_latency.py --rate 500 --seconds 30                # embedded
    .venv/bin/python bench/changes_latency.py --rate 500 --seconds 30 \\
        --kafka 127.0.0.1:9092 --cassandra 127.0.0.1:9042                           # distributed

"Change" is the moment the aggregator's `publish` of it on alm.metrics.changed is called (a
batch every --tick seconds, rate x tick changes each). The publisher, the API (its hub and the
SSE stream), the notifier with its webhook sender and an SSE client of the API run in this
process, on one event loop; the webhook receiver (loopback HTTP, answering 200 after checking
the signature) is a process of its own. Distributed: the change topic is a fresh prefixed one
on the Kafka given (the hub reads it with a group-less consumer, the notifier in its group),
the webhook store a fresh keyspace on the Cassandra given (dropped at the end). The API and the
notifier share this process's one event loop: as separate processes they would do no worse.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import orjson
from aiohttp import web

from services.api.app import init_app
from services.api.server import serve
from services.bootstrap import api_context, make_bus, make_catalog, make_hook_store, make_store
from services.core.change_filter import ChangeFilter
from services.core.delivery import SIGNATURE_HEADER, verify
from services.core.events import TOPIC_CHANGED, MetricChanged
from services.core.ports import Bus
from services.core.webhooks import Hook
from services.embedded import keep_stepping
from services.fetchers.registry import SOURCES
from services.notifier.sender import Sender
from services.notifier.service import Notifier
from services.notify_settings import NotifySettings
from services.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
SECRET = "whsec_bench"
AT = datetime(2026, 1, 1, tzinfo=UTC)


class Clock:
    """When each change was published and when each channel first got it (monotonic)."""

    def __init__(self) -> None:
        self.sent: dict[str, float] = {}
        self.got: dict[str, dict[str, float]] = {"sse": {}, "webhook": {}}
        self.bad_signatures = 0

        self.complete = asyncio.Event()  # every change sent arrived on every channel

    def arrived(self, channel: str, event_id: str, at: float | None = None) -> None:
        self.got[channel].setdefault(event_id, time.monotonic() if at is None else at)
        if self.done():
            self.complete.set()

    def done(self) -> bool:
        """Whether every change sent arrived on every channel (the subset check runs only once
        the counts allow it: near the end)."""
        return all(len(got) >= len(self.sent) for got in self.got.values()) and all(
            self.sent.keys() <= got.keys() for got in self.got.values()
        )

    def latencies(self, channel: str) -> list[float]:
        got = self.got[channel]
        return sorted(got[e] - t for e, t in self.sent.items() if e in got)


async def serve_receiver() -> None:
    """The webhook receiver, run as a process of its own (a receiver is another system: it
    must not share the notifier's CPU): checks each signature, answers 200 and prints
    `<event id> <monotonic time>` (the clock is the machine's, comparable across processes)
    per delivery, after `port <n>` once it listens."""
    out = sys.stdout

    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        if not verify(SECRET, request.headers.get(SIGNATURE_HEADER, ""), body, int(time.time())):
            out.write("bad-signature 0\n")
            return web.Response(status=400)
        out.write(f"{request.headers['ALM-Event-Id']} {time.monotonic()}\n")
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/hook", receive)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    out.write(f"port {runner.addresses[0][1]}\n")
    out.flush()
    while True:
        await asyncio.sleep(0.05)
        out.flush()


async def receiver(clock: Clock) -> tuple[asyncio.subprocess.Process, str, asyncio.Task[None]]:
    """The receiver process, its URL, and the task noting its deliveries' arrival times."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--serve-receiver",
        stdout=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    first = (await proc.stdout.readline()).decode().split()
    url = f"http://127.0.0.1:{first[1]}/hook"

    async def note() -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:
            event_id, at = raw.decode().split()
            if event_id == "bad-signature":
                clock.bad_signatures += 1
            else:
                clock.arrived("webhook", event_id, float(at))

    return proc, url, asyncio.create_task(note())


async def notifier_process(
    args: argparse.Namespace, prefix: str, keyspace: str
) -> asyncio.subprocess.Process:
    """`alm notifier` as its own process (as the distributed mode runs it), over this run's
    topic prefix and keyspace; it reads the hook the bench registered."""
    if not (args.kafka and args.cassandra):
        raise SystemExit("--notifier-process needs --kafka and --cassandra")
    host, _, port = args.cassandra.partition(":")
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "ALM_BUS": "kafka",
        "ALM_KAFKA_BOOTSTRAP": args.kafka,
        "ALM_TOPIC_PREFIX": prefix,
        "ALM_STORE": "cassandra",
        "ALM_CASSANDRA_HOSTS": host,
        "ALM_CASSANDRA_PORT": port or "9042",
        "ALM_CASSANDRA_KEYSPACE": keyspace,
        "ALM_WEBHOOK_ALLOW_PRIVATE": "1",
    }
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "services.cli.main",
        "notifier",
        env=env,
        cwd=ROOT,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
    )


async def sse_client(url: str, clock: Clock, connected: asyncio.Event) -> None:
    """Read the stream, noting each change's arrival by its event id."""
    async with aiohttp.ClientSession() as http, http.get(url, timeout=None) as resp:
        assert resp.status == 200, await resp.text()
        connected.set()
        async for raw in resp.content:
            line = raw.decode().rstrip("\r\n")
            if line.startswith("data: {"):
                clock.arrived("sse", orjson.loads(line[6:])["event_id"])


def changes(start: int, count: int) -> list[MetricChanged]:
    """`count` distinct changes (distinct works, so every partition gets some)."""
    return [
        MetricChanged(
            f"10.5555/bench.{n}",
            "crossref",
            {"citations": 1},
            {"citations": 2},
            {"citations": 1},
            AT + timedelta(seconds=n),
            None,
        )
        for n in range(start, start + count)
    ]


def percentiles(values: list[float]) -> str:
    if not values:
        return "none arrived"
    q = statistics.quantiles(values, n=100, method="inclusive") if len(values) > 1 else values * 99
    ms = [v * 1000 for v in (q[49], q[89], q[98], values[-1])]
    return "p50 {:.1f} ms  p90 {:.1f} ms  p99 {:.1f} ms  max {:.1f} ms".format(*ms)


async def run(args: argparse.Namespace) -> None:
    data = Path(tempfile.mkdtemp(prefix="alm-bench-changes-"))
    prefix = f"bench{secrets.token_hex(3)}."
    keyspace = f"bench_changes_{secrets.token_hex(3)}"
    notify = NotifySettings(allow_private=True, heartbeat=5.0)
    settings = Settings(data_dir=data, status_cache_seconds=0, notify=notify)
    if args.kafka:
        from services.adapters.kafka import ensure_topics

        settings = settings.with_(bus="kafka", kafka_bootstrap=args.kafka, topic_prefix=prefix)
        await ensure_topics(args.kafka, sorted(SOURCES), args.partitions, prefix=prefix)
    if args.cassandra:
        host, _, port = args.cassandra.partition(":")
        settings = settings.with_(
            store="cassandra",
            cassandra_hosts=(host,),
            cassandra_port=int(port or 9042),
            keyspace=keyspace,
        )
    store, bus = make_store(settings), make_bus(settings)
    await store.migrate()
    clock = Clock()
    stop = asyncio.Event()
    recv, hook_url, noting = await receiver(clock)
    api = await serve(init_app(api_context(settings, store=store, bus=bus)), "127.0.0.1", 0)
    api_port = api.addresses[0][1]
    hooks = make_hook_store(store)
    await hooks.add_hook(Hook("wh_bench", hook_url, SECRET, ChangeFilter(), AT, AT))
    tasks: list[asyncio.Task[None]] = []
    separate = await notifier_process(args, prefix, keyspace) if args.notifier_process else None
    async with Sender(notify.webhook_timeout, True, settings.user_agent) as sender:
        if separate is None:
            notifier = Notifier(bus, hooks, store, sender, notify, make_catalog())
            tasks.append(asyncio.create_task(keep_stepping("notifier", notifier.step, stop, 0.2)))
            tasks.append(asyncio.create_task(notifier.keep_draining(stop)))
        else:
            tasks += [asyncio.create_task(stop.wait()), asyncio.create_task(stop.wait())]
        connected = asyncio.Event()
        url = f"http://127.0.0.1:{api_port}/api/v1/changes"
        tasks.append(asyncio.create_task(sse_client(url, clock, connected)))
        await asyncio.wait_for(connected.wait(), 60)
        try:
            await _warm_up(bus, clock)
            clock.sent.clear()
            await _publish(bus, clock, args.rate, args.seconds, args.tick)
            clock.complete.clear()
            if not clock.done():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(clock.complete.wait(), args.grace)
        finally:
            stop.set()
            for task in tasks[2:]:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await api.cleanup()
            recv.terminate()
            await recv.wait()
            if separate is not None:
                separate.terminate()
                await separate.wait()
            noting.cancel()
            await bus.close()
            await store.close()
            if args.cassandra:
                await _drop_keyspace(args.cassandra, keyspace)
    _report(args, clock, separate is not None)


def _report(args: argparse.Namespace, clock: Clock, separate: bool) -> None:
    mode = "distributed (Kafka + Cassandra)" if args.kafka else "embedded (in-process bus)"
    if separate:
        mode += ", `alm notifier` in a process of its own"
    if args.kafka and not args.cassandra:
        mode = "Kafka + SQLite"
    print(f"{mode}: {len(clock.sent)} changes at {args.rate}/s for {args.seconds} s")
    for channel in ("sse", "webhook"):
        lat = clock.latencies(channel)
        missed = len(clock.sent) - len(lat)
        print(f"  change -> {channel:8} {percentiles(lat)}  ({missed} not arrived)")
    if clock.bad_signatures:
        print(f"  {clock.bad_signatures} deliveries with a bad signature")


async def _warm_up(bus: Bus, clock: Clock) -> None:
    """Publish changes until both channels get one: the consumers are assigned and reading."""
    for n in range(600):
        [change] = changes(10_000_000 + n, 1)
        clock.sent[change.event_id] = time.monotonic()
        await bus.publish(TOPIC_CHANGED, [(change.work_id, change.to_dict())])
        await asyncio.sleep(0.1)
        if all(change.event_id in clock.got[c] for c in clock.got):
            return
    raise SystemExit("the channels never got a warm-up change")


async def _publish(bus: Bus, clock: Clock, rate: int, seconds: float, tick: float) -> None:
    """`rate` changes a second, a batch every `tick` seconds, on schedule (not drifting) as
    long as each publish is acknowledged within `tick`; the rate achieved is printed if not."""
    per_tick = max(1, round(rate * tick))
    start = time.monotonic()
    n = 0
    for i in range(int(seconds / tick)):
        batch = changes(n, per_tick)
        n += per_tick
        now = time.monotonic()
        for c in batch:
            clock.sent[c.event_id] = now
        await bus.publish(TOPIC_CHANGED, [(c.work_id, c.to_dict()) for c in batch])
        delay = start + (i + 1) * tick - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
    took = time.monotonic() - start
    if took > seconds + 1.0:
        print(f"  (publishing took {took:.1f} s: {n / took:.0f} changes/s achieved)")


async def _drop_keyspace(address: str, keyspace: str) -> None:
    from cassandra.cluster import Cluster

    host, _, port = address.partition(":")

    def drop() -> None:
        cluster = Cluster([host], port=int(port or 9042))
        try:
            cluster.connect().execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=120)
        finally:
            cluster.shutdown()

    with contextlib.suppress(Exception):
        await asyncio.to_thread(drop)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=500, help="changes per second")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--tick", type=float, default=0.02, help="seconds between batches")
    parser.add_argument("--grace", type=float, default=30.0, help="wait for stragglers")
    parser.add_argument("--kafka", help="bootstrap host:port (else the in-process bus)")
    parser.add_argument("--cassandra", help="host[:port] (else SQLite)")
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument(
        "--notifier-process",
        action="store_true",
        help="run `alm notifier` as a process of its own (needs --kafka and --cassandra)",
    )
    parser.add_argument("--serve-receiver", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    asyncio.run(serve_receiver() if args.serve_receiver else run(args))


if __name__ == "__main__":
    main()
