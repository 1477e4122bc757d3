"""Typed keys of the API application's state."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from aiohttp import web

from services.core.keys import KeyStore
from services.core.ports import Bus, Store
from services.registration import Scheduling

if TYPE_CHECKING:
    from services.api.access import Guard
    from services.api.totals import Totals

STORE = web.AppKey("store", Store)
BUS = web.AppKey("bus", Bus)
CLOCK: web.AppKey[Callable[[], datetime]] = web.AppKey("clock")
TOTALS: web.AppKey[Totals] = web.AppKey("totals")
SCHEDULING = web.AppKey("scheduling", Scheduling)
KEYS = web.AppKey("keys", KeyStore)
GUARD: web.AppKey[Guard] = web.AppKey("guard")
STORE_TIMEOUT: web.AppKey[float] = web.AppKey("store_timeout")  # seconds a store call may take
