"""When a work is due again: ALM's age-based staleness policy, as pure functions of time."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta


@dataclass(frozen=True, slots=True)
class Intervals:
    """Refresh intervals by work age: up to `recent_days` old, up to `year_days`, older."""

    recent: timedelta = timedelta(days=1)
    year: timedelta = timedelta(days=7.5)
    old: timedelta = timedelta(days=30)
    recent_days: int = 31
    year_days: int = 365


@dataclass(frozen=True, slots=True)
class Policy:
    """Staleness policy: default intervals, per-source overrides, jitter, retry backoff."""

    default: Intervals = field(default_factory=Intervals)
    per_source: Mapping[str, Intervals] = field(default_factory=dict)
    jitter: float = 0.10
    retry_base: timedelta = timedelta(minutes=5)
    retry_max: timedelta = timedelta(hours=6)
    max_attempts: int = 5
    unknown_age_days: int = 100  # a work without an issued date is treated as this old

    def intervals(self, source: str | None) -> Intervals:
        """The intervals that apply to `source` (its override, else the default)."""
        return self.per_source.get(source or "", self.default)


def refresh_interval(
    issued: date | None, now: datetime, intervals: Intervals, unknown: int
) -> timedelta:
    """The base interval for a work of this publication date at `now` (before jitter)."""
    age_days = (now.date() - issued).days if issued else unknown
    if age_days <= intervals.recent_days:
        return intervals.recent
    if age_days <= intervals.year_days:
        return intervals.year
    return intervals.old


def next_refresh(
    issued: date | None,
    last: datetime | None,
    now: datetime,
    policy: Policy,
    rand: float,
    source: str | None = None,
) -> datetime:
    """When the work is next due: `last` + interval + up to `jitter` of it (`rand` in [0, 1)).

    A work never refreshed is due `now`; a work published in the future is due on its
    publication date. A time already past is `now`: an observation aggregated late (a broker
    restart, a backlog) must not write its next due time behind the present, where the
    Cassandra due-index scan, which starts a margin behind the present, would find it only at
    its next whole-hour read (minutes later).
    """
    if issued is not None and issued > now.date():
        return datetime.combine(issued, time.min, tzinfo=UTC)
    if last is None:
        return now
    interval = refresh_interval(issued, now, policy.intervals(source), policy.unknown_age_days)
    return max(now, last + interval + interval * (policy.jitter * rand))


def retry_at(attempt: int, now: datetime, policy: Policy, rand: float) -> datetime | None:
    """When failed attempt number `attempt` is tried again, or None when attempts are spent."""
    if attempt >= policy.max_attempts:
        return None
    delay = min(policy.retry_base * (2 ** (attempt - 1)), policy.retry_max)
    at: datetime = now + delay + delay * (policy.jitter * rand)
    return at


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """`30s`, `90m`, `6h`, `7.5d` as a timedelta; ValueError naming the text otherwise."""
    value, unit = text.strip()[:-1], text.strip()[-1:].lower()
    try:
        amount = float(value)
    except ValueError:
        amount = -1.0
    if unit not in _UNITS or amount <= 0:
        raise ValueError(f"not a duration: {text!r} (use e.g. 12h, 1d, 7.5d)")
    return timedelta(seconds=amount * _UNITS[unit])


def parse_intervals(text: str) -> Intervals:
    """Three intervals `RECENT,YEAR,OLD` (e.g. `1d,7.5d,30d`) as Intervals."""
    parts = [p for p in text.split(",") if p.strip()]
    if len(parts) != 3:
        raise ValueError(f"refresh intervals take three durations RECENT,YEAR,OLD: {text!r}")
    recent, year, old = (parse_duration(p) for p in parts)
    return Intervals(recent=recent, year=year, old=old)
