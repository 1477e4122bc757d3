"""Typed keys of the API application's state."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from aiohttp import web

from services.api.cache import TotalsCache
from services.api.rendered import RenderedCache
from services.core.activity import ActivityStore
from services.core.alerts import AlertStore
from services.core.catalog import Catalog
from services.core.keys import KeyStore
from services.core.partitions import PartitionReader
from services.core.ports import Bus, Store
from services.core.provenance import CallArchive
from services.core.publishers import PublisherStore
from services.core.webhooks import HookStore
from services.notify_settings import NotifySettings
from services.registration import Scheduling

if TYPE_CHECKING:
    from services.api.hub import ChangeHub

STORE = web.AppKey("store", Store)
BUS = web.AppKey("bus", Bus)
CLOCK: web.AppKey[Callable[[], datetime]] = web.AppKey("clock")
TOTALS = web.AppKey("totals", TotalsCache)  # whole-table counts, kept a few seconds
SCHEDULING = web.AppKey("scheduling", Scheduling)
KEYS = web.AppKey("keys", KeyStore)
PUBLISHERS = web.AppKey("publishers", PublisherStore)
CALLS = web.AppKey("calls", CallArchive)  # kept upstream calls (provenance)
RAW_TTL: web.AppKey[timedelta] = web.AppKey("raw_ttl")  # how long they are kept
ALERTS = web.AppKey("alerts", AlertStore)  # stored data-quality alerts
ACTIVITY = web.AppKey("activity", ActivityStore)  # the fetchers' hourly windows (if kept)
ALERTS_TTL: web.AppKey[timedelta] = web.AppKey("alerts_ttl")  # how long they are kept
STORE_TIMEOUT: web.AppKey[float] = web.AppKey("store_timeout")  # seconds a store call may take
CATALOG = web.AppKey("catalog", Catalog)  # the installed sources (services/core/catalog.py)
NOTIFY = web.AppKey("notify", NotifySettings)  # SSE and webhook settings
HUB: web.AppKey[ChangeHub] = web.AppKey("hub")  # the SSE stream's reader and clients
HOOKS = web.AppKey("hooks", HookStore)  # registered webhooks and their delivery logs
LETTERS: web.AppKey[PartitionReader | None] = web.AppKey("letters")  # alm.deadletter
# works' answers kept as bytes until their numbers change (services/api/rendered.py)
RENDERED = web.AppKey("rendered", RenderedCache)
EXPORT_CHUNK: web.AppKey[int] = web.AppKey("export_chunk")  # works a CSV export reads at a time
