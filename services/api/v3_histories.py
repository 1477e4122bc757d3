"""API v3's `histories` (ALM 2.x, `info=history` and `info=detail`): per source, a list of
`{"update_date", "total"}`, newest first, one per retrieval ALM made of the source for the
work, which rOpenSci alm 0.1 reads by position (`x[[1]]` the date, `x[[2]]` the total) and
2013's pyalm by name. Pure: no aiohttp, no clock.

ALM 2.x kept a row per retrieval (`retrieval_histories`, newest first, `update_date` its
time, `total` its `event_count`). This store keeps the time of the last retrieval and one
snapshot per day on which the source's totals changed, so the list is:

1. the last retrieval: the source's `update_date` and its current `total` (ALM's first entry
   is the source's own `update_date` and total too);
2. then every stored snapshot of an earlier day, newest first, at the end of its day
   (`YYYY-MM-DDT23:59:59Z`: the totals as they stood then; the store keeps the day, not the
   time), with its total.

Days on which a retrieval changed nothing are not listed (ALM listed a row for each); the
totals over time are the same. `total` is ALM's total of the source (the sum of its counting
metrics), 0 where none was reported, as ALM's `event_count` was never null. A source never
fetched has `[]`. With a cutoff (`days`/`months`/`year`, v3_asof.py), what came after the
cutoff's day is left out: the last retrieval too when it came later.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from services.core.aggregation import HistoryPoint, SourceState
from services.core.metrics import MetricSpec, source_total
from services.core.timeutil import to_alm_time


def histories(
    specs: Iterable[MetricSpec],
    state: SourceState | None,
    points: Sequence[HistoryPoint],
    cutoff: date | None = None,
) -> list[dict[str, Any]]:
    """One source's `histories` for one work (the rule in this module's docstring): `state`
    as stored (not cut to the cutoff), `points` its daily snapshots."""
    if state is None or state.retrieved_at is None:
        return []
    spec_list = list(specs)
    out: list[dict[str, Any]] = []
    before = state.retrieved_at.date()  # snapshots of earlier days only
    if cutoff is None or before <= cutoff:
        out.append(_entry(spec_list, state.retrieved_at, state.metrics))
    else:  # the last retrieval came after the cutoff
        before = cutoff + timedelta(days=1)
    out.extend(
        _entry(spec_list, _end_of(p.day), p.metrics)
        for p in sorted(points, key=lambda p: p.day, reverse=True)
        if p.day < before
    )
    return out


def _entry(specs: list[MetricSpec], at: datetime, metrics: dict[str, int]) -> dict[str, Any]:
    return {"update_date": to_alm_time(at), "total": source_total(specs, metrics) or 0}


def _end_of(day: date) -> datetime:
    return datetime.combine(day, time(23, 59, 59), tzinfo=UTC)
