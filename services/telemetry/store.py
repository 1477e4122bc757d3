"""Latency and failures of the store's calls, per store and operation.

`instrument(store, "cassandra")` times every operation of the Store port (services/core/ports.py)
on that one instance, so the adapters stay free of metrics code and the object stays what it
was (its class, its other attributes).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from prometheus_client import Counter, Histogram

from services.core import ports

STORE_LATENCY = Histogram(
    "alm_store_call_duration_seconds",
    "Store calls (SQLite or Cassandra) by operation of the Store port",
    ["store", "call"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
STORE_ERRORS = Counter(
    "alm_store_call_errors_total", "Store calls that raised, by operation", ["store", "call"]
)

S = TypeVar("S")


def operations() -> list[str]:
    """The coroutine methods of the Store port and the ports it is made of."""
    names = {
        name
        for cls in ports.Store.__mro__
        if cls.__module__ == ports.__name__
        for name, value in vars(cls).items()
        if not name.startswith("_") and inspect.iscoroutinefunction(value)
    }
    return sorted(names)


def instrument(store: S, backend: str) -> S:
    """`store`, with each Store operation it has timed into STORE_LATENCY and counted into
    STORE_ERRORS when it raises (a cancelled call counts as neither)."""
    for name in operations():
        method = getattr(store, name, None)
        if method is not None:
            setattr(store, name, _timed(method, backend, name))
    return store


def _timed(
    method: Callable[..., Awaitable[Any]], backend: str, name: str
) -> Callable[..., Awaitable[Any]]:
    latency = STORE_LATENCY.labels(backend, name)
    errors = STORE_ERRORS.labels(backend, name)

    @functools.wraps(method)
    async def timed(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return await method(*args, **kwargs)
        except asyncio.CancelledError:
            raise
        except Exception:
            errors.inc()
            raise
        finally:
            latency.observe(time.perf_counter() - start)

    return timed
