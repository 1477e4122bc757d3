"""What the CLI commands share: the usage error, the stop signal, serving the API, and
registering a file of identifiers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from pathlib import Path

import prometheus_client
from aiohttp import web

from services.api import server as api_server
from services.api.app import init_app
from services.bootstrap import (
    api_context,
    utc_now,
)
from services.cli.progress import Progress
from services.core.imports import NotText, decode_text, read_lines, validate
from services.core.ports import Bus, Store
from services.core.text import bounded
from services.registration import RegisterResult, Scheduling, register_parsed
from services.settings import Settings


class UsageError(Exception):
    """A command that cannot run as asked; the message says what to change."""


def stop_event(force_on_second: bool = False) -> asyncio.Event:
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


async def serve_api(
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


def print_registration(results: list[RegisterResult], bad_lines: list[str]) -> None:
    created = sum(r.created for r in results if r.error is None)
    known = sum(not r.created for r in results if r.error is None)
    invalid = len(bad_lines) + sum(r.error is not None for r in results)
    for line in bad_lines:
        print(f"  invalid: {line}")
    for r in results:
        if r.error:
            print(f"  invalid: {r.error}")
    print(f"works: {created} registered, {known} already known, {invalid} invalid", flush=True)


async def register_file(
    path: Path, store: Store, bus: Bus, scheduling: Scheduling, stop: asyncio.Event
) -> tuple[list[RegisterResult], list[str]]:
    """Register the file's identifiers `BULK_CHUNK` at a time, each chunk with its intake rows
    in one write (the scheduler writes their due entries); a stop request ends it between
    chunks (what was registered is in the intake)."""
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
    parsed = [(line.value, ident, None) for line, ident in good]
    with Progress("registering", "works", total=len(good)) as progress:
        results = await register_parsed(
            parsed, store, bus, utc_now(), scheduling, True, progress.advance, stop
        )
    if len(results) < len(good):
        done = f"{len(results)} of {len(good)}"
        print(f"works: stopped after {done} identifiers; run again for the rest")
    problems = [
        f"{path.name} line {b.line}: {bounded(b.value, 200)!r}: {b.reason}" for b in bad + invalid
    ]
    return results, sorted(problems, key=lambda s: int(s.split(" line ")[1].split(":")[0]))
