"""Prometheus metrics of the upstream calls, per source."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

UPSTREAM_CALLS = Counter("alm_upstream_requests_total", "Upstream HTTP calls", ["source", "status"])
UPSTREAM_ERRORS = Counter(
    "alm_upstream_errors_total", "Upstream calls that failed, by kind", ["source", "kind"]
)
UPSTREAM_LATENCY = Histogram(
    "alm_upstream_latency_seconds",
    "Upstream call latency",
    ["source"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
RATE_LIMIT_WAIT = Counter(
    "alm_ratelimit_wait_seconds_total", "Seconds spent waiting on rate limits", ["source"]
)
SOURCE_PAUSED = Gauge("alm_source_paused", "1 while a source is paused", ["source"])
OBSERVATIONS = Counter(
    "alm_observations_total", "Observations produced by fetchers", ["source", "status"]
)
