"""What each `alm` subcommand does, over the same bootstrap the tests use."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path

import prometheus_client
import structlog
from aiohttp import web

from services.adapters.memory_bus import MemoryBus
from services.api.app import init_app
from services.bootstrap import Pipeline, make_bus, make_pipeline, make_store, utc_now
from services.core.imports import read_lines, validate
from services.core.ports import Bus, Store
from services.embedded import (
    RunSummary,
    keep_stepping,
    keep_ticking,
    refresh_until_idle,
    run_forever,
)
from services.fetchers.control import describe_source, set_paused
from services.fetchers.registry import SOURCES, UnknownSource, get_source
from services.registration import RegisterResult, register
from services.settings import FIXTURES, Settings
from services.shutdown import close_all
from services.stub import server as stub_server

_log = structlog.get_logger("alm.cli")


class UsageError(Exception):
    """A command that cannot run as asked; the message says what to change."""


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    return stop


async def _serve_api(settings: Settings, store: Store | None, bus: Bus | None) -> web.AppRunner:
    runner = web.AppRunner(init_app(settings, store=store, bus=bus), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.host, settings.port).start()
    return runner


def _print_registration(results: list[RegisterResult], bad_lines: list[str]) -> None:
    created = sum(r.created for r in results if r.error is None)
    known = sum(not r.created for r in results if r.error is None)
    invalid = len(bad_lines) + sum(r.error is not None for r in results)
    for line in bad_lines:
        print(f"  invalid: {line}")
    for r in results:
        if r.error:
            print(f"  invalid: {r.error}")
    print(f"works: {created} registered, {known} already known, {invalid} invalid")


async def _register_file(
    path: Path, store: Store, bus: Bus
) -> tuple[list[RegisterResult], list[str]]:
    try:
        text = await asyncio.to_thread(path.read_text, encoding="utf-8-sig")
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from exc
    lines, bad = read_lines(text, path.name)
    good, invalid = validate(lines)
    results = await register([line.value for line, _ in good], store, bus, utc_now())
    problems = [f"{path.name} line {b.line}: {b.value!r}: {b.reason}" for b in bad + invalid]
    return results, sorted(problems, key=lambda s: int(s.split(" line ")[1].split(":")[0]))


def _print_summary(summary: RunSummary) -> None:
    print(
        f"refreshes: {summary.requested} requested, {summary.refreshed} done, "
        f"{summary.errors} errors; {summary.changes} metric changes; "
        f"{summary.upstream_calls} upstream calls"
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
    """`alm run`: register the works, refresh them, serve the API, keep refreshing."""
    stub_runner = None
    if offline:
        stub_runner, root = await stub_server.start(stub_server.init_app(SOURCES, FIXTURES))
        settings = settings.with_(upstream_root=root)
    store, bus = make_store(settings), make_bus(settings)
    await store.migrate()
    pipeline = make_pipeline(settings, bus, store)
    api_runner = None
    try:
        async with pipeline.caller:
            where = f" (offline: stub upstream {settings.upstream_root})" if offline else ""
            print(f"ALM embedded: data in {settings.data_dir.resolve()}{where}")
            results, bad = await _register_file(works_file, store, bus)
            _print_registration(results, bad)
            summary = await refresh_until_idle(pipeline)
            _print_summary(summary)
            if summary.errors:
                await _errors_detail(pipeline, [r.work_id for r in results if r.work_id])
            api_runner = await _serve_api(settings, store, bus)
            print(f"API: http://{settings.host}:{settings.port}/api/v1/works", flush=True)
            if not once:
                await run_forever(pipeline, _stop_event())
    finally:
        if api_runner is not None:
            await api_runner.cleanup()
        await store.close()
        if stub_runner is not None:
            await stub_runner.cleanup()
    return 0


async def _with_registry(settings: Settings, action: Callable[[Store, Bus], Awaitable[int]]) -> int:
    store, bus = make_store(settings), make_bus(settings)
    await store.migrate()
    try:
        code = await action(store, bus)
        if isinstance(bus, MemoryBus):
            # no scheduler process listens in the embedded mode: index new works now
            await make_pipeline(settings, bus, store).scheduler.step(0)
        return code
    finally:
        await bus.close()
        await store.close()


async def works_add(settings: Settings, ids: list[str]) -> int:
    """`alm works add ID...`: register identifiers; invalid ones are reported."""

    async def action(store: Store, bus: Bus) -> int:
        results = await register(ids, store, bus, utc_now())
        _print_registration(results, [])
        return 1 if any(r.error for r in results) else 0

    return await _with_registry(settings, action)


async def works_import(settings: Settings, path: Path) -> int:
    """`alm works import FILE`: one id a line, CSV with an id column, or JSONL."""

    async def action(store: Store, bus: Bus) -> int:
        results, bad = await _register_file(path, store, bus)
        _print_registration(results, bad)
        return 1 if bad else 0

    return await _with_registry(settings, action)


async def sources(settings: Settings, as_json: bool) -> int:
    """`alm sources`: every installed source, its metrics, groups, batching, limits, status."""
    store = make_store(settings)
    try:
        await store.migrate()
        statuses = await store.source_statuses()
    finally:
        await store.close()
    described = [describe_source(s, statuses.get(s.name)) for s in SOURCES.values()]
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


async def topics_create(settings: Settings, partitions: int) -> int:
    """`alm topics create`: create every topic on Kafka (idempotent)."""
    if settings.bus != "kafka":
        raise UsageError("topics exist only on Kafka: set ALM_BUS=kafka")
    from services.adapters.kafka_bus import ensure_topics

    created = await ensure_topics(
        settings.kafka_bootstrap, sorted(SOURCES), partitions, prefix=settings.topic_prefix
    )
    print(f"topics ready ({len(created)} created)")
    return 0


async def stub_upstream(host: str, port: int, synthetic: bool) -> int:
    """`alm stub-upstream`: serve recorded upstream responses until stopped."""
    runner, root = await stub_server.start(
        stub_server.init_app(SOURCES, FIXTURES, synthetic), host, port
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
                await asyncio.gather(
                    keep_stepping("scheduler", pipeline.scheduler.step, stop),
                    keep_ticking(pipeline, stop, every=5.0),
                )
            else:
                fetcher = pipeline.fetchers[0]
                await keep_stepping(f"fetcher-{fetcher.source.name}", fetcher.step, stop)
    finally:
        await close_all(bus.close(), store.close())  # within shutdown.CLOSE_SECONDS
    return 0
