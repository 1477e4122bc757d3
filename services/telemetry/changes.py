"""Metrics of the subscribers' channels: the SSE stream of the API and webhook deliveries."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

SSE_CLIENTS = Gauge("alm_changes_clients", "Open SSE streams of GET /api/v1/changes")
SSE_FRAMES = Counter("alm_changes_events_total", "Change events queued for SSE clients")
SSE_CLOSED = Counter(
    "alm_changes_closed_total",
    "SSE streams the server ended, by reason (slow_client, max_duration, shutdown, gone)",
    ["reason"],
)
WEBHOOK_ATTEMPTS = Counter(
    "alm_webhook_attempts_total",
    "Webhook delivery attempts by outcome (delivered, retry, failed, refused)",
    ["outcome"],
)
WEBHOOK_DURATION = Histogram(
    "alm_webhook_attempt_duration_seconds",
    "How long a webhook receiver took to answer one delivery attempt",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
WEBHOOK_QUEUED = Gauge(
    "alm_webhook_queued", "Deliveries waiting for a webhook whose receiver failed (all hooks)"
)
WEBHOOKS_DISABLED = Counter(
    "alm_webhooks_disabled_total", "Webhooks disabled after consecutive failed deliveries"
)
