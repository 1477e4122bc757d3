"""The aggregator's topics: it reads `alm.metrics.raw` (and publishes to `alm.metrics.changed`
through the KafkaBus, keyed by work id). Topics are created by `alm topics create`, not here."""

from __future__ import annotations

from typing import Any

from services.core.events import TOPIC_RAW


def raw_topic(app: Any, prefix: str) -> Any:
    """`alm.metrics.raw` as a faust topic of raw bytes keyed by work id: the agent decodes the
    JSON itself, so that a record that is not JSON is dead-lettered like any unreadable record
    (with faust's json serializer it would end the agent)."""
    return app.topic(
        prefix + TOPIC_RAW,
        key_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        internal=False,
    )
