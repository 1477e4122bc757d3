"""What each `alm` subcommand does, over the same bootstrap the tests use."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import signal
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import prometheus_client
import structlog
from aiohttp import web

from services.adapters.memory_bus import MemoryBus
from services.api import server as api_server
from services.api.app import init_app
from services.bootstrap import (
    Pipeline,
    api_context,
    make_bus,
    make_catalog,
    make_hook_store,
    make_key_store,
    make_pipeline,
    make_scheduling,
    make_store,
    utc_now,
)
from services.cli.progress import Progress
from services.core.control import describe_source, set_paused
from services.core.imports import NotText, decode_text, read_lines, validate
from services.core.ports import Bus, Store
from services.core.text import bounded
from services.embedded import (
    Pacing,
    RunSummary,
    keep_checking,
    keep_reconciling,
    keep_stepping,
    keep_ticking,
    release_dead_leases,
    release_leases_at_start,
    run_services,
)
from services.fetchers.registry import SOURCES, UnknownSource, get_source
from services.keyring import ensure_local_admin
from services.notifier.main import sender_for
from services.notifier.service import Notifier
from services.registration import CHUNK, RegisterResult, Scheduling, register, register_parsed
from services.settings import FIXTURES, Settings
from services.shutdown import close_all
from services.stub import server as stub_server

_log = structlog.get_logger("alm.cli")


class UsageError(Exception):
    """A command that cannot run as asked; the message says what to change."""


def _stop_event(force_on_second: bool = False) -> asyncio.Event:
    """An Event SIGINT and SIGTERM set (a clean stop); with `force_on_second`, a second signal
    ends the process at once (what is committed stays; SQLite and the leases recover the
    rest on the next start)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        if stop.is_set() and force_on_second:
            print("alm: stopping now", flush=True)
            os._exit(130)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, on_signal)
    return stop


async def _serve_api(
    settings: Settings, store: Store | None, bus: Bus | None, shutdown_timeout: float = 5.0
) -> web.AppRunner:
    """Serve the API; with ALM_METRICS_PORT, Prometheus /metrics on a listener of its own (the
    API's public port has none unless ALM_API_PUBLIC_METRICS), stopped with the runner."""
    app = init_app(api_context(settings, store=store, bus=bus))
    if settings.metrics_port:
        metrics, _ = prometheus_client.start_http_server(settings.metrics_port, addr=settings.host)

        async def stop_metrics(_: web.Application) -> None:
            await asyncio.to_thread(metrics.shutdown)
            metrics.server_close()

        app.on_cleanup.append(stop_metrics)
    return await api_server.serve(app, settings.host, settings.port, shutdown_timeout)


@contextlib.contextmanager
def _only_run(settings: Settings) -> Iterator[None]:
    """Hold the data directory for this `alm run` (one process owns its leases)."""
    if settings.store != "sqlite":
        yield
        return
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with open(settings.data_dir / "alm.lock", "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError(
                f"another `alm run` is using {settings.data_dir.resolve()}: stop it first"
            ) from None
        yield


def _print_registration(results: list[RegisterResult], bad_lines: list[str]) -> None:
    created = sum(r.created for r in results if r.error is None)
    known = sum(not r.created for r in results if r.error is None)
    invalid = len(bad_lines) + sum(r.error is not None for r in results)
    for line in bad_lines:
        print(f"  invalid: {line}")
    for r in results:
        if r.error:
            print(f"  invalid: {r.error}")
    print(f"works: {created} registered, {known} already known, {invalid} invalid", flush=True)


async def _register_file(
    path: Path, store: Store, bus: Bus, scheduling: Scheduling, stop: asyncio.Event
) -> tuple[list[RegisterResult], list[str]]:
    """Register the file's identifiers `CHUNK` at a time, each chunk with its due entries in
    one write; a stop request ends it between chunks (what was registered is scheduled)."""
    try:
        data = await asyncio.to_thread(path.read_bytes)
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        text = decode_text(data)
    except NotText as exc:
        raise UsageError(f"{path.name} {exc}") from None
    lines, bad = read_lines(text, path.name)
    good, invalid = validate(lines)
    results: list[RegisterResult] = []
    with Progress("registering", "works", total=len(good)) as progress:
        for start in range(0, len(good), CHUNK):
            if stop.is_set():
                print(
                    f"works: stopped after {start} of {len(good)} identifiers; "
                    "run again for the rest"
                )
                break
            chunk = [(line.value, ident, None) for line, ident in good[start : start + CHUNK]]
            results += await register_parsed(chunk, store, bus, utc_now(), scheduling)
            progress.advance(len(chunk))
    problems = [
        f"{path.name} line {b.line}: {bounded(b.value, 200)!r}: {b.reason}" for b in bad + invalid
    ]
    return results, sorted(problems, key=lambda s: int(s.split(" line ")[1].split(":")[0]))


