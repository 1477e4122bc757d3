"""Counters of the pipeline's services: what the scheduler sends, what fails and is retried,
what is rejected, what the aggregator folds and publishes."""

from __future__ import annotations

from prometheus_client import Counter

INTAKE_WORKS = Counter(
    "alm_intake_works_total",
    "Works registered in bulk that the scheduler took from the intake and gave due entries",
)
REFRESH_REQUESTS = Counter(
    "alm_refresh_requests_total", "Refresh requests the scheduler sent, per source", ["source"]
)
FAILED_REFRESHES = Counter(
    "alm_failed_refreshes_total",
    "Failed refreshes a fetcher routed: outcome retry (alm.refresh.retry) or dead_letter",
    ["source", "outcome"],
)
REJECTED_EVENTS = Counter(
    "alm_rejected_events_total",
    "Events that failed their schema check and were skipped or dead-lettered",
    ["service"],
)
STEP_FAILURES = Counter(
    "alm_step_failures_total",
    "Failed steps of a service's loop (Kafka or the store unreachable), redone after a pause",
    ["service"],
)
AGGREGATED = Counter(
    "alm_aggregated_observations_total", "Observations the aggregator folded into stored state"
)
CHANGES = Counter("alm_metric_changes_total", "Metric-change events the aggregator published")
