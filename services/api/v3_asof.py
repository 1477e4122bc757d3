"""API v3's `days`, `months` and `year` (ALM 2.x, sent by rOpenSci alm 0.1): a work's counts
as they stood on a cutoff day, from its stored daily snapshots. Pure: no aiohttp, no clock.

- `days=N`: N days after the work's publication date; `months=N`: N calendar months after it
  (the day clamped to the month's end); `year=YYYY`: December 31 of that year. Several given:
  the earliest cutoff wins. `days`/`months` need the publication date: without one they are
  ignored for that work.
- Bad values (not a positive integer; a year outside 1900-2100) are ignored, as v3 ignores a
  bad `info` or `type` (ALM's leniency for old clients).
- A cutoff today or later (or none) means the current figures.
- As of a cutoff, a source's totals are those of its last snapshot on or before it, all 0 when
  there is none (nothing had been counted yet); its history keeps the snapshots up to the
  cutoff and the upstream per-period counts of periods begun by then (the upstream does not
  say on which day within a period its counts fell).
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta

from services.core.aggregation import HistoryPoint, SourceState
from services.core.events import PeriodCount

YEARS = (1900, 2100)
_POSITIVE = re.compile(r"[1-9][0-9]{0,5}")  # at most 999999 days or months


@dataclass(frozen=True, slots=True)
class AsOf:
    """The point in time a v3 request asks for (None: not asked, or ignored)."""

    days: int | None = None
    months: int | None = None
    year: int | None = None

    def cutoff(self, issued: date | None, today: date) -> date | None:
        """The earliest cutoff asked for this work, None when the current figures are."""
        days: list[date] = []
        if self.year is not None:
            days.append(date(self.year, 12, 31))
        if issued is not None and self.days is not None:
            days.append(_plus_days(issued, self.days))
        if issued is not None and self.months is not None:
            days.append(_plus_months(issued, self.months))
        first = min(days, default=None)
        return first if first is not None and first < today else None


def parse_as_of(days: str | None, months: str | None, year: str | None) -> AsOf:
    """The query's `days`, `months` and `year`; a bad value is ignored (None)."""
    parsed_year = _positive(year)
    if parsed_year is not None and not YEARS[0] <= parsed_year <= YEARS[1]:
        parsed_year = None
    return AsOf(_positive(days), _positive(months), parsed_year)


def _positive(raw: str | None) -> int | None:
    raw = raw.strip() if raw is not None else None
    return int(raw) if raw and _POSITIVE.fullmatch(raw) else None


def _plus_days(issued: date, days: int) -> date:
    return issued + timedelta(days=min(days, (date.max - issued).days))


def _plus_months(issued: date, months: int) -> date:
    index = issued.year * 12 + issued.month - 1 + months
    year, month = divmod(index, 12)
    if year > date.max.year:
        return date.max
    return date(year, month + 1, min(issued.day, calendar.monthrange(year, month + 1)[1]))


def state_as_of(
    state: SourceState, points: Sequence[HistoryPoint], cutoff: date
) -> tuple[SourceState, list[HistoryPoint]]:
    """One source's state and snapshots as they stood at the end of `cutoff`: the totals of
    the last snapshot on or before it, 0 for every metric and no upstream periods when there is
    none (its `retrieved_at` is at most the cutoff's end, so charts stop there)."""
    kept = sorted((p for p in points if p.day <= cutoff), key=lambda p: p.day)
    metrics = dict(kept[-1].metrics) if kept else dict.fromkeys(state.metrics, 0)
    end = datetime.combine(cutoff, time.max, tzinfo=UTC)
    retrieved = min(state.retrieved_at, end) if state.retrieved_at is not None else None
    periods = tuple(p for p in state.periods if _begun(p, cutoff)) if kept else ()
    return replace(state, metrics=metrics, retrieved_at=retrieved, periods=periods), kept


def _begun(count: PeriodCount, cutoff: date) -> bool:
    """Whether an upstream period (`YYYY`, `YYYY-MM`, `YYYY-MM-DD`) began on or before cutoff."""
    parts = [int(p) for p in count.period.split("-")]
    start = date(parts[0], parts[1] if len(parts) > 1 else 1, parts[2] if len(parts) > 2 else 1)
    return start <= cutoff
