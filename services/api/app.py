"""The aiohttp application factory: `init_app(settings, store=..., bus=...)`."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from services.api.errors import json_errors
from services.api.legacy import legacy_clients
from services.api.routes import setup_routes
from services.api.server import HANDLER_ARGS, MAX_BODY_SIZE
from services.api.state import BUS, CLOCK, SCHEDULING, STORE, STORE_TIMEOUT, TOTALS
from services.api.totals import Totals
from services.bootstrap import make_bus, make_scheduling, make_store, utc_now
from services.core.ports import Bus, Store
from services.settings import Settings
from services.telemetry.api import request_metrics


def init_app(
    settings: Settings, store: Store | None = None, bus: Bus | None = None
) -> web.Application:
    """The API application; it opens its own store and bus unless they are handed in."""
    app = web.Application(
        middlewares=[request_metrics, legacy_clients, json_errors],
        client_max_size=MAX_BODY_SIZE,
        handler_args=HANDLER_ARGS,
    )
    app[CLOCK] = utc_now
    app[TOTALS] = Totals(settings.status_cache_seconds)
    app[SCHEDULING] = make_scheduling(settings)  # what a work registered here is owed
    app[STORE_TIMEOUT] = settings.api_store_timeout

    async def resources(app: web.Application) -> AsyncIterator[None]:
        owned = store is None
        app[STORE] = store or make_store(settings, request_timeout=settings.api_store_timeout)
        app[BUS] = bus or make_bus(settings)
        if owned and settings.store == "sqlite":
            # the embedded file is the API's own; a shared Cassandra keyspace is migrated once,
            # by `alm db migrate` (a Job), not by every API replica at start-up
            await app[STORE].migrate()
        yield
        if owned:
            await app[STORE].close()
            await app[BUS].close()

    app.cleanup_ctx.append(resources)
    setup_routes(app, public_metrics=settings.api_public_metrics)
    return app
