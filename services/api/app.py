"""The aiohttp application factory: `init_app(settings, store=..., bus=...)`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

from aiohttp import web

from services.api.access import Guard, access_control, quota_headers
from services.api.errors import json_errors
from services.api.export import CHUNK
from services.api.hub import ChangeHub
from services.api.keycache import KeyCache
from services.api.legacy import legacy_clients
from services.api.routes import ACCESS, setup_routes
from services.api.server import HANDLER_ARGS, MAX_BODY_SIZE
from services.api.state import (
    ALERTS,
    ALERTS_TTL,
    BUS,
    CALLS,
    CATALOG,
    CLOCK,
    EXPORT_CHUNK,
    GUARD,
    HOOKS,
    HUB,
    KEYS,
    NOTIFY,
    PUBLISHERS,
    RAW_TTL,
    SCHEDULING,
    STORE,
    STORE_TIMEOUT,
    TOTALS,
)
from services.api.totals import Totals
from services.bootstrap import (
    make_bus,
    make_call_archive,
    make_catalog,
    make_checks,
    make_feed,
    make_hook_store,
    make_key_store,
    make_publishers,
    make_scheduling,
    make_store,
    utc_now,
)
from services.core.alerts import AlertStore
from services.core.change_publishers import PublisherLookup
from services.core.keys import KeyStore, Role
from services.core.ports import Bus, Store
from services.core.provenance import CallArchive
from services.core.publishers import PublisherStore
from services.core.webhooks import HookStore
from services.keyring import BOOTSTRAP_NAME, ensure_key
from services.settings import Settings
from services.telemetry.api import request_metrics


def init_app(
    settings: Settings,
    store: Store | None = None,
    bus: Bus | None = None,
    keys: KeyStore | None = None,
    hooks: HookStore | None = None,
    publishers: PublisherStore | None = None,
    calls: CallArchive | None = None,
    alerts: AlertStore | None = None,
) -> web.Application:
    """The API application; it opens its own store and bus unless they are handed in (the API
    key, webhook and publisher stores: in the store's database, unless handed in). The kept
    upstream calls and the alerts live beside the store (over its connection); hand them in
    with a store `make_store` did not make (a wrapper)."""
    app = web.Application(
        # access_control inside json_errors: a malformed form or two keys are JSON 400s
        middlewares=[request_metrics, legacy_clients, json_errors, access_control],
        client_max_size=MAX_BODY_SIZE,
        handler_args=HANDLER_ARGS,
    )
    app.on_response_prepare.append(quota_headers)
    app[CLOCK] = utc_now
    app[TOTALS] = Totals(settings.status_cache_seconds)
    app[SCHEDULING] = make_scheduling(settings)  # what a work registered here is owed
    app[RAW_TTL] = timedelta(days=settings.raw_ttl_days)
    app[ALERTS_TTL] = timedelta(days=settings.alerts_ttl_days)
    app[STORE_TIMEOUT] = settings.api_store_timeout
    app[CATALOG] = make_catalog()
    app[NOTIFY] = settings.notify
    app[EXPORT_CHUNK] = CHUNK

    async def resources(app: web.Application) -> AsyncIterator[None]:
        owned = store is None
        app[STORE] = store or make_store(settings, request_timeout=settings.api_store_timeout)
        app[BUS] = bus or make_bus(settings)
        app[PUBLISHERS] = publishers or make_publishers(app[STORE])
        app[CALLS] = calls or make_call_archive(app[STORE])
        app[ALERTS] = alerts or make_checks(settings, app[STORE])
        if owned and settings.store == "sqlite":
            # the embedded file is the API's own; a shared Cassandra keyspace is migrated once,
            # by `alm db migrate` (a Job), not by every API replica at start-up
            await app[STORE].migrate()
        app[KEYS] = keys or make_key_store(app[STORE])
        cache = KeyCache(
            app[KEYS], settings.access.key_cache_seconds, read_timeout=settings.api_store_timeout
        )
        app[GUARD] = Guard(settings.access, ACCESS, cache)
        if settings.access.admin_key:  # every replica: an idempotent insert
            await ensure_key(
                app[KEYS], settings.access.admin_key, BOOTSTRAP_NAME, Role.ADMIN, app[CLOCK]()
            )
        app[HOOKS] = hooks or make_hook_store(app[STORE])
        app[HUB] = ChangeHub(
            make_feed(settings, app[BUS]),
            app[CATALOG],
            PublisherLookup(app[STORE]),
            settings.notify.client_queue,
        )
        yield
        await app[HUB].close()
        if owned:
            await app[STORE].close()
            await app[BUS].close()

    app.cleanup_ctx.append(resources)

    async def end_streams(app: web.Application) -> None:
        # SSE clients get a closing event before the server waits for open requests
        if HUB in app:
            await app[HUB].close()

    app.on_shutdown.append(end_streams)
    setup_routes(app, public_metrics=settings.api_public_metrics)
    return app
