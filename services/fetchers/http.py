"""The shared HTTP layer of the fetchers: aiohttp calls with per-source rate limits, timeouts,
jittered retries, a concurrency cap, a polite User-Agent and Prometheus metrics.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from urllib.parse import urlsplit

import aiohttp

from services.core.events import FetchError
from services.fetchers.auth import TokenCache
from services.fetchers.base import Source, UpstreamRequest, UpstreamResponse
from services.fetchers.ratelimit import RateLimiter
from services.fetchers.telemetry import (
    RATE_LIMIT_WAIT,
    UPSTREAM_CALLS,
    UPSTREAM_ERRORS,
    UPSTREAM_LATENCY,
)

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class HttpSettings:
    """Timeouts, retries and identity of upstream calls."""

    user_agent: str = "ALM/0.1 (https://github.com/alm-metrics/alm; mailto:alm@example.org)"
    timeout: float = 30.0
    retries: int = 2
    backoff_base: float = 0.5
    max_wait: float = 10.0  # a longer upstream-requested wait fails the call; it is retried later
    rates: Mapping[str, float] = field(default_factory=dict)  # per-source requests/s overrides
    concurrency: Mapping[str, int] = field(default_factory=dict)  # per-source overrides


class _SourceGate:
    """Rate limiter and concurrency cap of one source."""

    def __init__(self, source: Source, settings: HttpSettings) -> None:
        rate = settings.rates.get(source.name, source.limits.requests_per_second)
        concurrency = settings.concurrency.get(source.name, source.limits.concurrency)
        self.limiter = RateLimiter(
            rate=rate,
            burst=max(1.0, rate),
            concurrency=concurrency,
            tokens=1.0,
            updated=time.monotonic(),
        )
        self.semaphore = asyncio.Semaphore(concurrency)
        self.waited = 0.0


class HttpCaller:
    """Calls upstreams for every source; one aiohttp session, one gate per source."""

    def __init__(self, base_urls: Mapping[str, str], settings: HttpSettings) -> None:
        self._base_urls = dict(base_urls)
        self._settings = settings
        self._session: aiohttp.ClientSession | None = None
        self._gates: dict[str, _SourceGate] = {}
        self._tokens = TokenCache()
        self.calls: dict[str, int] = {}

    async def __aenter__(self) -> HttpCaller:
        connector = aiohttp.TCPConnector(limit=64, ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(
            connector=connector,
            headers={"User-Agent": self._settings.user_agent},
            timeout=aiohttp.ClientTimeout(total=self._settings.timeout),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    def base_url(self, source: Source) -> str:
        """The base URL calls to `source` go to (configured, else the real upstream)."""
        return self._base_urls.get(source.name, source.base_url).rstrip("/")

    def url_for(self, source: Source, request: UpstreamRequest) -> str:
        """Where `request` goes: its host (or the base URL) plus its path.

        A configured base URL (the stub, a proxy) stands for every host of the source: a call
        meant for another host goes to `<base>/<hostname><host path><path>` there.
        """
        base = self.base_url(source)
        if request.host is None:
            return base + request.path
        if base == source.base_url.rstrip("/"):
            return request.host.rstrip("/") + request.path
        host = urlsplit(request.host)
        return f"{base}/{host.netloc}{host.path.rstrip('/')}{request.path}"

    def gate(self, source: Source) -> _SourceGate:
        """The rate limiter and concurrency cap of `source`."""
        if source.name not in self._gates:
            self._gates[source.name] = _SourceGate(source, self._settings)
        return self._gates[source.name]

    async def call(self, source: Source, request: UpstreamRequest) -> UpstreamResponse | FetchError:
        """Send `request` (with the source's access token if it has an auth call), retrying
        transient failures; a FetchError when it cannot succeed."""
        if request.auth is None:
            return await self._call(source, request)
        reply: UpstreamResponse | FetchError = FetchError("config", "no token")
        for _ in range(2):  # a 401 with a cached token: renew the token once and resend
            token = await self._tokens.get(source, request.auth, self._call)
            if isinstance(token, FetchError):
                return token
            header = (token.header, token.header_value())
            reply = await self._call(source, replace(request, headers=(*request.headers, header)))
            if not (isinstance(reply, UpstreamResponse) and reply.status == 401):
                return reply
            self._tokens.drop(source, token)
        return reply

    async def _call(
        self, source: Source, request: UpstreamRequest
    ) -> UpstreamResponse | FetchError:
        gate = self.gate(source)
        last: UpstreamResponse | FetchError = FetchError("connection", "not sent")
        for attempt in range(self._settings.retries + 1):
            clock = time.monotonic()
            paused = gate.limiter.paused_until - clock
            if paused > self._settings.max_wait:  # the upstream asked for a long pause
                return FetchError(
                    "rate_limited",
                    f"{gate.limiter.pause_reason or 'rate limit'}; "
                    f"next call allowed in {paused:.0f}s",
                    retryable=True,
                )
            wait = gate.limiter.reserve(clock)  # our own pacing: always waited out
            if wait > 0:
                gate.waited += wait
                RATE_LIMIT_WAIT.labels(source.name).inc(wait)
                await asyncio.sleep(wait)
            async with gate.semaphore:
                last = await self._send(source, request)
            if isinstance(last, UpstreamResponse):
                gate.limiter.observe(last.headers, time.monotonic(), datetime.now(UTC), last.status)
                if last.status not in RETRY_STATUSES:
                    return last
                if "retry-after" not in last.headers:
                    reason = f"HTTP {last.status} without Retry-After"
                    gate.limiter.backoff(time.monotonic(), self._delay(attempt), reason)
            elif attempt < self._settings.retries:
                await asyncio.sleep(self._delay(attempt))
        return last

    def _delay(self, attempt: int) -> float:
        base = self._settings.backoff_base * (2**attempt)
        return float(base + random.uniform(0, base))

    async def _send(
        self, source: Source, request: UpstreamRequest
    ) -> UpstreamResponse | FetchError:
        assert self._session is not None, "HttpCaller used outside 'async with'"
        url = self.url_for(source, request)
        self.calls[source.name] = self.calls.get(source.name, 0) + 1
        started = time.perf_counter()
        try:
            async with self._session.request(
                request.method,
                url,
                params=list(request.params),
                json=request.json_body,
                data=list(request.form) if request.form else None,
                headers=dict(request.headers),
            ) as resp:
                body = await resp.read()
                response = UpstreamResponse(
                    resp.status,
                    {k.lower(): v for k, v in resp.headers.items()},
                    body,
                    str(resp.url),
                    time.perf_counter() - started,
                )
        except TimeoutError:
            UPSTREAM_ERRORS.labels(source.name, "timeout").inc()
            return FetchError("timeout", f"no answer from {url} within {self._settings.timeout}s")
        except aiohttp.ClientError as exc:
            UPSTREAM_ERRORS.labels(source.name, "connection").inc()
            return FetchError("connection", f"{type(exc).__name__}: {exc}")
        finally:
            UPSTREAM_LATENCY.labels(source.name).observe(time.perf_counter() - started)
        UPSTREAM_CALLS.labels(source.name, str(response.status)).inc()
        return response
