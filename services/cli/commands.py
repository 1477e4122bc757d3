"""What each `alm` subcommand does, over the same bootstrap the tests use."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path

import prometheus_client

from services.bootstrap import (
    make_bus,
    make_caller,
    make_checker,
    make_fetchers,
    make_scheduler,
    make_scheduling,
    make_store,
    selected_sources,
    utc_now,
)
from services.cli.common import UsageError, print_registration, register_file, serve_api, stop_event
from services.core.control import describe_source, set_paused
from services.core.ports import Bus, Store
from services.embedded import (
    keep_checking,
    keep_reconciling,
    keep_stepping,
    keep_taking_in,
    keep_ticking,
    release_leases_at_start,
)
from services.fetchers.registry import SOURCES, UnknownSource, get_source
from services.registration import Scheduling, register
from services.settings import FIXTURES, Settings
from services.shutdown import close_all
from services.stub import server as stub_server
from services.telemetry import memory

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
        print_registration(results, [])
        return 1 if any(r.error for r in results) else 0

    return await _with_registry(settings, action)


async def works_import(settings: Settings, path: Path) -> int:
    """`alm works import FILE`: one id a line, CSV with an id column, or JSONL. SIGINT or
    SIGTERM stops it between chunks; every work registered by then is scheduled."""
    stop = stop_event()

    async def action(store: Store, bus: Bus, scheduling: Scheduling) -> int:
        results, bad = await register_file(path, store, bus, scheduling, stop)
        print_registration(results, bad)
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
        await store.reindex_dates()
    finally:
        await store.close()
    print(f"publication-date listing indexed ({settings.store})")
    return 0


async def db_recount_summary(settings: Settings) -> int:
    """`alm db recount-summary`: the per-source counts (`alm sources`, /sources) made the
    counts of the stored states again; prints what each source's counts were off by."""
    store = make_store(settings)
    try:
        await store.migrate()
        fixed = await store.recount_summary()
    finally:
        await store.close()
    for source, off in fixed.items():
        print(f"{source}: works {off['works']:+d}, errors {off['errors']:+d}")
    print(f"summary recounted ({settings.store}): {len(fixed)} source(s) corrected")
    return 0


async def topics_create(settings: Settings, partitions: int, replication: int = -1) -> int:
    """`alm topics create`: create every topic on Kafka (idempotent; existing topics keep
    their partitions and replicas)."""
    if settings.bus != "kafka":
        raise UsageError("topics exist only on Kafka: set ALM_BUS=kafka")
    from services.adapters.kafka import ensure_topics

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
    await stop_event().wait()
    await runner.cleanup()
    return 0


async def service(name: str, settings: Settings, source: str | None) -> int:
    """Run one service of the distributed mode until SIGTERM."""
    memory.give_back(name)  # RSS bounded by what the service holds (services/telemetry/memory.py)
    if name == "aggregator":  # traces its memory itself, inside its faust worker
        return await _service(name, settings, source)
    tracing = memory.start(name if source is None else f"{name}-{source}")  # ALM_TRACE_MEMORY
    try:
        return await _service(name, settings, source)
    finally:
        if tracing is not None:
            tracing.cancel()


async def _service(name: str, settings: Settings, source: str | None) -> int:
    if name == "api":
        runner = await serve_api(settings, None, None)
        print(f"API: http://{settings.host}:{settings.port}/api/v1/works", flush=True)
        await stop_event().wait()
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

        return await run_notifier(settings, stop_event())
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
    """The distributed scheduler (scan, tick, reconcile, checks) or one source's fetcher."""
    store, bus = make_store(settings), make_bus(settings)
    stop = stop_event()
    try:
        if name == "scheduler":
            scheduler = make_scheduler(settings, bus, store)
            await release_leases_at_start(scheduler, stop)
            await asyncio.gather(
                keep_stepping("scheduler", scheduler.step, stop),
                keep_ticking(scheduler, stop, scheduler.settings.tick_seconds),
                keep_taking_in(scheduler, stop, scheduler.settings.tick_seconds),
                keep_reconciling(scheduler, stop, settings.reconcile_seconds),
                keep_checking(make_checker(settings, store), stop, settings.checks_seconds),
            )
        else:
            caller = make_caller(settings, selected_sources(settings))
            async with caller:
                (fetcher,) = make_fetchers(settings, bus, store, caller)
                await keep_stepping(f"fetcher-{fetcher.source.name}", fetcher.step, stop)
    finally:
        await close_all(bus.close(), store.close())  # within shutdown.CLOSE_SECONDS
    return 0
