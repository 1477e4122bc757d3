"""Several events in one bus record: the envelope both bus adapters use on high-volume topics.

One upstream call answers for up to 50 works, and a scheduler tick emits thousands of refresh
requests. With one Kafka record per event, the per-record costs (building and acknowledging it
in the producer, the broker's per-record work, the consumer's record parsing, faust's
per-event machinery) were a large part of what a refresh cost. `publish(topic, items, pack=N)`
therefore groups the events whose keys fall on the same partition into records of at most N
events and about PACK_BYTES (N per topic: services/core/events.py):

    {"schema_version": 1, "batch": [[key, event], [key, event], ...]}

(schemas/record_batch.schema.json). The record is keyed by its first event's key and written
to the partition every one of its keys maps to, so each event still lands where its own key
would have put it, in order, and is handled by the same member of each consumer group.
Consumers `unpack` records and see one Message per event; a record is handed out whole, and its
offset is committed only after all of its events were processed (at-least-once, as before).
A record that is not a batch is one event: single-event records from other producers, or from
before this envelope, still read.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

PACK_VERSION = 1
PACK_BYTES = 512 * 1024  # well under Kafka's default 1 MiB record and request limits

_HEAD = b'{"schema_version":%d,"batch":[' % PACK_VERSION
_TAIL = b"]}"


def encode(value: Mapping[str, Any]) -> bytes:
    """An event as a record value: compact JSON, UTF-8 (orjson, which faust decodes with too)."""
    return orjson.dumps(value)


def decode(raw: bytes | str) -> Any:
    """A record value's JSON (ValueError if it is not JSON)."""
    return orjson.loads(raw)


def value_of(raw: bytes | None) -> Mapping[str, Any]:
    """A record's value as an event: its JSON object, or (not JSON, not an object) an event no
    schema accepts, with the reason, which the consuming service dead-letters."""
    try:
        value = decode(raw or b"")
    except (ValueError, TypeError) as exc:
        return undecodable((raw or b"").decode("utf-8", "replace"), str(exc))
    if not isinstance(value, dict):
        return undecodable(value, "not a JSON object")
    return value


def pack(
    items: Sequence[tuple[str, Mapping[str, Any]]],
    partition_of: Callable[[bytes], int],
    max_items: int,
) -> list[tuple[int, bytes, bytes]]:
    """(partition, key, value) records holding `items` grouped by the partition of their keys:
    at most `max_items` events and about PACK_BYTES each (an event larger than that goes
    alone), in the order given within each partition."""
    if max_items < 1:
        raise ValueError("max_items must be at least 1")
    open_: dict[int, tuple[bytes, list[bytes], int]] = {}  # partition -> first key, entries, size
    out: list[tuple[int, bytes, bytes]] = []

    def close(part: int) -> None:
        first, entries, _ = open_.pop(part)
        out.append((part, first, _HEAD + b",".join(entries) + _TAIL))

    for key, value in items:
        raw_key = key.encode()
        part = partition_of(raw_key)
        entry = b"[" + orjson.dumps(key) + b"," + encode(value) + b"]"
        current = open_.get(part)
        if current is not None and (
            len(current[1]) >= max_items or current[2] + len(entry) > PACK_BYTES
        ):
            close(part)
            current = None
        if current is None:
            open_[part] = (raw_key, [entry], len(entry))
        else:
            current[1].append(entry)
            open_[part] = (current[0], current[1], current[2] + len(entry) + 1)
    for part in list(open_):
        close(part)
    return out


def unpack(key: str, value: Any) -> list[tuple[str, Mapping[str, Any]]]:
    """The (key, event) pairs of one record: the events of a batch, or the record itself.

    A malformed batch or entry becomes an event that no schema accepts (with the reason), so
    the consuming service rejects and logs it like any bad event and keeps the rest."""
    if not isinstance(value, dict) or "batch" not in value:
        return [(key, value)]
    batch = value["batch"]
    if not isinstance(batch, list):
        return [(key, undecodable(value, "a record batch whose 'batch' is not a list"))]
    out: list[tuple[str, Mapping[str, Any]]] = []
    for entry in batch:
        if (
            isinstance(entry, list)
            and len(entry) == 2
            and isinstance(entry[0], str)
            and isinstance(entry[1], dict)
        ):
            out.append((entry[0], entry[1]))
        else:
            out.append((key, undecodable(entry, "a record batch entry is not a [key, event] pair")))
    return out


def undecodable(raw: Any, error: str) -> dict[str, str]:
    """What a consumer is handed for something that is not an event (its schema check fails)."""
    text = raw if isinstance(raw, str) else json.dumps(raw, default=str)
    return {"undecodable": text[:2000], "error": error}
