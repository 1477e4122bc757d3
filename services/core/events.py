"""The events carried on every topic, as typed records with their JSON forms.

Each record's `to_dict()` output is what `schemas/<name>.schema.json` describes; schemas are
checked at the edges (services.core.schema_check), never here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID, uuid5

from services.core.provenance import CallRef
from services.core.text import ERROR_LIMIT, bounded
from services.core.timeutil import from_iso, to_iso
from services.core.works import WorkRef

SCHEMA_VERSION = 1

TOPIC_WORKS = "alm.works"
TOPIC_RAW = "alm.metrics.raw"
TOPIC_CHANGED = "alm.metrics.changed"
TOPIC_RETRY = "alm.refresh.retry"
TOPIC_DEADLETTER = "alm.deadletter"

# Events per bus record on the high-volume topics (the bus packs the events bound for one
# partition together, see services/core/packing.py). Refresh requests: a fetcher takes a few
# records a step, so a slow one-work-a-call source still commits often. Observations: what a
# few upstream calls answered.
PACK_REQUESTS = 50
PACK_OBSERVATIONS = 500


def refresh_topic(source: str) -> str:
    """The topic carrying refresh requests for one source."""
    return f"alm.refresh.{source}"


class Status(StrEnum):
    """Outcome of one fetch of one work from one source."""

    OK = "ok"
    NOT_FOUND = "not_found"  # upstream has no record: stored as zero, not an error
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class PeriodCount:
    """An upstream's count for one period: `period` is `YYYY`, `YYYY-MM` or `YYYY-MM-DD`."""

    metric: str
    period: str
    count: int


@dataclass(frozen=True, slots=True)
class SourceEvent:
    """One citation or mention, deduplicated by `event_id`; `csl` is CSL-JSON of the citer."""

    event_id: str
    event_time: str | None = None
    url: str | None = None
    csl: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "event_id": self.event_id,
            "event_time": self.event_time,
            "url": self.url,
            "csl": dict(self.csl),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SourceEvent:
        """Inverse of to_dict."""
        return cls(data["event_id"], data.get("event_time"), data.get("url"), data.get("csl") or {})


@dataclass(frozen=True, slots=True)
class FetchError:
    """Why a fetch failed; `retryable` failures are tried again later."""

    kind: str  # timeout | http | parse | rate_limited | connection | config | rejected | paused
    message: str
    retryable: bool = True
    http_status: int | None = None

    def __post_init__(self) -> None:
        # messages quote upstream bodies and URLs (which hold ids): stored and published bounded
        if len(self.message) > ERROR_LIMIT:
            object.__setattr__(self, "message", bounded(self.message, ERROR_LIMIT))


@dataclass(frozen=True, slots=True)
class Observation:
    """One source's observation of one work (topic `alm.metrics.raw`)."""

    work_id: str
    source: str
    retrieved_at: datetime
    status: Status
    metrics: Mapping[str, int] = field(default_factory=dict)
    periods: tuple[PeriodCount, ...] = ()
    events: tuple[SourceEvent, ...] = ()
    events_url: str | None = None
    error: FetchError | None = None
    request_url: str | None = None
    work_meta: Mapping[str, str] = field(default_factory=dict)  # title, issued, pmid, ... learned
    calls: tuple[CallRef, ...] = ()  # the answered upstream calls it came from (provenance)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "schema_version": SCHEMA_VERSION,
            "work_id": self.work_id,
            "source": self.source,
            "retrieved_at": to_iso(self.retrieved_at),
            "status": self.status.value,
            "metrics": dict(self.metrics),
            "periods": [
                {"metric": p.metric, "period": p.period, "count": p.count} for p in self.periods
            ],
            "events": [e.to_dict() for e in self.events],
            "events_url": self.events_url,
            "error": None
            if self.error is None
            else {
                "kind": self.error.kind,
                "message": self.error.message,
                "retryable": self.error.retryable,
                "http_status": self.error.http_status,
            },
            "request_url": self.request_url,
            "work_meta": dict(self.work_meta),
            "calls": [c.to_dict() for c in self.calls],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Observation:
        """Inverse of to_dict."""
        err = data.get("error")
        return cls(
            work_id=data["work_id"],
            source=data["source"],
            retrieved_at=from_iso(data["retrieved_at"]),
            status=Status(data["status"]),
            metrics={k: int(v) for k, v in (data.get("metrics") or {}).items()},
            periods=tuple(
                PeriodCount(p["metric"], p["period"], int(p["count"]))
                for p in data.get("periods") or ()
            ),
            events=tuple(SourceEvent.from_dict(e) for e in data.get("events") or ()),
            events_url=data.get("events_url"),
            error=None
            if not err
            else FetchError(err["kind"], err["message"], err["retryable"], err.get("http_status")),
            request_url=data.get("request_url"),
            work_meta=data.get("work_meta") or {},
            calls=tuple(CallRef.from_dict(c) for c in data.get("calls") or ()),
        )


