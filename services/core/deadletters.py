"""Dead letters of records a consumer cannot read.

Every consumer checks what it reads against its topic's schema (services.core.schema_check).
A record that fails (not JSON, not an object, a field of the wrong type or shape, an id that
breaks the identifier rule) is published to `alm.deadletter` with the topic it came from, its
key, the value as received and the reason, and the consumer goes on with the rest of its batch:

| topic                  | read by                 | a record it cannot read                   |
|------------------------|-------------------------|-------------------------------------------|
| `alm.refresh.<source>` | that source's fetcher   | dead-lettered                             |
| `alm.metrics.raw`      | the aggregator          | dead-lettered (embedded and faust agent)  |
| `alm.works`            | the scheduler           | dead-lettered                             |
| `alm.refresh.retry`    | the scheduler           | dead-lettered                             |
| `alm.deadletter`       | the scheduler           | logged and counted, never re-published    |
| `alm.metrics.changed`  | the aggregator's recovery (subscribers are outside ALM) | skipped |

The dead letter is a `failed_refresh` event with `bad_event` instead of `request`; its key is
bounded (MAX_WORK_ID_LENGTH) and the value kept whole up to MAX_BAD_EVENT_CHARS of JSON, so a
dead letter is always a publishable record.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from services.core.events import SCHEMA_VERSION
from services.core.identifiers import MAX_WORK_ID_LENGTH
from services.core.text import ERROR_LIMIT, bounded, printable
from services.core.timeutil import to_iso

MAX_BAD_EVENT_CHARS = 64 * 1024


def kept(value: Any) -> Any:
    """`value` as received if its JSON is at most MAX_BAD_EVENT_CHARS, else the start of that
    JSON with its full length."""
    text = json.dumps(value, default=str, ensure_ascii=False)
    if len(text) <= MAX_BAD_EVENT_CHARS:
        return value
    return {"truncated_json": text[:MAX_BAD_EVENT_CHARS], "chars": len(text)}


def unreadable(
    topic: str, key: str, value: Any, error: Exception | str, at: datetime
) -> dict[str, Any]:
    """The `alm.deadletter` event for a record of `topic` that is not what the topic carries."""
    return refused(topic, key, value, f"unreadable {topic} record: {error}", at)


def refused(topic: str, key: str, value: Any, reason: str, at: datetime) -> dict[str, Any]:
    """The `alm.deadletter` event for a record of `topic` given up for `reason` (unreadable, or
    readable but failing for good, e.g. an observation the store refuses)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "work_id": printable(bounded(key, MAX_WORK_ID_LENGTH))[:MAX_WORK_ID_LENGTH],
        "topic": topic,
        "bad_event": kept(value),
        "reason": bounded(reason, ERROR_LIMIT),
        "failed_at": to_iso(at),
    }
