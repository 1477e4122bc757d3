"""Data-quality alerts as Prometheus sees them: every new alert counted by kind and source
(services/core/alerts.py; `source` is "" for an alert about no source), and when the periodic
checks last ran."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

from services.core.alerts import Alert

ALERTS = Counter(
    "alm_alerts_total",
    "Data-quality alerts raised (new ones; one per day, kind, source and work)",
    ["kind", "source"],
)
CHECKS_RUN = Gauge(
    "alm_checks_last_run_timestamp_seconds",
    "When the periodic data-quality checks last completed (Unix time)",
)


def count(alerts: list[Alert]) -> None:
    """Count newly stored alerts."""
    for alert in alerts:
        ALERTS.labels(alert.kind.value, alert.source or "").inc()
