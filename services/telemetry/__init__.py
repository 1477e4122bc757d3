"""Prometheus instrumentation shared by the services: consumer lag, API and store latency, and
the pipeline's own counters (the fetchers' upstream metrics are in services/fetchers/telemetry.py).
Every metric is defined at module level here and exported on the API's /metrics or, for a
worker service, on ALM_METRICS_PORT."""
