"""The ALM topics: their partitions and configs, and creating those that are missing."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Sequence
from typing import Any

from services.core.events import (
    TOPIC_CHANGED,
    TOPIC_DEADLETTER,
    TOPIC_RAW,
    TOPIC_RETRY,
    TOPIC_WORKS,
    refresh_topic,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # kafka-python's importlib use
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError, TopicAlreadyExistsError

# Partitions of the high-volume topics (refresh, raw, changed). The partition count caps how many
# members of a group share the work: 6 lets a fetcher or aggregator group grow to 6 processes
# (3 per core on this 2-core box, more on a real cluster) without repartitioning. alm.metrics.raw
# and alm.metrics.changed must have the same count: a work is then on the same partition number
# in both, which the aggregator relies on to check what it already published.
DEFAULT_PARTITIONS = 6
# alm.works, alm.refresh.retry and alm.deadletter carry a trickle (registrations, failures) and
# are read by the single scheduler; a few partitions keep per-work order and room to grow.
LOW_VOLUME_PARTITIONS = 3


def topic_specs(sources: Sequence[str], partitions: int) -> dict[str, dict[str, Any]]:
    """Every ALM topic with its partitions and configs (unprefixed names)."""
    low = min(partitions, LOW_VOLUME_PARTITIONS)
    specs: dict[str, dict[str, Any]] = {
        TOPIC_WORKS: {"num_partitions": low, "configs": {"cleanup.policy": "compact"}},
        TOPIC_RAW: {"num_partitions": partitions},
        TOPIC_CHANGED: {"num_partitions": partitions},
        TOPIC_RETRY: {"num_partitions": low},
        TOPIC_DEADLETTER: {"num_partitions": low, "configs": {"retention.ms": str(30 * 86400_000)}},
    }
    for source in sources:
        specs[refresh_topic(source)] = {"num_partitions": partitions}
    return specs


async def ensure_topics(
    bootstrap: str,
    sources: Sequence[str],
    partitions: int = DEFAULT_PARTITIONS,
    *,
    prefix: str = "",
    replication: int = 1,
) -> list[str]:
    """Create every ALM topic that does not exist yet; returns the names it created."""

    def run() -> list[str]:
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="alm-admin")
        try:
            existing = set(admin.list_topics())
            wanted = {
                prefix + name: {"replication_factor": replication, **spec}
                for name, spec in topic_specs(sources, partitions).items()
            }
            missing = {name: spec for name, spec in wanted.items() if name not in existing}
            if not missing:
                return []
            result = admin.create_topics(missing, raise_errors=False)
            created = []
            for topic in result["topics"]:
                if topic["error_code"] == 0:
                    created.append(topic["name"])
                elif topic["error_code"] != TopicAlreadyExistsError.errno:
                    raise KafkaError(f"cannot create {topic['name']}: {topic['error_message']}")
            if created:
                admin.wait_for_topics(created, timeout_ms=30_000)
            return sorted(created)
        finally:
            admin.close()

    return await asyncio.to_thread(run)
