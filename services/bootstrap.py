"""The one place that wires adapters to services: `make_bus`, `make_store`, `make_pipeline`.

`main()` of every command and the tests call these; nothing connects at import time.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from services.adapters.failures import register_adapter_failures
from services.aggregator.published import PublishedChanges
from services.aggregator.service import Aggregator
from services.api.context import ApiContext
from services.checks.service import Checker
from services.core.activity import CheckStore
from services.core.alerts import AlertStore
from services.core.change_filter import Catalog
from services.core.changefeed import ChangeFeed
from services.core.events import TOPIC_CHANGED, refresh_topic
from services.core.keys import KeyStore
from services.core.metrics import MetricSpec
from services.core.ports import Bus, Store
from services.core.provenance import CallArchive
from services.core.publishers import PublisherStore
from services.core.staleness import Policy
from services.core.webhooks import HookStore
from services.fetchers.base import Source
from services.fetchers.http import HttpCaller, HttpSettings
from services.fetchers.registry import SOURCES, get_source
from services.fetchers.registry import catalog as source_catalog
from services.fetchers.service import FetcherService
from services.registration import Scheduling
from services.scheduler.service import Scheduler, SchedulerSettings
from services.settings import Settings
from services.telemetry.lag import PartitionLag
from services.telemetry.store import instrument


def utc_now() -> datetime:
    """The current time in UTC (the clock every service gets)."""
    return datetime.now(UTC)


def make_bus(settings: Settings) -> Bus:
    """The bus adapter `settings.bus` names (its failures registered: services/core/failures)."""
    register_adapter_failures()
    if settings.bus == "memory":
        from services.adapters.memory.bus import MemoryBus

        # alm.metrics.changed keeps its last records for SSE clients resuming from an id
        return MemoryBus(window=settings.event_window, retained=(TOPIC_CHANGED,), lag=PartitionLag)
    if settings.bus == "kafka":
        from services.adapters.kafka import KafkaBus

        return KafkaBus(
            settings.kafka_bootstrap,
            client_id="alm",
            prefix=settings.topic_prefix,
            lag=PartitionLag,
        )
    raise ValueError(f"unknown bus {settings.bus!r} (ALM_BUS): use memory or kafka")


def make_store(
    settings: Settings,
    request_timeout: float | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> Store:
    """The store adapter `settings.store` names; `request_timeout` bounds each Cassandra
    request (the API's is short: ALM_API_STORE_TIMEOUT). Registers the adapters' failures."""
    register_adapter_failures()
    ttl = timedelta(days=settings.raw_ttl_days)
    if settings.store == "sqlite":
        from services.adapters.sqlite import SqliteStore

        settings.data_dir.mkdir(parents=True, exist_ok=True)
        return instrument(SqliteStore(settings.data_dir / "alm.sqlite", raw_ttl=ttl), "sqlite")
    if settings.store == "cassandra":
        from services.adapters.cassandra import CassandraConnection, CassandraStore

        store = CassandraStore(
            settings.cassandra_hosts,
            settings.cassandra_port,
            settings.keyspace,
            ttl,
            connection=CassandraConnection.from_env(settings.cassandra_env),
            request_timeout=20.0 if request_timeout is None else request_timeout,
            clock=clock,
        )
        return instrument(store, "cassandra")
    raise ValueError(f"unknown store {settings.store!r} (ALM_STORE): use sqlite or cassandra")


def check_settings(settings: Settings) -> None:
    """A ValueError naming what is wrong in the adapters' own settings (the Cassandra
    connection's credentials and TLS), read before any command runs."""
    if settings.cassandra_env:
        from services.adapters.cassandra import CassandraConnection

        CassandraConnection.from_env(settings.cassandra_env)


def make_key_store(store: Store) -> KeyStore:
    """The API keys' store beside `store`: its SQLite file or its Cassandra keyspace."""
    from services.adapters.sqlite import SqliteStore

    if isinstance(store, SqliteStore):
        from services.adapters.sqlite.keys import SqliteKeyStore

        return SqliteKeyStore(store)
    from services.adapters.cassandra import CassandraStore

    if isinstance(store, CassandraStore):
        from services.adapters.cassandra.keys import CassandraKeyStore

        return CassandraKeyStore(store)
    raise TypeError(f"no key store for a {type(store).__name__}")


def make_publishers(store: Store) -> PublisherStore:
    """The PublisherStore over the same database as `store` (its file or keyspace)."""
    from services.adapters.sqlite import SqliteStore

    if isinstance(store, SqliteStore):
        from services.adapters.sqlite.publishers import SqlitePublishers

        return SqlitePublishers(store)
    from services.adapters.cassandra import CassandraStore

    if isinstance(store, CassandraStore):
        from services.adapters.cassandra.publishers import CassandraPublishers

        return CassandraPublishers(store)
    raise TypeError(f"no publisher store for {type(store).__name__}")


def make_feed(settings: Settings, bus: Bus) -> ChangeFeed:
    """Readers of alm.metrics.changed for the SSE stream: over the in-process bus itself, or
    Kafka consumers of their own (no group) in the distributed mode."""
    from services.adapters.memory.bus import MemoryBus

    if isinstance(bus, MemoryBus):
        from services.adapters.memory.feed import MemoryChangeFeed

        return MemoryChangeFeed(bus)
    from services.adapters.kafka.feed import KafkaChangeFeed

    return KafkaChangeFeed(settings.kafka_bootstrap, settings.topic_prefix)


def make_hook_store(store: Store) -> HookStore:
    """The webhook store in the same database as `store` (its file or keyspace)."""
    from services.adapters.sqlite import SqliteStore

    if isinstance(store, SqliteStore):
        from services.adapters.sqlite.hooks import SqliteHooks

        return SqliteHooks(store)
    from services.adapters.cassandra import CassandraStore
    from services.adapters.cassandra.hooks import CassandraHooks

    if isinstance(store, CassandraStore):
        return CassandraHooks(store)
    raise TypeError(f"no webhook store for {type(store).__name__}")


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
    return ApiContext(
        store=store,
        bus=bus,
        keys=keys or make_key_store(store),
        hooks=hooks or make_hook_store(store),
        publishers=publishers or make_publishers(store),
        calls=calls or make_call_archive(store),
        alerts=alerts or make_checks(settings, store),
        feed=make_feed(settings, bus),
        catalog=source_catalog(),
        scheduling=make_scheduling(settings),
        clock=clock,
        access=settings.access,
        notify=settings.notify,
        status_cache_seconds=settings.status_cache_seconds,
        raw_ttl=timedelta(days=settings.raw_ttl_days),
        alerts_ttl=timedelta(days=settings.alerts_ttl_days),
        store_timeout=settings.api_store_timeout,
        public_metrics=settings.api_public_metrics,
        # a shared Cassandra keyspace is migrated once, by `alm db migrate` (a Job), not by
        # every API replica at start-up; the embedded file is the API's own
        owned=owned,
        migrate=owned and settings.store == "sqlite",
    )


def make_catalog() -> Catalog:
    """Every installed source's metrics with their groups (change filters by group)."""
    return source_catalog().metric_groups()


def make_call_archive(store: Store) -> CallArchive:
    """The kept upstream calls (provenance) of the store `make_store` made."""
    from services.adapters.sqlite import SqliteStore

    if isinstance(store, SqliteStore):
        from services.adapters.sqlite.raw import SqliteCallArchive

        return SqliteCallArchive(store)
    from services.adapters.cassandra import CassandraStore

    if isinstance(store, CassandraStore):
        from services.adapters.cassandra.provenance import CassandraCallArchive

        return CassandraCallArchive(store)
    raise TypeError(f"no call archive for {type(store).__name__}")


def make_checks(settings: Settings, store: Store) -> CheckStore:
    """Where the data-quality checks keep alerts and read activity, over `store`."""
    ttl = timedelta(days=settings.alerts_ttl_days)
    from services.adapters.sqlite import SqliteStore

    if isinstance(store, SqliteStore):
        from services.adapters.sqlite.checks import SqliteChecks

        return SqliteChecks(store, ttl)
    from services.adapters.cassandra import CassandraStore

    if isinstance(store, CassandraStore):
        from services.adapters.cassandra.checks import CassandraChecks

        return CassandraChecks(store, ttl)
    raise TypeError(f"no alert store for {type(store).__name__}")


def make_checker(
    settings: Settings, store: Store, clock: Callable[[], datetime] = utc_now
) -> Checker:
    """The periodic data-quality checks of the sources this configuration runs."""
    return Checker(
        make_checks(settings, store),
        store,
        [s.name for s in selected_sources(settings)],
        clock,
        settings.checks,
        timedelta(seconds=settings.stale_scan_seconds),
    )


def catalog() -> dict[str, tuple[MetricSpec, ...]]:
    """Each installed source's metric specs (what the aggregator's checks read)."""
    return {name: source.metrics for name, source in SOURCES.items()}


def selected_sources(settings: Settings) -> list[Source]:
    """The sources to run: ALM_SOURCES if set, else every registered one that has the
    credentials it needs (Mendeley, COUNTER without them would only fail every work)."""
    if settings.sources:
        return [get_source(name) for name in settings.sources]
    return [s for s in SOURCES.values() if s.missing_config(settings.source_config(s.name)) is None]


def make_scheduling(settings: Settings) -> Scheduling:
    """What registration owes a work: entries from the sources this configuration runs."""
    return Scheduling(tuple(selected_sources(settings)), settings.policy())


def make_caller(
    settings: Settings, sources: list[Source], http: HttpSettings | None = None
) -> HttpCaller:
    """The shared HTTP layer, pointed at the stub upstream or the real APIs."""
    urls = {s.name: settings.base_url_for(s.name, s.base_url) for s in sources}
    http = http or HttpSettings(user_agent=settings.user_agent, rates=settings.rates)
    return HttpCaller(urls, http)


@dataclass(slots=True)
class Pipeline:
    """Every service of the pipeline over one bus and one store (the embedded mode)."""

    settings: Settings
    bus: Bus
    store: Store
    caller: HttpCaller
    scheduler: Scheduler
    fetchers: list[FetcherService]
    aggregator: Aggregator
    clock: Callable[[], datetime]
    checker: Checker


def make_scheduler(
    settings: Settings,
    bus: Bus,
    store: Store,
    clock: Callable[[], datetime] = utc_now,
    policy: Policy | None = None,
    rng: random.Random | None = None,
) -> Scheduler:
    """The scheduler over the sources this configuration runs."""
    return Scheduler(
        selected_sources(settings),
        bus,
        store,
        policy or settings.policy(),
        SchedulerSettings(),
        clock,
        rng or random.Random(),
        backlog=_backlog(bus),
    )


def make_fetchers(
    settings: Settings,
    bus: Bus,
    store: Store,
    caller: HttpCaller,
    clock: Callable[[], datetime] = utc_now,
    policy: Policy | None = None,
    rng: random.Random | None = None,
) -> list[FetcherService]:
    """One fetcher per source this configuration runs, over the shared HTTP layer `caller`."""
    checks = make_checks(settings, store)
    return [
        FetcherService(
            s,
            bus,
            store,
            caller,
            settings.source_config(s.name),
            policy or settings.policy(),
            clock,
            rng=rng or random.Random(),
            activity=checks,
            failure_limit=settings.source_failure_limit,
        )
        for s in selected_sources(settings)
    ]


def make_aggregator(
    settings: Settings,
    bus: Bus,
    store: Store,
    clock: Callable[[], datetime] = utc_now,
    policy: Policy | None = None,
    rng: random.Random | None = None,
    already_published: PublishedChanges | None = None,
) -> Aggregator:
    """The aggregator, with the data-quality checks it feeds (distributed: with the check of
    what a partition's previous owner already published)."""
    return Aggregator(
        bus,
        store,
        policy or settings.policy(),
        clock,
        rng or random.Random(),
        already_published=already_published,
        alerts=make_checks(settings, store),
        catalog=catalog(),
        limits=settings.checks,
    )


def make_pipeline(
    settings: Settings,
    bus: Bus,
    store: Store,
    clock: Callable[[], datetime] = utc_now,
    policy: Policy | None = None,
    rng: random.Random | None = None,
    http: HttpSettings | None = None,
) -> Pipeline:
    """Wire scheduler, one fetcher per source and the aggregator (not yet started): the
    embedded mode and the tests; a distributed service builds only its own part."""
    policy = policy or settings.policy()
    rng = rng or random.Random()
    caller = make_caller(settings, selected_sources(settings), http)
    return Pipeline(
        settings,
        bus,
        store,
        caller,
        make_scheduler(settings, bus, store, clock, policy, rng),
        make_fetchers(settings, bus, store, caller, clock, policy, rng),
        make_aggregator(settings, bus, store, clock, policy, rng),
        clock,
        make_checker(settings, store, clock),
    )


def _backlog(bus: Bus) -> Callable[[str], int] | None:
    """How many refresh requests of a source its fetcher has not committed, where the bus can
    tell (the in-process one); the scheduler keeps each source's queue short with it."""
    from services.adapters.memory.bus import MemoryBus

    if not isinstance(bus, MemoryBus):
        return None
    return lambda source: bus.pending(refresh_topic(source), FetcherService.group_of(source))


@dataclass(slots=True)
class AggregatorParts:
    """What the distributed aggregator (the faust app, services/aggregator/app.py) runs with:
    the bus it publishes changes on, the store, the Aggregator over both, and the check of
    what a previous owner of a partition already published (reading the same cluster)."""

    bus: Bus
    store: Store
    aggregator: Aggregator
    published: PublishedChanges


def make_aggregator_parts(settings: Settings) -> AggregatorParts:
    """The distributed aggregator's parts, over the Kafka cluster and the store `settings`
    name (nothing connects until first used)."""
    from services.adapters.kafka import KafkaBus

    bus = KafkaBus(
        settings.kafka_bootstrap, client_id="alm-aggregator", prefix=settings.topic_prefix
    )
    published = PublishedChanges(bus.reader)
    store = make_store(settings)
    aggregator = make_aggregator(settings, bus, store, already_published=published)
    return AggregatorParts(bus, store, aggregator, published)
