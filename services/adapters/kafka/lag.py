"""The lag a consumer-group member reports (alm_consumer_lag) from what its consumer knows."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from typing import Any

from services.core.partitions import LagSink

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # kafka-python's importlib use
    from kafka import KafkaConsumer


def observe_lag(consumer: KafkaConsumer, batches: Mapping[Any, list[Any]], lag: LagSink) -> None:
    """Report the lag of the owned partitions after a poll that returned `batches`: end offsets
    from the fetch responses; until the member commits on a partition, its committed offset is
    where reading began."""
    owned = consumer.assignment()
    lag.owned((tp.topic, tp.partition) for tp in owned)
    for tp in owned:
        key = (tp.topic, tp.partition)
        if not lag.knows_committed(key):
            records = batches.get(tp)
            begun = records[0].offset if records else consumer.position(tp)
            if begun is not None:
                lag.started(key, begun)
        lag.end(key, consumer.highwater(tp))