@dataclass(frozen=True, slots=True)
class RefreshRequest:
    """Ask one source's fetcher to refresh one work (topic `alm.refresh.<source>`)."""

    work: WorkRef
    source: str
    requested_at: datetime
    reason: str = "scheduled"  # scheduled | registered | on_demand | retry
    priority: int = 0
    attempt: int = 1
    not_before: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "schema_version": SCHEMA_VERSION,
            "work_id": self.work.work_id,
            "doi": self.work.doi,
            "pmid": self.work.pmid,
            "pmcid": self.work.pmcid,
            "source": self.source,
            "requested_at": to_iso(self.requested_at),
            "reason": self.reason,
            "priority": self.priority,
            "attempt": self.attempt,
            "not_before": to_iso(self.not_before) if self.not_before else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RefreshRequest:
        """Inverse of to_dict."""
        nb = data.get("not_before")
        return cls(
            work=WorkRef(data["work_id"], data.get("doi"), data.get("pmid"), data.get("pmcid")),
            source=data["source"],
            requested_at=from_iso(data["requested_at"]),
            reason=data.get("reason", "scheduled"),
            priority=int(data.get("priority", 0)),
            attempt=int(data.get("attempt", 1)),
            not_before=from_iso(nb) if nb else None,
        )


# Namespace of the change event ids (UUID version 5, RFC 9562): fixed forever, so that every
# process, and every subscriber, derives the same id from the same change.
CHANGE_NAMESPACE = UUID("3f0c5d4e-6a1b-5c2d-9e8f-7a6b5c4d3e2f")


def change_event_id(work_id: str, source: str, at: str) -> str:
    """The id of the change of `work_id`'s totals from `source` observed at `at` (the event's
    ISO text): the UUIDv5 of `work_id|source|at`. One observation is applied to a state once,
    so a change recomputed after a crash, or delivered twice, keeps its id."""
    return str(uuid5(CHANGE_NAMESPACE, f"{work_id}|{source}|{at}"))


@dataclass(frozen=True, slots=True)
class MetricChanged:
    """A work's totals from one source changed (topic `alm.metrics.changed`).

    `publisher` is the work's publisher as registered when the change was made (None if not
    known); subscribers filter on it without a lookup.
    """

    work_id: str
    source: str
    previous: Mapping[str, int]
    current: Mapping[str, int]
    delta: Mapping[str, int]
    at: datetime
    publisher: str | None = None

    @property
    def event_id(self) -> str:
        """The change's id (see change_event_id): what subscribers deduplicate by."""
        return change_event_id(self.work_id, self.source, to_iso(self.at))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (schemas/metric_changed.schema.json)."""
        at = to_iso(self.at)
        return {
            "schema_version": SCHEMA_VERSION,
            "event_id": change_event_id(self.work_id, self.source, at),
            "work_id": self.work_id,
            "source": self.source,
            "publisher": self.publisher,
            "previous": dict(self.previous),
            "current": dict(self.current),
            "delta": dict(self.delta),
            "at": at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MetricChanged:
        """Inverse of to_dict (`event_id` is derived, never read; fields added to the schema
        later are ignored)."""
        return cls(
            data["work_id"],
            data["source"],
            data["previous"],
            data["current"],
            data["delta"],
            from_iso(data["at"]),
            data.get("publisher"),
        )


@dataclass(frozen=True, slots=True)
class FailedRefresh:
    """A refresh that failed (topics `alm.refresh.retry` and `alm.deadletter`)."""

    request: RefreshRequest
    reason: str
    failed_at: datetime

    def __post_init__(self) -> None:
        if len(self.reason) > ERROR_LIMIT:
            object.__setattr__(self, "reason", bounded(self.reason, ERROR_LIMIT))

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "schema_version": SCHEMA_VERSION,
            "work_id": self.request.work.work_id,
            "request": self.request.to_dict(),
            "reason": self.reason,
            "failed_at": to_iso(self.failed_at),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FailedRefresh:
        """Inverse of to_dict."""
        return cls(
            RefreshRequest.from_dict(data["request"]), data["reason"], from_iso(data["failed_at"])
        )
