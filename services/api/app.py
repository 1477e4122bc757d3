"""The aiohttp application factory: `init_app(context)`, every dependency in the context
(services/api/context.py; services/bootstrap/ `api_context` builds it)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from services.api.access import GUARD, Guard, access_control, quota_headers
from services.api.cache import TotalsCache
from services.api.context import ApiContext
from services.api.errors import json_errors
from services.api.export import CHUNK
from services.api.hub import ChangeHub
from services.api.keycache import KeyCache
from services.api.legacy import legacy_clients
from services.api.rendered import RenderedCache
from services.api.routes import ACCESS, setup_routes
from services.api.server import HANDLER_ARGS, MAX_BODY_SIZE
from services.api.state import (
    ACTIVITY,
    ALERTS,
    ALERTS_TTL,
    BUS,
    CALLS,
    CATALOG,
    CLOCK,
    EXPORT_CHUNK,
    HOOKS,
    HUB,
    KEYS,
    LETTERS,
    NOTIFY,
    PUBLISHERS,
    RAW_TTL,
    RENDERED,
    SCHEDULING,
    STORE,
    STORE_TIMEOUT,
    TOTALS,
)
from services.core.change_publishers import PublisherLookup
from services.core.keys import Role
from services.keyring import BOOTSTRAP_NAME, ensure_key
from services.telemetry.api import request_metrics


def init_app(context: ApiContext) -> web.Application:
    """The API application over `context`'s adapters; it migrates the store when it starts
    and closes the store and the bus when it stops if the context says it owns them."""
    app = web.Application(
        # access_control inside json_errors: a malformed form or two keys are JSON 400s
        middlewares=[request_metrics, legacy_clients, json_errors, access_control],
        client_max_size=MAX_BODY_SIZE,
        handler_args=HANDLER_ARGS,
    )
    app.on_response_prepare.append(quota_headers)
    app[CLOCK] = context.clock
    app[TOTALS] = TotalsCache(context.status_cache_seconds)
    app[RENDERED] = RenderedCache(context.work_cache_seconds, context.work_cache_bytes)
    app[SCHEDULING] = context.scheduling
    app[RAW_TTL] = context.raw_ttl
    app[ALERTS_TTL] = context.alerts_ttl
    app[STORE_TIMEOUT] = context.store_timeout
    app[CATALOG] = context.catalog
    app[NOTIFY] = context.notify
    app[EXPORT_CHUNK] = CHUNK
    app[STORE] = context.store
    app[BUS] = context.bus
    app[LETTERS] = context.letters
    app[PUBLISHERS] = context.publishers
    app[CALLS] = context.calls
    app[ALERTS] = context.alerts
    if context.activity is not None:
        app[ACTIVITY] = context.activity
    app[KEYS] = context.keys
    app[HOOKS] = context.hooks
    cache = KeyCache(
        context.keys, context.access.key_cache_seconds, read_timeout=context.store_timeout
    )
    app[GUARD] = Guard(context.access, ACCESS, cache)

    async def resources(app: web.Application) -> AsyncIterator[None]:
        if context.migrate:
            await app[STORE].migrate()
        if context.access.admin_key:  # every replica: an idempotent insert
            await ensure_key(
                app[KEYS], context.access.admin_key, BOOTSTRAP_NAME, Role.ADMIN, app[CLOCK]()
            )
        app[HUB] = ChangeHub(
            context.feed,
            context.catalog.metric_groups(),
            PublisherLookup(app[STORE]),
            context.notify.client_queue,
            rendered=app[RENDERED],
        )
        if app[RENDERED].enabled:  # kept answers are dropped as the works' numbers change
            app[HUB].follow()
        yield
        await app[HUB].close()
        await app[RENDERED].close()
        if context.owned:
            await app[STORE].close()
            await app[BUS].close()

    app.cleanup_ctx.append(resources)

    async def end_streams(app: web.Application) -> None:
        # SSE clients get a closing event before the server waits for open requests
        if HUB in app:
            await app[HUB].close()

    app.on_shutdown.append(end_streams)
    setup_routes(app, public_metrics=context.public_metrics)
    return app
