"""What each source's fetchers did, per hour, and the periodic data-quality checks read from it.
Pure: time comes in as a parameter.

A fetcher process counts, for the hour under way, its upstream calls (with their latencies in
fixed buckets, as a Prometheus histogram does), the calls that got no answer, the refreshes it
made and how many failed, and when one last succeeded: a `FetchWindow` per (source, hour,
instance), stored with absolute values after each step (an upsert, never a counter), so the
periodic checks in any process add up every instance's windows: slow upstream (p95 over a
threshold), share of failed refreshes, source silent. `stale_alerts` turns the states a store
scan found older than `stale_days` into `not_updated` alerts.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

from services.core.alerts import DEFAULT_LIMITS, Alert, AlertKind, AlertStore, Thresholds

# Upper bounds (seconds) of the latency buckets; one more bucket counts what is above the last
# (calls that timed out count there: the HTTP timeout is 30 s).
LATENCY_BOUNDS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0)
WINDOW = timedelta(hours=1)


def _zeros() -> tuple[int, ...]:
    return (0,) * (len(LATENCY_BOUNDS) + 1)


def hour_of(moment: datetime) -> datetime:
    """The start of the UTC hour `moment` is in."""
    return moment.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


@dataclass(frozen=True, slots=True)
class FetchWindow:
    """One fetcher instance's activity for one source during one hour (absolute counts)."""

    source: str
    hour: datetime
    instance: str
    calls: int = 0
    unanswered: int = 0
    latency: tuple[int, ...] = field(default_factory=_zeros)  # calls per bucket
    refreshes: int = 0
    failed: int = 0
    last_ok: datetime | None = None

    def with_calls(self, latencies: Iterable[float], calls: int, unanswered: int) -> FetchWindow:
        """This window with more calls and their latencies (inf: no answer in time)."""
        counts = list(self.latency)
        for seconds in latencies:
            counts[bucket_of(seconds)] += 1
        return replace(
            self,
            calls=self.calls + calls,
            unanswered=self.unanswered + unanswered,
            latency=tuple(counts),
        )

    def with_refreshes(self, ok: int, failed: int, at: datetime | None) -> FetchWindow:
        """This window with more refreshes (`at`: when the last successful one was made)."""
        last = self.last_ok if at is None or (self.last_ok and self.last_ok > at) else at
        return replace(
            self, refreshes=self.refreshes + ok + failed, failed=self.failed + failed, last_ok=last
        )


def bucket_of(seconds: float) -> int:
    """The latency bucket of a call that took `seconds`."""
    for index, bound in enumerate(LATENCY_BOUNDS):
        if seconds <= bound:
            return index
    return len(LATENCY_BOUNDS)


def quantile(counts: Sequence[int], q: float) -> float | None:
    """The `q` quantile of bucketed latencies, interpolated within its bucket as Prometheus's
    histogram_quantile does; inf when it falls above the last bound; None without calls."""
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    lower = 0.0
    for index, count in enumerate(counts):
        if index == len(LATENCY_BOUNDS):
            return math.inf
        upper = LATENCY_BOUNDS[index]
        if count and seen + count >= rank:
            return lower + (upper - lower) * (rank - seen) / count
        seen += count
        lower = upper
    return math.inf


class ActivityStore(Protocol):
    """The fetchers' hourly windows, kept a week."""

    async def record_activity(self, windows: Sequence[FetchWindow]) -> None:
        """Store each window (replacing what its instance stored for that hour before)."""
        ...

    async def activity(self, since: datetime) -> list[FetchWindow]:
        """Every window of an hour starting at or after `since`'s hour."""
        ...


@dataclass(frozen=True, slots=True)
class SourceActivity:
    """One source's windows over a lookback, added up."""

    calls: int = 0
    latency: tuple[int, ...] = field(default_factory=_zeros)
    refreshes: int = 0
    failed: int = 0
    last_ok: datetime | None = None


def add_up(windows: Iterable[FetchWindow]) -> dict[str, SourceActivity]:
    """Per source, its windows' counts summed (every instance, every hour given)."""
    out: dict[str, SourceActivity] = {}
    for w in windows:
        a = out.get(w.source, SourceActivity())
        last = max((t for t in (a.last_ok, w.last_ok) if t is not None), default=None)
        out[w.source] = SourceActivity(
            a.calls + w.calls,
            tuple(x + y for x, y in zip(a.latency, w.latency, strict=True)),
            a.refreshes + w.refreshes,
            a.failed + w.failed,
            last,
        )
    return out


