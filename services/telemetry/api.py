"""Latency of the API's requests by route, method and status, from one aiohttp middleware."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import Histogram

API_LATENCY = Histogram(
    "alm_api_request_duration_seconds",
    "API requests by route template, method and HTTP status",
    ["route", "method", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
UNMATCHED = "unmatched"  # the route of a request no route matched (a 404 or 405)
CLIENT_GONE = "499"  # the client went away before the answer (nginx's convention)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def route_of(request: web.Request) -> str:
    """The route template that matched (`/api/v1/works/{id}`), never the raw path, so the
    label stays bounded whatever clients ask for."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED


@web.middleware
async def request_metrics(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Observe how long each request took, with the status it was answered with (outermost
    middleware: it sees the JSON error responses the others make)."""
    start = time.perf_counter()
    status = "500"
    try:
        response = await handler(request)
        status = str(response.status)
        return response
    except web.HTTPException as exc:
        status = str(exc.status)
        raise
    except asyncio.CancelledError:
        status = CLIENT_GONE
        raise
    finally:
        elapsed = time.perf_counter() - start
        API_LATENCY.labels(route_of(request), request.method, status).observe(elapsed)
