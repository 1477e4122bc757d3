"""The one presenter of stored state: what every API version (v1 here, v5 and v3 in their own
modules) shows of a work the same way: which sources reported, when it was last updated, its
group figures, display names, ALM totals and history buckets; and how works, sources and
history look in the API's own JSON (v1)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from urllib.parse import quote

from services.core.aggregation import HistoryPoint, SourceState
from services.core.catalog import Catalog
from services.core.history import History, Period, history
from services.core.metrics import MetricSpec, group_figures, slot_values
from services.core.timeutil import to_iso
from services.core.works import Work


@dataclass(frozen=True, slots=True)
class Counted:
    """One history bucket of one source: its period (`{"year": .., "month": ..}`, or
    `{"undated": True}` for the remainder), its counts per metric and ALM's `total`."""

    period: Mapping[str, object]
    counts: Mapping[str, int]
    total: int
    dated: bool = True


def reported(states: Iterable[SourceState]) -> list[SourceState]:
    """The states a successful fetch wrote (a source only ever failing has reported nothing)."""
    return [s for s in states if s.retrieved_at is not None]


def updated(states: Iterable[SourceState]) -> datetime | None:
    """The latest retrieval over a work's sources (None: nothing reported yet)."""
    return max((s.retrieved_at for s in states if s.retrieved_at), default=None)


def figures(catalog: Catalog, states: Iterable[SourceState]) -> dict[str, int]:
    """The work's group figures (`viewed`, `saved`, `discussed`, `cited`, `recommended`)."""
    return group_figures((catalog.specs(s.source), s.metrics) for s in reported(states))


def counting_total(specs: Sequence[MetricSpec], counts: Mapping[str, int]) -> int:
    """ALM's `total` of a bucket: the sum of the source's counting metrics (of every count
    for a source no longer installed)."""
    if not specs:
        return sum(counts.values())
    return sum(counts.get(s.name, 0) for s in specs if s.in_total)


def provenance_link(work_id: str, source: str) -> str:
    """Where the upstream calls behind a work's numbers from `source` are listed."""
    return f"/api/v1/works/{quote(work_id, safe='/:')}/provenance?source={quote(source)}"


def present_source(catalog: Catalog, state: SourceState) -> dict[str, Any]:
    """One source's totals for one work, with ALM's slots, the last attempt's status and the
    link to the upstream calls they come from."""
    group = catalog.group(state.source)
    return {
        "name": state.source,
        "display_name": catalog.display_name(state.source),
        "group": group.value if group else None,
        "metrics": dict(state.metrics),
        "alm": slot_values(catalog.specs(state.source), state.metrics)
        if state.retrieved_at
        else None,
        "status": state.status.value if state.status else None,
        "error": state.error,
        "retrieved_at": to_iso(state.retrieved_at) if state.retrieved_at else None,
        "last_attempt_at": to_iso(state.last_attempt_at) if state.last_attempt_at else None,
        "events_url": state.events_url,
        "provenance": provenance_link(state.work_id, state.source),
    }


def present_work(catalog: Catalog, work: Work, states: Sequence[SourceState]) -> dict[str, Any]:
    """A work with its totals per source and per group."""
    latest = updated(states)
    return {
        **work.to_dict(),
        "groups": figures(catalog, states),
        "sources": [present_source(catalog, s) for s in states],
        "updated_at": to_iso(latest) if latest else None,
    }


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
    fetched = state is not None and state.retrieved_at is not None
    totals = dict(state.metrics) if state is not None and fetched else {}
    as_of = state.retrieved_at.date() if state is not None and state.retrieved_at else today
    return history(period, snaps, state.periods if state else (), totals, as_of)


def counted(catalog: Catalog, source: str, hist: History) -> list[Counted]:
    """The buckets of one source's history with their ALM totals."""
    specs = catalog.specs(source)
    return [
        Counted(b.label(), dict(b.counts), counting_total(specs, b.counts), b.key is not None)
        for b in hist.buckets
    ]


def origin_of(hist: History) -> str:
    """`upstream` or `snapshots` when every metric's counts come from one, else `mixed`."""
    kinds = set(hist.basis.values())
    return kinds.pop() if len(kinds) == 1 else ("mixed" if kinds else "snapshots")


def present_history(
    catalog: Catalog,
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
    shown = {s.source for s in states if s.retrieved_at is not None or s.periods}
    out = []
    for source in sorted(set(by_source) | shown):
        state = state_of.get(source)
        hist = source_history(state, source, by_source.get(source, []), period, today)
        total = (
            counting_total(catalog.specs(source), state.metrics)
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
                "buckets": [
                    {**b.period, "metrics": dict(b.counts), "total": b.total}
                    for b in counted(catalog, source, hist)
                ],
            }
        )
    return out