def _print_summary(summary: RunSummary, note: str = "") -> None:
    print(
        f"refreshes: {summary.requested} requested, {summary.refreshed} done, "
        f"{summary.errors} errors; {summary.changes} metric changes; "
        f"{summary.upstream_calls} upstream calls" + (f" ({note})" if note else ""),
        flush=True,
    )


async def _errors_detail(p: Pipeline, work_ids: list[str], show: int = 20) -> None:
    states = await p.store.states_for(work_ids)
    errors = [
        f"  error: {work_id} from {st.source}: {st.error}"
        for work_id, rows in states.items()
        for st in rows
        if st.error and st.status and st.status.value == "error"
    ]
    print("\n".join(errors[:show]))
    if len(errors) > show:
        print(f"  ... and {len(errors) - show} more (see status/error in the API)")


async def run(settings: Settings, works_file: Path, offline: bool, once: bool) -> int:
    """`alm run`: serve the API at once; register the works; refresh in the background, print
    what the first refresh did; with `once`, exit then. SIGINT/SIGTERM stop it cleanly at any
    moment (within ALM_SHUTDOWN_GRACE seconds; a second signal stops at once)."""
    stop = _stop_event(force_on_second=True)  # before anything starts
    if settings.bus != "memory":
        raise UsageError(
            "`alm run` is the embedded mode, over the in-process bus: unset ALM_BUS "
            "(the distributed mode runs `alm scheduler`, `alm fetcher`, ... as processes)"
        )
    with _only_run(settings):
        return await _run(settings, works_file, offline, once, stop)


OFFLINE_RATE = 1000.0  # requests/s to the built-in stub: it is ours, on loopback


def offline_settings(settings: Settings, stub_root: str) -> Settings:
    """`settings` pointed at the built-in stub upstream, which is not paced like the real APIs
    (their politeness rates made the sample's refresh take ~9 s against a loopback server); an
    explicit ALM_<SOURCE>_RATE still wins."""
    rates = {name: OFFLINE_RATE for name in SOURCES} | dict(settings.rates)
    return settings.with_(upstream_root=stub_root, rates=rates)


async def _run(
    settings: Settings, works_file: Path, offline: bool, once: bool, stop: asyncio.Event
) -> int:
    stub_runner = None
    if offline:
        # recorded works, and generated deterministic ones under the DOI test prefix 10.5555/
        app = stub_server.init_app(SOURCES, FIXTURES, synthetic=True)
        stub_runner, root = await stub_server.start(app)
        settings = offline_settings(settings, root)
    store, bus = make_store(settings), make_bus(settings)
    api_runner = None
    try:
        await store.migrate()
        pipeline = make_pipeline(settings, bus, store)
        async with pipeline.caller, sender_for(settings) as sender:
            notifier = Notifier(
                bus, make_hook_store(store), store, sender, settings.notify, make_catalog()
            )
            where = f" (offline: stub upstream {settings.upstream_root})" if offline else ""
            print(f"ALM embedded: data in {settings.data_dir.resolve()}{where}")
            if isinstance(bus, MemoryBus) and (released := await release_dead_leases(pipeline)):
                print(f"restart: {released} refreshes left in flight by the last run are due")
            await _local_admin(settings, store)
            api_runner = await _serve_api(settings, store, bus)
            print(f"API: http://{settings.host}:{settings.port}/api/v1/works", flush=True)
            await _register_and_refresh(settings, pipeline, works_file, once, stop, notifier)
    finally:
        if api_runner is not None:
            await api_runner.cleanup()
        await store.close()
        if stub_runner is not None:
            await stub_runner.cleanup()
    return 0


