"""Aggregation: fold one observation into a work's per-source state, as a pure function."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any

from services.core.events import (
    FetchError,
    MetricChanged,
    Observation,
    PeriodCount,
    SourceEvent,
    Status,
)
from services.core.provenance import CallRef
from services.core.timeutil import from_iso, to_iso


@dataclass(frozen=True, slots=True)
class SourceState:
    """Latest totals of one work from one source, and the status of the last attempt."""

    work_id: str
    source: str
    metrics: dict[str, int] = field(default_factory=dict)
    retrieved_at: datetime | None = None  # of the observation the metrics come from
    last_attempt_at: datetime | None = None
    status: Status | None = None
    error: str | None = None
    events_url: str | None = None
    periods: tuple[PeriodCount, ...] = ()
    calls: tuple[CallRef, ...] = ()  # the upstream calls the metrics come from (provenance)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (stored by adapters that keep state as a document)."""
        return {
            "work_id": self.work_id,
            "source": self.source,
            "metrics": dict(self.metrics),
            "retrieved_at": to_iso(self.retrieved_at) if self.retrieved_at else None,
            "last_attempt_at": to_iso(self.last_attempt_at) if self.last_attempt_at else None,
            "status": self.status.value if self.status else None,
            "error": self.error,
            "events_url": self.events_url,
            "periods": [[p.metric, p.period, p.count] for p in self.periods],
            "calls": [c.to_dict() for c in self.calls],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SourceState:
        """Inverse of to_dict."""
        return cls(
            work_id=data["work_id"],
            source=data["source"],
            metrics={k: int(v) for k, v in (data.get("metrics") or {}).items()},
            retrieved_at=from_iso(data["retrieved_at"]) if data.get("retrieved_at") else None,
            last_attempt_at=from_iso(data["last_attempt_at"])
            if data.get("last_attempt_at")
            else None,
            status=Status(data["status"]) if data.get("status") else None,
            error=data.get("error"),
            events_url=data.get("events_url"),
            periods=tuple(PeriodCount(m, p, int(c)) for m, p, c in data.get("periods") or ()),
            calls=tuple(CallRef.from_dict(c) for c in data.get("calls") or ()),
        )


@dataclass(frozen=True, slots=True)
class HistoryPoint:
    """A daily snapshot of one work's totals from one source, written only when they change."""

    work_id: str
    source: str
    day: date
    metrics: dict[str, int]


@dataclass(frozen=True, slots=True)
class Aggregate:
    """What folding one observation produced: the new state and what to write and send."""

    state: SourceState
    applied: bool
    changed: MetricChanged | None = None
    history: HistoryPoint | None = None
    events: tuple[SourceEvent, ...] = ()
    # when the state this one replaced had failed (its last attempt, if its status was an
    # error): the failed-refresh listing's row of that time is replaced or removed
    failed_before: datetime | None = None
    # the first state of its (work, source): nothing was stored before it (the per-source
    # summary counts one more work, services/core/summary.py)
    new: bool = False


def _describe(error: FetchError | None) -> str:
    if error is None:
        return "fetch failed"
    return f"{error.kind}: {error.message}"


def _is_newer(moment: datetime, than: datetime | None) -> bool:
    return than is None or moment > than


def aggregate(obs: Observation, previous: SourceState | None) -> Aggregate:
    """Fold `obs` into `previous` (None for a first observation).

    Idempotent under redelivery, and an observation older than what the state holds changes
    nothing. A failed fetch records its error and leaves the totals untouched. A change event
    and a history point come only when the totals change. The state keeps the calls of the
    observation its totals come from (an error keeps those of the last success).
    """
    prev = previous or SourceState(obs.work_id, obs.source)
    failed_before = prev.last_attempt_at if prev.status is Status.ERROR else None
    if obs.status is Status.ERROR:
        if not _is_newer(obs.retrieved_at, prev.last_attempt_at):
            return Aggregate(prev, applied=False)
        state = replace(
            prev,
            last_attempt_at=obs.retrieved_at,
            status=Status.ERROR,
            error=_describe(obs.error),
        )
        return Aggregate(state, applied=True, failed_before=failed_before, new=previous is None)

    if not _is_newer(obs.retrieved_at, prev.retrieved_at):
        return Aggregate(prev, applied=False)
    latest_attempt = not _is_newer(prev.last_attempt_at or obs.retrieved_at, obs.retrieved_at)
    state = replace(
        prev,
        metrics=dict(obs.metrics),
        retrieved_at=obs.retrieved_at,
        last_attempt_at=obs.retrieved_at if latest_attempt else prev.last_attempt_at,
        status=obs.status if latest_attempt else prev.status,
        error=None if latest_attempt else prev.error,
        events_url=obs.events_url or prev.events_url,
        periods=obs.periods or prev.periods,
        calls=obs.calls,
    )
    history = None
    if previous is None or previous.retrieved_at is None or previous.metrics != state.metrics:
        history = HistoryPoint(obs.work_id, obs.source, obs.retrieved_at.date(), state.metrics)
    return Aggregate(
        state,
        applied=True,
        changed=_change(prev.metrics, state.metrics, obs),
        history=history,
        events=obs.events,
        failed_before=failed_before,
        new=previous is None,
    )


def _change(
    before: dict[str, int], after: dict[str, int], obs: Observation
) -> MetricChanged | None:
    names = sorted(set(before) | set(after))
    delta = {n: after.get(n, 0) - before.get(n, 0) for n in names}
    if not any(delta.values()):
        return None
    return MetricChanged(
        work_id=obs.work_id,
        source=obs.source,
        previous=dict(before),
        current=dict(after),
        delta={n: d for n, d in delta.items() if d},
        at=obs.retrieved_at,
    )
