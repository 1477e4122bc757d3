"""How the Kafka adapter reaches its cluster: the bootstrap servers, the topic prefix, the
client id every connection is named after.

`prefix` (ALM_TOPIC_PREFIX) is put in front of every topic and group name, so several
deployments, or test runs, can share one cluster; callers keep using the plain names.
services/settings.py reads them from ALM_KAFKA_BOOTSTRAP and ALM_TOPIC_PREFIX; bootstrap
passes them in.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class KafkaConnection:
    """The cluster and the names this process uses on it."""

    bootstrap: str = "127.0.0.1:9092"
    prefix: str = ""
    client_id: str = "alm"

    def topic(self, name: str) -> str:
        """The real topic (or group) name of `name` on the cluster."""
        return self.prefix + name