async def _local_admin(settings: Settings, store: Store) -> None:
    """The embedded user's admin key for the API's writes: DATA_DIR/admin.key, made when no
    admin key exists (not with ALM_API_ADMIN_KEY, which the API itself stores)."""
    if settings.access.admin_key:
        print("admin key: ALM_API_ADMIN_KEY")
        return
    admin = await ensure_local_admin(make_key_store(store), settings.data_dir, utc_now())
    if admin.usable:
        made = "written to" if admin.created else "in"
        print(f"admin key: {made} {admin.path} (writes: Authorization: Bearer <that key>)")
    else:
        print(f"admin key: none in {admin.path}; `alm keys create --role admin` makes one")


async def _register_and_refresh(
    settings: Settings,
    p: Pipeline,
    works_file: Path,
    once: bool,
    stop: asyncio.Event,
    notifier: Notifier,
) -> None:
    """Register the file's works, then run every service until `stop` (with `once`, until the
    first time nothing is left to do); print what the first refresh did."""
    results, bad = await _register_file(works_file, p.store, p.bus, p.scheduler.scheduling, stop)
    _print_registration(results, bad)
    idle = False

    async def first_idle(summary: RunSummary) -> None:
        nonlocal idle
        idle = True
        _print_summary(summary)
        if summary.errors:
            await _errors_detail(p, [r.work_id for r in results if r.work_id])
        if once:
            stop.set()

    pacing = Pacing(
        reconcile_seconds=settings.reconcile_seconds,
        grace=settings.shutdown_grace,
        checks_seconds=settings.checks_seconds,
    )
    summary = await run_services(p, stop, pacing, on_idle=first_idle, notifier=notifier)
    if not idle:
        _print_summary(summary, "stopped before done; the rest is refreshed on the next run")


Registry = Callable[[Store, Bus, Scheduling], Awaitable[int]]


async def _with_registry(settings: Settings, action: Registry) -> int:
    """Run `action` over the configured store and bus; registration schedules each work for
    the sources this configuration runs (no scheduler needs to be listening)."""
    store, bus = make_store(settings), make_bus(settings)
    try:
        await store.migrate()
        return await action(store, bus, make_scheduling(settings))
    finally:
        await bus.close()
        await store.close()


async def works_add(settings: Settings, ids: list[str]) -> int:
    """`alm works add ID...`: register identifiers; invalid ones are reported."""

    async def action(store: Store, bus: Bus, scheduling: Scheduling) -> int:
        results = await register(ids, store, bus, utc_now(), scheduling)
        _print_registration(results, [])
        return 1 if any(r.error for r in results) else 0

    return await _with_registry(settings, action)


async def works_import(settings: Settings, path: Path) -> int:
    """`alm works import FILE`: one id a line, CSV with an id column, or JSONL. SIGINT or
    SIGTERM stops it between chunks; every work registered by then is scheduled."""
    stop = _stop_event()

    async def action(store: Store, bus: Bus, scheduling: Scheduling) -> int:
        results, bad = await _register_file(path, store, bus, scheduling, stop)
        _print_registration(results, bad)
        return 1 if bad or stop.is_set() else 0

    return await _with_registry(settings, action)


async def sources(settings: Settings, as_json: bool) -> int:
    """`alm sources`: every installed source, its metrics, groups, batching, limits, status."""
    store = make_store(settings)
    try:
        await store.migrate()
        statuses = await store.source_statuses()
    finally:
        await store.close()
    described = [describe_source(s.info(), statuses.get(s.name)) for s in SOURCES.values()]
    if as_json:
        print(json.dumps(described, indent=2))
        return 0
    for d in described:
        metrics = ", ".join(f"{m['name']} ({m['group']})" for m in d["metrics"])
        state = f"PAUSED: {d['pause_reason']}" if d["paused"] else "active"
        head = f"{d['name']:<16} {d['display_name']:<20} batch {d['batch_size']:<4}"
        print(f"{head} {metrics}  [{state}]")
    return 0


async def source_control(settings: Settings, name: str, action: str, reason: str | None) -> int:
    """`alm sources pause|resume NAME`: pause a source with a reason, or resume it."""
    if name not in SOURCES:
        raise UsageError(f"unknown source {name!r}; known: {', '.join(sorted(SOURCES))}")
    store = make_store(settings)
    try:
        await store.migrate()
        status = set_paused(name, action == "pause", reason, utc_now())
        await store.set_source_status(status)
    finally:
        await store.close()
    print(f"{name}: {'paused (' + (reason or '') + ')' if status.paused else 'resumed'}")
    return 0


