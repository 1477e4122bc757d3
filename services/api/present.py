"""How works, sources and history look in the API's JSON (v1), built from stored state."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any
from urllib.parse import quote

from services.core.aggregation import HistoryPoint, SourceState
from services.core.history import Bucket, History, Period, history
from services.core.metrics import MetricSpec, group_figures, slot_values
from services.core.timeutil import to_iso
from services.core.works import Work
from services.fetchers.registry import SOURCES


def specs_of(source: str, state: SourceState | None = None) -> tuple[MetricSpec, ...]:
    """The metric specs of `source` (empty for a source no longer installed)."""
    plugin = SOURCES.get(source)
    return plugin.metrics if plugin else ()


def provenance_link(work_id: str, source: str) -> str:
    """Where the upstream calls behind a work's numbers from `source` are listed."""
    return f"/api/v1/works/{quote(work_id, safe='/:')}/provenance?source={quote(source)}"


def present_source(state: SourceState) -> dict[str, Any]:
    """One source's totals for one work, with ALM's slots, the last attempt's status and the
    link to the upstream calls they come from."""
    plugin = SOURCES.get(state.source)
    specs = specs_of(state.source)
    return {
        "name": state.source,
        "display_name": plugin.display_name if plugin else state.source,
        "group": plugin.group.value if plugin else None,
        "metrics": dict(state.metrics),
        "alm": slot_values(specs, state.metrics) if state.retrieved_at else None,
        "status": state.status.value if state.status else None,
        "error": state.error,
        "retrieved_at": to_iso(state.retrieved_at) if state.retrieved_at else None,
        "last_attempt_at": to_iso(state.last_attempt_at) if state.last_attempt_at else None,
        "events_url": state.events_url,
        "provenance": provenance_link(state.work_id, state.source),
    }


def present_work(work: Work, states: Sequence[SourceState]) -> dict[str, Any]:
    """A work with its totals per source and per group."""
    reported = [s for s in states if s.retrieved_at is not None]
    updated = max((s.retrieved_at for s in reported if s.retrieved_at), default=None)
    return {
        **work.to_dict(),
        "groups": group_figures((specs_of(s.source), s.metrics) for s in reported),
        "sources": [present_source(s) for s in states],
        "updated_at": to_iso(updated) if updated else None,
    }


def counting_total(source: str, counts: Mapping[str, int]) -> int:
    """ALM's `total` of a bucket: the sum of the source's counting metrics."""
    specs = specs_of(source)
    if not specs:
        return sum(counts.values())
    return sum(counts.get(s.name, 0) for s in specs if s.in_total)


def source_history(
    state: SourceState | None,
    source: str,
    points: Sequence[HistoryPoint],
    period: Period,
    today: date,
) -> History:
    """One source's history of one work under the history rule (services/core/history.py):
    upstream per-period counts where it reports them, stored snapshots otherwise."""
    snaps = [(p.day, p.metrics) for p in sorted(points, key=lambda p: p.day)]
    reported = state is not None and state.retrieved_at is not None
    totals = dict(state.metrics) if state is not None and reported else {}
    as_of = state.retrieved_at.date() if state is not None and state.retrieved_at else today
    return history(period, snaps, state.periods if state else (), totals, as_of)


def origin_of(hist: History) -> str:
    """`upstream` or `snapshots` when every metric's counts come from one, else `mixed`."""
    kinds = set(hist.basis.values())
    return kinds.pop() if len(kinds) == 1 else ("mixed" if kinds else "snapshots")


def bucket_row(source: str, bucket: Bucket) -> dict[str, Any]:
    """A v1 history bucket: its period (or `undated`), counts per metric and ALM total."""
    counts = dict(bucket.counts)
    return {**bucket.label(), "metrics": counts, "total": counting_total(source, counts)}


def present_history(
    points: Sequence[HistoryPoint],
    states: Sequence[SourceState],
    period: Period,
    today: date,
) -> list[dict[str, Any]]:
    """Per source: counts per day, month or year. The buckets add up to the source's total
    (an `undated` bucket holds what upstream per-period counts leave undated)."""
    by_source: dict[str, list[HistoryPoint]] = {}
    for point in points:
        by_source.setdefault(point.source, []).append(point)
    state_of = {s.source: s for s in states}
    reported = {s.source for s in states if s.retrieved_at is not None or s.periods}
    out = []
    for source in sorted(set(by_source) | reported):
        state = state_of.get(source)
        hist = source_history(state, source, by_source.get(source, []), period, today)
        total = (
            counting_total(source, state.metrics)
            if state is not None and state.retrieved_at is not None
            else None
        )
        out.append(
            {
                "source": source,
                "period": period,
                "origin": origin_of(hist),
                "basis": dict(hist.basis),
                "total": total,
                "buckets": [bucket_row(source, b) for b in hist.buckets],
            }
        )
    return out
