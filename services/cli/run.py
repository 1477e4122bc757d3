"""`alm run`: the embedded mode in one process (API, scheduler, fetchers, aggregator, notifier),
offline against the built-in stub upstream when asked."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

from services.bootstrap import (
    Pipeline,
    make_bus,
    make_catalog,
    make_hook_store,
    make_key_store,
    make_pipeline,
    make_store,
    utc_now,
)
from services.cli.common import UsageError, print_registration, register_file, serve_api, stop_event
from services.core.ports import Store
from services.embedded import (
    Pacing,
    RunSummary,
    release_dead_leases,
    run_services,
)
from services.keyring import ensure_local_admin
from services.notifier.main import sender_for
from services.notifier.service import Notifier
from services.settings import Settings
from services.stub.offline import serve_offline
from services.telemetry import memory


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
    stop = stop_event(force_on_second=True)  # before anything starts
    if settings.bus != "memory":
        raise UsageError(
            "`alm run` is the embedded mode, over the in-process bus: unset ALM_BUS "
            "(the distributed mode runs `alm scheduler`, `alm fetcher`, ... as processes)"
        )
    if not once:  # a process that keeps running: its RSS bounded by what it holds
        memory.give_back("run")
    with _only_run(settings):
        return await _run(settings, works_file, offline, once, stop)


async def _run(
    settings: Settings, works_file: Path, offline: bool, once: bool, stop: asyncio.Event
) -> int:
    stub_runner = None
    if offline:
        stub_runner, settings = await serve_offline(settings)
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
            if released := await release_dead_leases(pipeline.scheduler):
                print(f"restart: {released} refreshes left in flight by the last run are due")
            await _local_admin(settings, store)
            api_runner = await serve_api(settings, store, bus)
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
    results, bad = await register_file(works_file, p.store, p.bus, p.scheduler.scheduling, stop)
    print_registration(results, bad)
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