async def db_migrate(settings: Settings) -> int:
    """`alm db migrate`: apply the store's schema migrations."""
    store = make_store(settings)
    try:
        await store.migrate()
    finally:
        await store.close()
    print(f"migrations applied ({settings.store})")
    return 0


async def db_reindex_dates(settings: Settings) -> int:
    """`alm db reindex-dates`: a `works_by_issued` row for every work (Cassandra: what migration
    012 wrote, again; SQLite's index needs nothing)."""
    store = make_store(settings)
    try:
        await store.migrate()
        if settings.store == "cassandra":
            from services.adapters import cassandra_issued
            from services.adapters.cassandra_store import CassandraStore

            assert isinstance(store, CassandraStore)
            await cassandra_issued.backfill(await store.session())
    finally:
        await store.close()
    print(f"publication-date listing indexed ({settings.store})")
    return 0


async def topics_create(settings: Settings, partitions: int, replication: int = -1) -> int:
    """`alm topics create`: create every topic on Kafka (idempotent; existing topics keep
    their partitions and replicas)."""
    if settings.bus != "kafka":
        raise UsageError("topics exist only on Kafka: set ALM_BUS=kafka")
    from services.adapters.kafka_bus import ensure_topics

    created = await ensure_topics(
        settings.kafka_bootstrap,
        sorted(SOURCES),
        partitions,
        prefix=settings.topic_prefix,
        replication=replication,
    )
    print(f"topics ready ({len(created)} created)")
    return 0


async def stub_upstream(
    host: str, port: int, synthetic: bool, catalogue_works: int | None = None
) -> int:
    """`alm stub-upstream`: serve recorded upstream responses until stopped."""
    runner, root = await stub_server.start(
        stub_server.init_app(SOURCES, FIXTURES, synthetic, catalogue_works), host, port
    )
    print(f"stub upstream: {root}/<source>/", flush=True)
    await _stop_event().wait()
    await runner.cleanup()
    return 0


async def service(name: str, settings: Settings, source: str | None) -> int:
    """Run one service of the distributed mode until SIGTERM."""
    if name == "api":
        runner = await _serve_api(settings, None, None)
        print(f"API: http://{settings.host}:{settings.port}/api/v1/works", flush=True)
        await _stop_event().wait()
        await runner.cleanup()
        return 0
    if settings.bus == "memory":
        raise UsageError(
            f"`alm {name}` runs as its own process over Kafka: set ALM_BUS=kafka "
            "(or use `alm run` for the embedded mode)"
        )
    if settings.metrics_port:
        # worker services have no API: their Prometheus metrics get a port of their own
        prometheus_client.start_http_server(settings.metrics_port, addr=settings.host)
    if name == "notifier":
        from services.notifier.main import run as run_notifier

        return await run_notifier(settings, _stop_event())
    if name == "aggregator":
        from services.aggregator.app import run_worker

        return await run_worker(settings)
    if source is not None:
        try:
            get_source(source)
        except UnknownSource as exc:
            raise UsageError(str(exc.args[0])) from None
        settings = settings.with_(sources=(source,))
    return await _run_services(name, settings)


async def _run_services(name: str, settings: Settings) -> int:
    store, bus = make_store(settings), make_bus(settings)
    pipeline = make_pipeline(settings, bus, store)
    stop = _stop_event()
    try:
        async with pipeline.caller:
            if name == "scheduler":
                await release_leases_at_start(pipeline, stop)
                await asyncio.gather(
                    keep_stepping("scheduler", pipeline.scheduler.step, stop),
                    keep_ticking(pipeline, stop, every=5.0),
                    keep_reconciling(pipeline, stop, settings.reconcile_seconds),
                    keep_checking(pipeline, stop, settings.checks_seconds),
                )
            else:
                fetcher = pipeline.fetchers[0]
                await keep_stepping(f"fetcher-{fetcher.source.name}", fetcher.step, stop)
    finally:
        await close_all(bus.close(), store.close())  # within shutdown.CLOSE_SECONDS
    return 0
