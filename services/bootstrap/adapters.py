"""The adapters `ALM_STORE` and `ALM_BUS` name, and the stores kept beside the main one (keys,
publishers, webhooks, provenance, checks), over the same connection."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, cast

from services.adapters.failures import register_adapter_failures
from services.bootstrap.clock import utc_now
from services.core.activity import CheckStore
from services.core.changefeed import ChangeFeed
from services.core.events import TOPIC_CHANGED, TOPIC_DEADLETTER
from services.core.keys import KeyStore
from services.core.partitions import PartitionReader
from services.core.ports import Bus, Store
from services.core.provenance import CallArchive
from services.core.publishers import PublisherStore
from services.core.webhooks import HookStore
from services.settings import Settings
from services.telemetry.lag import PartitionLag
from services.telemetry.store import instrument


def make_bus(settings: Settings) -> Bus:
    """The bus adapter `settings.bus` names (its failures registered: services/core/failures)."""
    register_adapter_failures()
    if settings.bus == "memory":
        from services.adapters.memory.bus import MemoryBus

        # alm.metrics.changed keeps its last records for SSE clients resuming from an id, and
        # alm.deadletter its last ones for the admin page of dead letters
        retained = (TOPIC_CHANGED, TOPIC_DEADLETTER)
        return MemoryBus(window=settings.event_window, retained=retained, lag=PartitionLag)
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


def _beside(store: Store, what: str, sqlite: str, cassandra: str, *args: object) -> Any:
    """The `what` over the same database as `store` (its SQLite file or its Cassandra
    keyspace): the class `sqlite` or `cassandra` names ("module:Class", imported only when
    used, so the embedded mode never loads the Cassandra driver), built with `args`."""
    from services.adapters.sqlite import SqliteStore

    if isinstance(store, SqliteStore):
        chosen = sqlite
    else:
        from services.adapters.cassandra import CassandraStore

        if not isinstance(store, CassandraStore):
            raise TypeError(f"no {what} for a {type(store).__name__}")
        chosen = cassandra
    module, _, name = chosen.partition(":")
    return getattr(importlib.import_module(module), name)(store, *args)


def make_key_store(store: Store) -> KeyStore:
    """The API keys' store beside `store`."""
    return cast(
        KeyStore,
        _beside(
            store,
            "key store",
            "services.adapters.sqlite.keys:SqliteKeyStore",
            "services.adapters.cassandra.keys:CassandraKeyStore",
        ),
    )


def make_publishers(store: Store) -> PublisherStore:
    """The PublisherStore beside `store`."""
    return cast(
        PublisherStore,
        _beside(
            store,
            "publisher store",
            "services.adapters.sqlite.publishers:SqlitePublishers",
            "services.adapters.cassandra.publishers:CassandraPublishers",
        ),
    )


def make_hook_store(store: Store) -> HookStore:
    """The webhook store beside `store`."""
    return cast(
        HookStore,
        _beside(
            store,
            "webhook store",
            "services.adapters.sqlite.hooks:SqliteHooks",
            "services.adapters.cassandra.hooks:CassandraHooks",
        ),
    )


def make_call_archive(store: Store) -> CallArchive:
    """The kept upstream calls (provenance) beside `store`."""
    return cast(
        CallArchive,
        _beside(
            store,
            "call archive",
            "services.adapters.sqlite.raw:SqliteCallArchive",
            "services.adapters.cassandra.provenance:CassandraCallArchive",
        ),
    )


def make_checks(settings: Settings, store: Store) -> CheckStore:
    """Where the data-quality checks keep alerts and read activity, beside `store`."""
    return cast(
        CheckStore,
        _beside(
            store,
            "alert store",
            "services.adapters.sqlite.checks:SqliteChecks",
            "services.adapters.cassandra.checks:CassandraChecks",
            timedelta(days=settings.alerts_ttl_days),
        ),
    )


def make_letter_reader(bus: Bus) -> PartitionReader | None:
    """What reads a bus's topics directly (the API's dead-letter pages): the in-process bus's
    reader, or the Kafka bus itself; None for another bus."""
    from services.adapters.memory.bus import MemoryBus

    if isinstance(bus, MemoryBus):
        from services.adapters.memory.reader import MemoryPartitionReader

        return MemoryPartitionReader(bus)
    from services.adapters.kafka import KafkaBus

    return bus if isinstance(bus, KafkaBus) else None


def make_feed(settings: Settings, bus: Bus) -> ChangeFeed:
    """Readers of alm.metrics.changed for the SSE stream: over the in-process bus itself, or
    Kafka consumers of their own (no group) in the distributed mode."""
    from services.adapters.memory.bus import MemoryBus

    if isinstance(bus, MemoryBus):
        from services.adapters.memory.feed import MemoryChangeFeed

        return MemoryChangeFeed(bus)
    from services.adapters.kafka.feed import KafkaChangeFeed

    return KafkaChangeFeed(settings.kafka_bootstrap, settings.topic_prefix)
