"""Events to Kafka records and back: the keys, the partition a key maps to, packed records.

Records are keyed by work id (UTF-8), so every event of a work lands on the same partition and
is handled in order by one member of each group. Values are compact JSON. On the high-volume
topics the events bound for one partition are packed into one record (`publish(..., pack=N)`,
services/core/packing.py): the partition is chosen from each event's key with the default
partitioner's murmur2, so an event lands where it would have alone; consumers unpack.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from services.core.packing import decode, encode, pack, undecodable, unpack
from services.core.ports import Message

with warnings.catch_warnings():
    # kafka-python 3.0 still loads its protocol schemas with importlib.resources.read_text
    warnings.simplefilter("ignore", DeprecationWarning)
    from kafka.partitioner.default import murmur2


def records_of(
    items: Sequence[tuple[str, Mapping[str, Any]]], per: int, partitions: int
) -> Sequence[tuple[int, bytes, bytes]]:
    """(partition, key, value) records: `items` packed `per` a record into the partitions
    their keys map to, or (per = 0) one record each, on its key's partition."""
    if per:
        return pack(items, lambda key: partition_of(key, partitions), per)
    out = []
    for key, value in items:
        k = key.encode()
        out.append((partition_of(k, partitions), k, encode(value)))
    return out


def partition_of(key: bytes, partitions: int) -> int:
    """The partition the Java client's default partitioner (and kafka-python's, and
    aiokafka's) gives `key`: murmur2, sign bit cleared, modulo the partition count."""
    return int(murmur2(key) & 0x7FFFFFFF) % partitions


def messages_of(record: Any, strip: int) -> list[Message]:
    """The events of one record (several if it is a packed batch), sharing its offset; the
    topic's first `strip` characters (the prefix) removed."""
    try:
        value = decode(record.value)
        if not isinstance(value, dict):
            raise ValueError("not a JSON object")
    except (ValueError, TypeError) as exc:
        # handed on so the service's schema check rejects and logs it, instead of a crash loop
        text = record.value.decode("utf-8", "replace") if record.value else ""
        value = undecodable(text, str(exc))
    key = record.key.decode("utf-8", "replace") if record.key is not None else ""
    topic = record.topic[strip:]
    return [Message(topic, k, v, record.partition, record.offset) for k, v in unpack(key, value)]
