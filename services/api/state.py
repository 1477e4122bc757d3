"""Typed keys of the API application's state."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from aiohttp import web

from services.core.ports import Bus, Store

STORE = web.AppKey("store", Store)
BUS = web.AppKey("bus", Bus)
CLOCK: web.AppKey[Callable[[], datetime]] = web.AppKey("clock")
