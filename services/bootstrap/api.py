"""What the API is handed: its context (stores, bus, catalog, clock, settings) and the sources'
catalog."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from services.api.context import ApiContext
from services.bootstrap.adapters import (
    make_bus,
    make_call_archive,
    make_checks,
    make_feed,
    make_hook_store,
    make_key_store,
    make_letter_reader,
    make_publishers,
    make_store,
)
from services.bootstrap.clock import utc_now
from services.bootstrap.pipeline import make_scheduling
from services.core.activity import ActivityStore
from services.core.alerts import AlertStore
from services.core.change_filter import MetricGroups
from services.core.keys import KeyStore
from services.core.ports import Bus, Store
from services.core.provenance import CallArchive
from services.core.publishers import PublisherStore
from services.core.webhooks import HookStore
from services.fetchers.registry import catalog as source_catalog
from services.settings import Settings


def api_context(
    settings: Settings,
    store: Store | None = None,
    bus: Bus | None = None,
    *,
    keys: KeyStore | None = None,
    hooks: HookStore | None = None,
    publishers: PublisherStore | None = None,
    calls: CallArchive | None = None,
    alerts: AlertStore | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> ApiContext:
    """What the API is built from: its own store and bus unless handed in (then the API
    closes them when it stops, and migrates an embedded file when it starts); the API key,
    webhook and publisher stores, the kept upstream calls and the alerts beside the store
    unless handed in (hand them in with a store `make_store` did not make: a wrapper)."""
    owned = store is None
    store = store or make_store(settings, request_timeout=settings.api_store_timeout)
    bus = bus or make_bus(settings)
    checks: ActivityStore | None = None  # the checks' store keeps the fetchers' windows
    if alerts is None:
        alerts = checks = make_checks(settings, store)
    return ApiContext(
        store=store,
        bus=bus,
        keys=keys or make_key_store(store),
        hooks=hooks or make_hook_store(store),
        publishers=publishers or make_publishers(store),
        calls=calls or make_call_archive(store),
        alerts=alerts,
        feed=make_feed(settings, bus),
        letters=make_letter_reader(bus),
        catalog=source_catalog(),
        scheduling=make_scheduling(settings),
        clock=clock,
        access=settings.access,
        notify=settings.notify,
        status_cache_seconds=settings.status_cache_seconds,
        work_cache_seconds=settings.work_cache_seconds,
        work_cache_bytes=settings.work_cache_mb * 1024 * 1024,
        raw_ttl=timedelta(days=settings.raw_ttl_days),
        alerts_ttl=timedelta(days=settings.alerts_ttl_days),
        store_timeout=settings.api_store_timeout,
        public_metrics=settings.api_public_metrics,
        activity=checks,
        # a shared Cassandra keyspace is migrated once, by `alm db migrate` (a Job), not by
        # every API replica at start-up; the embedded file is the API's own
        owned=owned,
        migrate=owned and settings.store == "sqlite",
    )


def make_catalog() -> MetricGroups:
    """Every installed source's metrics with their groups (change filters by group)."""
    return source_catalog().metric_groups()
