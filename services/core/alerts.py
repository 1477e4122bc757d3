"""Data-quality alerts, as ALM raised them from its daily checks, and the checks on one
observation. Pure: no store, no clock (time comes in with the states).

Kinds and where each is raised:
- on one observation (the aggregator, `checks(previous, new, specs)`): `total_decreased`
  (the source's total went down), `spike` (more than `spike_per_day` new events a day since the
  previous observation), `html_pdf_ratio` (a usage source's html/pdf above `html_pdf_ratio`,
  raised when it becomes so), `milestone` (a source's cited or saved figure reaching
  `milestone`; info);
- by the periodic checks (services/core/activity.py, run by services/checks/): `not_updated`
  (a work's numbers from a source older than `stale_days`), `source_silent`, `slow_upstream`,
  `failed_refreshes`.

An alert is identified by (day, kind, source, work): the first of a day is kept and later ones
that day are the same alert (ALM de-duplicated alerts by message).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from services.core.aggregation import SourceState
from services.core.metrics import Group, MetricSpec, Slot, slot_values, source_total
from services.core.timeutil import from_iso, to_iso


class AlertKind(StrEnum):
    """What a data-quality check found."""

    TOTAL_DECREASED = "total_decreased"
    SPIKE = "spike"
    HTML_PDF_RATIO = "html_pdf_ratio"
    MILESTONE = "milestone"
    NOT_UPDATED = "not_updated"
    SOURCE_SILENT = "source_silent"
    SLOW_UPSTREAM = "slow_upstream"
    FAILED_REFRESHES = "failed_refreshes"


class Severity(StrEnum):
    """How urgent an alert is."""

    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


SEVERITY = {
    AlertKind.TOTAL_DECREASED: Severity.WARNING,
    AlertKind.SPIKE: Severity.WARNING,
    AlertKind.HTML_PDF_RATIO: Severity.WARNING,
    AlertKind.MILESTONE: Severity.INFO,
    AlertKind.NOT_UPDATED: Severity.WARNING,
    AlertKind.SOURCE_SILENT: Severity.ERROR,
    AlertKind.SLOW_UPSTREAM: Severity.WARNING,
    AlertKind.FAILED_REFRESHES: Severity.ERROR,
}


@dataclass(frozen=True, slots=True)
class Thresholds:
    """The checks' limits (ALM's defaults; ALM_CHECK_* variables, services/settings.py)."""

    spike_per_day: int = 500
    html_pdf_ratio: float = 50.0
    milestone: int = 50
    stale_days: int = 40
    silent_hours: int = 24
    slow_p95_seconds: float = 30.0
    failure_share: float = 0.2
    min_refreshes: int = 20  # refreshes in the window before their failure share counts
    min_calls: int = 10  # calls in the window before their latency counts


DEFAULT_LIMITS = Thresholds()


@dataclass(frozen=True, slots=True)
class Alert:
    """One data-quality finding; `source` and `work_id` are None where it concerns none."""

    kind: AlertKind
    at: datetime
    message: str
    source: str | None = None
    work_id: str | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def severity(self) -> Severity:
        """The kind's severity."""
        return SEVERITY[self.kind]

    @property
    def day(self) -> date:
        """The UTC day it belongs to (part of its identity)."""
        return self.at.date()

    @property
    def key(self) -> tuple[date, str, str, str]:
        """(day, kind, source, work): one alert per key."""
        return (self.day, self.kind.value, self.source or "", self.work_id or "")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the API's alert items)."""
        return {
            "kind": self.kind.value,
            "severity": self.severity.value,
            "day": self.day.isoformat(),
            "at": to_iso(self.at),
            "source": self.source,
            "work_id": self.work_id,
            "message": self.message,
            "details": dict(self.details),
        }

    @classmethod
    def from_row(
        cls, kind: str, at: datetime, message: str, source: str, work_id: str, details: str
    ) -> Alert:
        """An alert from a stored row ('' for no source or work, details as JSON)."""
        return cls(
            AlertKind(kind), at, message, source or None, work_id or None, json.loads(details)
        )


def details_json(alert: Alert) -> str:
    """The details as stored."""
    return json.dumps(dict(alert.details), sort_keys=True)


@dataclass(frozen=True, slots=True)
class AlertQuery:
    """A page of alerts, newest day first, then by kind, source and work; `after` is the key
    of the last alert of the previous page."""

    since: datetime
    kind: AlertKind | None = None
    source: str | None = None
    limit: int = 100
    after: tuple[date, str, str, str] | None = None

    def admits(self, alert: Alert) -> bool:
        """Whether `alert` matches the filters (not the paging)."""
        return (
            alert.at >= self.since
            and self.kind in (None, alert.kind)
            and self.source in (None, alert.source)
        )


def key_after(key: tuple[date, str, str, str], after: tuple[date, str, str, str] | None) -> bool:
    """Whether `key` comes after `after` in the listing order (newest day first)."""
    if after is None:
        return True
    if key[0] != after[0]:
        return key[0] < after[0]
    return key[1:] > after[1:]