def source_checks(
    windows: Sequence[FetchWindow],
    now: datetime,
    sources: Sequence[str],
    paused: Iterable[str] = (),
    limits: Thresholds = DEFAULT_LIMITS,
) -> list[Alert]:
    """The periodic checks of each running source over the last `silent_hours`: slow
    upstream, share of failed refreshes, silence (no successful refresh while ALM ran, which
    a window older than the lookback shows)."""
    since = now - timedelta(hours=limits.silent_hours)
    recent = add_up(w for w in windows if w.hour + WINDOW > since)
    running = bool(windows) and min(w.hour for w in windows) <= since
    out: list[Alert] = []
    skip = set(paused)
    for source in sources:
        if source in skip:
            continue
        seen = recent.get(source, SourceActivity())
        out += _slow(source, seen, now, limits)
        out += _failing(source, seen, now, limits)
        if running and seen.refreshes - seen.failed <= 0:
            last = max(
                (w.last_ok for w in windows if w.source == source and w.last_ok), default=None
            )
            when = f"since {last.isoformat()}" if last else "in the windows kept"
            message = f"no successful refresh in {limits.silent_hours} h ({when})"
            details = {"refreshes": seen.refreshes, "last_ok": last.isoformat() if last else None}
            out.append(Alert(AlertKind.SOURCE_SILENT, now, message, source, None, details))
    return out


def _slow(source: str, seen: SourceActivity, now: datetime, limits: Thresholds) -> list[Alert]:
    p95 = quantile(seen.latency, 0.95)
    if p95 is None or seen.calls < limits.min_calls or p95 <= limits.slow_p95_seconds:
        return []
    shown = "over 30 s (timeouts)" if math.isinf(p95) else f"{p95:.1f} s"
    message = f"p95 upstream latency {shown} over {limits.silent_hours} h"
    details = {"p95_seconds": None if math.isinf(p95) else round(p95, 3), "calls": seen.calls}
    return [Alert(AlertKind.SLOW_UPSTREAM, now, message, source, None, details)]


def _failing(source: str, seen: SourceActivity, now: datetime, limits: Thresholds) -> list[Alert]:
    if seen.refreshes < limits.min_refreshes:
        return []
    share = seen.failed / seen.refreshes
    if share <= limits.failure_share:
        return []
    message = f"{seen.failed} of {seen.refreshes} refreshes failed ({share:.0%})"
    details = {"failed": seen.failed, "refreshes": seen.refreshes, "share": round(share, 4)}
    return [Alert(AlertKind.FAILED_REFRESHES, now, message, source, None, details)]


@dataclass(frozen=True, slots=True)
class StaleState:
    """A (work, source) whose numbers were last refreshed at `retrieved_at`."""

    work_id: str
    source: str
    retrieved_at: datetime


class StaleScan(Protocol):
    """The states not refreshed since a time, found by a paged scan (bounded memory)."""

    async def stale_states(
        self, before: datetime, per_source: int
    ) -> tuple[list[StaleState], dict[str, int]]:
        """Up to `per_source` states of each source last refreshed before `before`, and how
        many there are of each source in all."""
        ...


def stale_alerts(
    stale: Iterable[StaleState], counts: Mapping[str, int], now: datetime, limits: Thresholds
) -> list[Alert]:
    """A `not_updated` alert per stale (work, source) found."""
    out = []
    for row in stale:
        days = (now - row.retrieved_at) / timedelta(days=1)
        message = f"not updated for {days:.0f} days (last {row.retrieved_at.date().isoformat()})"
        details = {
            "retrieved_at": row.retrieved_at.isoformat(),
            "stale_in_source": counts.get(row.source, 0),
        }
        out.append(Alert(AlertKind.NOT_UPDATED, now, message, row.source, row.work_id, details))
    return out


class CheckStore(AlertStore, ActivityStore, StaleScan, Protocol):
    """What the data-quality checks store and read (one adapter per store)."""
