"""Roll daily snapshots (cumulative totals) up into per-day, per-month and per-year counts."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date
from typing import Literal

from services.core.events import PeriodCount

Period = Literal["day", "month", "year"]
PERIODS: tuple[Period, ...] = ("day", "month", "year")


def _bucket(day: date, period: Period) -> tuple[int, ...]:
    if period == "year":
        return (day.year,)
    if period == "month":
        return (day.year, day.month)
    return (day.year, day.month, day.day)


def _label(bucket: tuple[int, ...]) -> dict[str, int]:
    return dict(zip(("year", "month", "day"), bucket, strict=False))


def rollup(
    snapshots: Sequence[tuple[date, Mapping[str, int]]], period: Period
) -> list[dict[str, object]]:
    """Per-bucket counts from cumulative snapshots sorted by day.

    A bucket's count is its last cumulative value minus the last value before the bucket, so
    a source that only reports a total still gets history (ALM's rule).
    """
    last_in_bucket: dict[tuple[int, ...], Mapping[str, int]] = {}
    for day, metrics in snapshots:
        last_in_bucket[_bucket(day, period)] = metrics
    rows: list[dict[str, object]] = []
    before: Mapping[str, int] = {}
    for bucket in sorted(last_in_bucket):
        current = last_in_bucket[bucket]
        counts = {
            m: current.get(m, 0) - before.get(m, 0) for m in sorted(set(current) | set(before))
        }
        rows.append({**_label(bucket), "metrics": counts})
        before = current
    return rows


def year_counts(
    periods: Iterable[PeriodCount], first_year: int, last_year: int
) -> list[dict[str, object]]:
    """Upstream per-year counts, zero-filled from `first_year` to `last_year` inclusive.

    Upstreams such as OpenAlex omit years with no counts; a missing year is a zero, not a gap.
    """
    by_year: dict[int, dict[str, int]] = {}
    metrics: set[str] = set()
    for p in periods:
        if len(p.period) == 4 and p.period.isdigit():
            by_year.setdefault(int(p.period), {})[p.metric] = p.count
            metrics.add(p.metric)
    if not by_year:
        return []
    start = min(first_year, min(by_year))
    end = max(last_year, max(by_year))
    return [
        {"year": y, "metrics": {m: by_year.get(y, {}).get(m, 0) for m in sorted(metrics)}}
        for y in range(start, end + 1)
    ]
