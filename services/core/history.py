"""History of one work's counts from one source, by day, month or year: one rule for every API.

Per metric, and for each period size on its own:

1. Where the upstream reports per-period counts of that size (or finer), they are used: DataCite
   and COUNTER report months, OpenAlex and the citation lists years. Years are the sum of their
   months whenever months exist. Periods the upstream leaves out between its first and last one
   count zero (OpenAlex omits years without citations); upstream years reach to the year of the
   totals.
2. Otherwise the stored daily snapshots of cumulative totals are rolled up (ALM's rule): a
   bucket counts its last cumulative value minus the last value before it, so the current
   bucket is the current total minus the sum of the earlier buckets. The current totals count
   as the last snapshot.
3. Where upstream per-period counts do not add up to the current total (OpenAlex counts_by_year
   covers recent years only; a citation list shorter than its count; undated citing works), the
   difference is one explicit bucket, `undated` ("earlier or not dated"), listed first. It is
   negative when the periods add up to more than the total. The buckets of a history always add
   up to the total.

Pure: no clock, no I/O; the date of the totals comes in as a parameter.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Literal

from services.core.events import PeriodCount

Period = Literal["day", "month", "year"]
PERIODS: tuple[Period, ...] = ("day", "month", "year")
Key = tuple[int, ...]
Basis = Literal["upstream", "snapshots"]
_WIDTH: dict[Period, int] = {"year": 1, "month": 2, "day": 3}


@dataclass(frozen=True, slots=True)
class Bucket:
    """Counts of one period (`key` is (year,), (year, month) or (year, month, day)), or of the
    `undated` remainder when `key` is None."""

    key: Key | None
    counts: dict[str, int]

    def label(self) -> dict[str, object]:
        """`{"year": 2024, "month": 3}`, or `{"undated": True}` for the remainder."""
        if self.key is None:
            return {"undated": True}
        return dict(zip(("year", "month", "day"), self.key, strict=False))


@dataclass(frozen=True, slots=True)
class History:
    """The buckets of one source's history, and where each metric's counts came from."""

    buckets: list[Bucket] = field(default_factory=list)
    basis: dict[str, Basis] = field(default_factory=dict)


def _bucket(day: date, period: Period) -> Key:
    return (day.year, day.month, day.day)[: _WIDTH[period]]


def rollup(
    snapshots: Sequence[tuple[date, Mapping[str, int]]], period: Period
) -> list[dict[str, object]]:
    """Per-bucket counts from cumulative snapshots sorted by day (each bucket: its last value
    minus the last value before it, so the buckets add up to the last total)."""
    return [
        {**Bucket(key, counts).label(), "metrics": counts}
        for key, counts in _rolled(snapshots, period).items()
    ]


def _rolled(
    snapshots: Sequence[tuple[date, Mapping[str, int]]], period: Period
) -> dict[Key, dict[str, int]]:
    last_in_bucket: dict[Key, Mapping[str, int]] = {}
    for day, metrics in snapshots:
        last_in_bucket[_bucket(day, period)] = metrics
    out: dict[Key, dict[str, int]] = {}
    before: Mapping[str, int] = {}
    for key in sorted(last_in_bucket):
        current = last_in_bucket[key]
        names = sorted(set(current) | set(before))
        out[key] = {m: current.get(m, 0) - before.get(m, 0) for m in names}
        before = current
    return out


def _parse(period: str) -> Key | None:
    """(2024,), (2024, 3) or (2024, 3, 9) from `2024`, `2024-03`, `2024-03-09`; None otherwise."""
    parts = period.split("-")
    if not 1 <= len(parts) <= 3 or not all(p.isdigit() for p in parts):
        return None
    key = tuple(int(p) for p in parts)
    if len(parts[0]) != 4 or (len(key) > 1 and not 1 <= key[1] <= 12):
        return None
    if len(key) > 2 and not 1 <= key[2] <= 31:
        return None
    return key


def _next(key: Key) -> Key:
    """The period after `key` (a year, or a month)."""
    if len(key) == 1:
        return (key[0] + 1,)
    year, month = key[0], key[1]
    return (year + 1, 1) if month == 12 else (year, month + 1)


def _filled(counts: Mapping[Key, int], last: Key | None = None) -> dict[Key, int]:
    """`counts` with the missing years or months between the first and the last (or `last`,
    when later) as zeros. Days are not filled."""
    if not counts:
        return {}
    keys = sorted(counts)
    if len(keys[0]) == 3:
        return dict(sorted(counts.items()))
    end = max(keys[-1], last) if last is not None else keys[-1]
    out: dict[Key, int] = {}
    key = keys[0]
    while key <= end:
        out[key] = counts.get(key, 0)
        key = _next(key)
    return out


def upstream_series(
    periods: Iterable[PeriodCount], metric: str, period: Period, as_of: date
) -> dict[Key, int] | None:
    """The upstream's counts of `metric` for buckets of `period`, or None if it reports none at
    that size or finer (years are summed from months or days where those exist)."""
    by_width: dict[int, dict[Key, int]] = {1: {}, 2: {}, 3: {}}
    for p in periods:
        key = _parse(p.period) if p.metric == metric else None
        if key is not None:
            by_width[len(key)][key] = by_width[len(key)].get(key, 0) + p.count
    width = _WIDTH[period]
    finest = next((w for w in (3, 2, 1) if by_width[w] and w >= width), None)
    if finest is None:
        return None
    counts: dict[Key, int] = {}
    for key, n in by_width[finest].items():
        counts[key[:width]] = counts.get(key[:width], 0) + n
    if finest == width == 1:
        return _filled(counts, (as_of.year,))
    return _filled(counts)


def _with_current(
    snapshots: Sequence[tuple[date, Mapping[str, int]]], totals: Mapping[str, int], as_of: date
) -> list[tuple[date, Mapping[str, int]]]:
    """The snapshots, and the current totals as the last one when they differ from it."""
    snaps = sorted(snapshots, key=lambda s: s[0])
    if not totals:
        return snaps
    last = snaps[-1][1] if snaps else {}
    if any(last.get(m) != v for m, v in totals.items()):
        day = max(as_of, snaps[-1][0]) if snaps else as_of
        snaps.append((day, {**last, **totals}))
    return snaps


def history(
    period: Period,
    snapshots: Sequence[tuple[date, Mapping[str, int]]],
    upstream: Sequence[PeriodCount],
    totals: Mapping[str, int],
    as_of: date,
) -> History:
    """One source's buckets of `period` for one work (the rule in this module's docstring).

    `snapshots` are (day, cumulative totals) as stored, `upstream` the per-period counts of the
    last observation, `totals` the current totals (a metric absent from them is not reported)
    and `as_of` the day they were observed.
    """
    snaps = _with_current(snapshots, totals, as_of)
    rolled = _rolled(snaps, period)
    seen = {m for counts in rolled.values() for m in counts}
    metrics = sorted(set(totals) | seen | {p.metric for p in upstream})
    series: dict[str, dict[Key, int]] = {}
    basis: dict[str, Basis] = {}
    undated: dict[str, int] = {}
    for metric in metrics:
        from_upstream = upstream_series(upstream, metric, period, as_of) if upstream else None
        if from_upstream is None:
            basis[metric] = "snapshots"
            series[metric] = {k: c[metric] for k, c in rolled.items() if metric in c}
            continue
        basis[metric] = "upstream"
        series[metric] = from_upstream
        if metric in totals and totals[metric] != sum(from_upstream.values()):
            undated[metric] = totals[metric] - sum(from_upstream.values())
    keys = sorted({k for s in series.values() for k in s})
    buckets = [Bucket(k, {m: series[m].get(k, 0) for m in metrics}) for k in keys]
    if undated:
        buckets.insert(0, Bucket(None, {m: undated.get(m, 0) for m in metrics}))
    return History(buckets, basis)
