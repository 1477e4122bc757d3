"""The records the faust aggregator reads and writes, and the identity of a metric change.

The agent consumes `alm.metrics.raw` as JSON objects and checks them against
`schemas/observation.schema.json` at the edge (Aggregator.decode), exactly as the embedded
runner does, before they become core `Observation`s; it publishes core `MetricChanged` events.
A faust.Record mirror of those types would be a second definition to keep in step, so the
typed records are the core ones (services.core.events).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from services.core.events import MetricChanged
from services.core.timeutil import from_iso, to_iso


def change_id(work_id: str, source: str, at: datetime) -> str:
    """The identity of a metric change: one per (work, source, observation time).

    An observation is applied at most once to a work's state (aggregate() ignores one not newer
    than the state), so this identifies the change it produced across redeliveries and restarts.
    """
    return f"{work_id}|{source}|{to_iso(at)}"


def id_of(change: MetricChanged) -> str:
    """The identity of a core change event."""
    return change_id(change.work_id, change.source, change.at)


def id_of_value(value: Mapping[str, Any]) -> str | None:
    """The identity of a change as read back from `alm.metrics.changed` (None if unreadable)."""
    try:
        return change_id(str(value["work_id"]), str(value["source"]), from_iso(str(value["at"])))
    except (KeyError, ValueError):
        return None
