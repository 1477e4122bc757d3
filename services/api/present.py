"""How works, sources and history look in the API's JSON (v1), built from stored state."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from services.core.aggregation import HistoryPoint, SourceState
from services.core.history import Period, rollup, year_counts
from services.core.metrics import MetricSpec, group_figures, slot_values
from services.core.timeutil import to_iso
from services.core.works import Work
from services.fetchers.registry import SOURCES


def specs_of(source: str, state: SourceState | None = None) -> tuple[MetricSpec, ...]:
    """The metric specs of `source` (empty for a source no longer installed)."""
    plugin = SOURCES.get(source)
    return plugin.metrics if plugin else ()


def present_source(state: SourceState) -> dict[str, Any]:
    """One source's totals for one work, with ALM's slots and the last attempt's status."""
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


def present_history(
    points: Sequence[HistoryPoint],
    states: Sequence[SourceState],
    period: Period,
    today: date,
) -> list[dict[str, Any]]:
    """Per source: counts per day, month or year, from daily snapshots (and upstream years)."""
    by_source: dict[str, list[HistoryPoint]] = {}
    for point in points:
        by_source.setdefault(point.source, []).append(point)
    periods = {s.source: s.periods for s in states}
    out = []
    for source in sorted(set(by_source) | {s.source for s in states if s.periods}):
        snaps = [(p.day, p.metrics) for p in sorted(by_source.get(source, []), key=lambda p: p.day)]
        upstream = periods.get(source, ())
        if period == "year" and upstream:
            rows = year_counts(upstream, first_year=today.year, last_year=today.year)
            origin = "upstream"
        else:
            rows = rollup(snaps, period)
            origin = "snapshots"
        specs = specs_of(source)
        for row in rows:
            counts = row["metrics"]
            assert isinstance(counts, dict)
            row["total"] = (
                sum(counts.get(s.name, 0) for s in specs if s.in_total)
                if specs
                else sum(counts.values())
            )
        out.append({"source": source, "period": period, "origin": origin, "buckets": rows})
    return out
