"""What the API application is built from: `ApiContext`, every dependency passed in.

services/bootstrap/ (`api_context`) builds it from the settings and the adapters; tests
build it with theirs (a fake clock, a store of their own). The API imports no adapter, no
fetcher plug-in and no bootstrap: what it knows of the sources is the `catalog`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.core.activity import ActivityStore
from services.core.alerts import AlertStore
from services.core.catalog import Catalog
from services.core.changefeed import ChangeFeed
from services.core.keys import KeyStore
from services.core.partitions import PartitionReader
from services.core.ports import Bus, Store
from services.core.provenance import CallArchive
from services.core.publishers import PublisherStore
from services.core.webhooks import HookStore
from services.notify_settings import NotifySettings
from services.registration import Scheduling
from services.settings import AccessSettings


@dataclass(frozen=True, slots=True)
class ApiContext:
    """The API's adapters, catalog, clock and settings-derived values."""

    store: Store
    bus: Bus
    keys: KeyStore  # API keys, beside the store
    hooks: HookStore  # webhooks and their delivery logs
    publishers: PublisherStore
    calls: CallArchive  # kept upstream calls (provenance)
    alerts: AlertStore  # data-quality alerts
    feed: ChangeFeed  # alm.metrics.changed for the SSE stream
    catalog: Catalog  # the installed sources
    scheduling: Scheduling  # what a work registered here is owed
    clock: Callable[[], datetime]
    access: AccessSettings
    notify: NotifySettings
    status_cache_seconds: float  # age of the whole-table counts (services/api/cache.py)
    raw_ttl: timedelta  # how long upstream calls are kept
    alerts_ttl: timedelta  # how long alerts are kept
    store_timeout: float  # seconds a store call may take
    work_cache_seconds: float = 0.0  # works' answers kept (services/api/rendered.py); 0: none
    work_cache_bytes: int = 0  # ... in at most this many bytes
    public_metrics: bool = False  # /metrics on the API's own port
    activity: ActivityStore | None = None  # the fetchers' hourly windows (the sources page)
    owned: bool = False  # the app closes the store and the bus when it stops
    migrate: bool = False  # the app migrates the store when it starts (an embedded file)
    letters: PartitionReader | None = None  # reads alm.deadletter (the dead-letter pages)