class AlertStore(Protocol):
    """Stored alerts, one per (day, kind, source, work), kept `ALM_ALERTS_TTL_DAYS`."""

    async def add_alerts(self, alerts: Sequence[Alert]) -> list[Alert]:
        """Store the alerts not yet stored that day (the first of a key is kept); returns
        the ones that were new."""
        ...

    async def alerts(self, query: AlertQuery) -> list[Alert]:
        """Up to `query.limit` alerts matching it, in listing order, after `query.after`."""
        ...


def _total(specs: Sequence[MetricSpec], metrics: Mapping[str, int]) -> int | None:
    """The source's ALM total (every metric counts when the source's specs are unknown)."""
    if not specs:
        return sum(metrics.values()) if metrics else None
    return source_total(specs, metrics)


def _ratio(specs: Sequence[MetricSpec], metrics: Mapping[str, int]) -> float | None:
    """html/pdf of a usage source (None without both slots or with no pdf)."""
    if not any(s.slot in (Slot.HTML, Slot.PDF) for s in specs):
        return None
    slots = slot_values(specs, metrics)
    html, pdf = slots["html"], slots["pdf"]
    return html / pdf if html is not None and pdf else None


def _figure(specs: Sequence[MetricSpec], metrics: Mapping[str, int], group: Group) -> int:
    return sum(metrics.get(s.name, 0) for s in specs if s.in_total and s.group is group)


def checks(
    previous: SourceState | None,
    new: SourceState,
    specs: Sequence[MetricSpec],
    limits: Thresholds = DEFAULT_LIMITS,
) -> list[Alert]:
    """The alerts one successful observation raises, given the state it replaced (None or
    never successful: a first observation, which raises only the html/pdf ratio)."""
    if new.retrieved_at is None or new.status is None or new.status.value == "error":
        return []
    before = previous if previous is not None and previous.retrieved_at is not None else None
    out = _ratio_alert(before, new, specs, limits)
    if before is not None:
        out += _total_alerts(before, new, specs, limits)
        out += _milestones(before, new, specs, limits)
    return out


def _alert(new: SourceState, kind: AlertKind, message: str, details: dict[str, Any]) -> Alert:
    assert new.retrieved_at is not None
    return Alert(kind, new.retrieved_at, message, new.source, new.work_id, details)


def _total_alerts(
    before: SourceState, new: SourceState, specs: Sequence[MetricSpec], limits: Thresholds
) -> list[Alert]:
    """The source's total went down, or grew faster than `spike_per_day`."""
    old_total, new_total = _total(specs, before.metrics), _total(specs, new.metrics)
    if old_total is None or new_total is None or before.retrieved_at is None:
        return []
    assert new.retrieved_at is not None
    out = []
    if new_total < old_total:
        fell = {
            m: [v, new.metrics.get(m, 0)]
            for m, v in sorted(before.metrics.items())
            if new.metrics.get(m, 0) < v
        }
        details = {"previous": old_total, "current": new_total, "metrics": fell}
        message = f"total decreased from {old_total} to {new_total}"
        out.append(_alert(new, AlertKind.TOTAL_DECREASED, message, details))
    days = max((new.retrieved_at - before.retrieved_at) / timedelta(days=1), 1.0)
    per_day = (new_total - old_total) / days
    if per_day > limits.spike_per_day:
        message = f"{new_total - old_total} new events in {days:g} days ({per_day:.0f}/day)"
        details = {"previous": old_total, "current": new_total, "days": round(days, 3)}
        out.append(_alert(new, AlertKind.SPIKE, message, details))
    return out


def _milestones(
    before: SourceState, new: SourceState, specs: Sequence[MetricSpec], limits: Thresholds
) -> list[Alert]:
    """The source's cited or saved figure reaching the milestone."""
    out = []
    for group in (Group.CITED, Group.SAVED):
        was, now = _figure(specs, before.metrics, group), _figure(specs, new.metrics, group)
        if was < limits.milestone <= now:
            message = f"{group.value} reached {now} (milestone {limits.milestone})"
            details = {"group": group.value, "previous": was, "current": now}
            out.append(_alert(new, AlertKind.MILESTONE, message, details))
    return out


def _ratio_alert(
    before: SourceState | None, new: SourceState, specs: Sequence[MetricSpec], limits: Thresholds
) -> list[Alert]:
    """html/pdf above the limit, raised when it becomes so (or on a first observation)."""
    ratio = _ratio(specs, new.metrics)
    if ratio is None or ratio <= limits.html_pdf_ratio or new.retrieved_at is None:
        return []
    was = _ratio(specs, before.metrics) if before is not None else None
    if was is not None and was > limits.html_pdf_ratio:
        return []
    message = f"html/pdf ratio {ratio:.1f} above {limits.html_pdf_ratio:g}"
    return [_alert(new, AlertKind.HTML_PDF_RATIO, message, {"ratio": round(ratio, 3)})]


def parse_since(text: str) -> datetime:
    """`since` as a date (`YYYY-MM-DD`, from its start) or an ISO timestamp, in UTC (a time
    before or after what UTC can represent stands for the earliest or the latest); ValueError
    if it is neither."""
    moment = from_iso(text if "T" in text else text + "T00:00:00Z")
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        return (datetime.min if moment.year == 1 else datetime.max).replace(tzinfo=UTC)
