"""A per-source rate limiter that adapts to what the upstream says, with time passed in.

Understands Crossref's `x-rate-limit-limit`/`x-rate-limit-interval`/`x-concurrency-limit`,
the `X-RateLimit-Limit`/`-Remaining`/`-Reset` family (OpenAlex, NCBI, Reddit) and `Retry-After`
in seconds or as an HTTP date.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime

_INTERVAL = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_interval(text: str) -> float | None:
    """Seconds in an interval header such as `1s`, `500ms`, `60`; None if unreadable."""
    match = _INTERVAL.match(text or "")
    if not match:
        return None
    return float(match.group(1)) * _UNIT[match.group(2)]


def parse_retry_after(text: str | None, now: datetime) -> float | None:
    """Seconds to wait from a `Retry-After` value (delta-seconds or HTTP date); None if absent."""
    if not text:
        return None
    text = text.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - now).total_seconds())


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


@dataclass(slots=True)
class RateLimiter:
    """Token bucket (`rate` per second, burst `burst`) plus a pause set by the upstream.

    `clock` values are monotonic seconds supplied by the caller.
    """

    rate: float
    burst: float = 1.0
    concurrency: int = 2
    tokens: float = 1.0
    updated: float = 0.0
    paused_until: float = 0.0
    pause_reason: str = ""

    def reserve(self, clock: float) -> float:
        """Take one token; returns how many seconds to wait before sending."""
        self._refill(clock)
        start = max(clock, self.paused_until)
        self.tokens -= 1.0
        if self.tokens >= 0:
            return start - clock
        return max(start - clock, -self.tokens / self.rate)

    def _refill(self, clock: float) -> None:
        if clock > self.updated:
            self.tokens = min(self.burst, self.tokens + (clock - self.updated) * self.rate)
            self.updated = clock

    def observe(self, headers: Mapping[str, str], clock: float, now: datetime, status: int) -> None:
        """Adapt to an upstream's rate-limit headers (names lower-case) and its 429s."""
        limit = headers.get("x-rate-limit-limit")
        interval = parse_interval(headers.get("x-rate-limit-interval", "1s"))
        if limit and limit.strip().isdigit() and interval:
            self.rate = max(0.01, float(limit) / interval)
            self.burst = max(1.0, min(float(limit), self.rate))
        concurrency = headers.get("x-concurrency-limit")
        if concurrency and concurrency.strip().isdigit():
            self.concurrency = max(1, int(concurrency))
        remaining = _number(headers.get("x-ratelimit-remaining"))
        reset = parse_interval(headers.get("x-ratelimit-reset", ""))
        if remaining is not None and remaining <= 0 and reset is not None:  # Reddit sends "0.0"
            self._pause(clock, reset, "rate-limit budget used up (X-RateLimit-Remaining: 0)")
        retry_after = parse_retry_after(headers.get("retry-after"), now)
        if retry_after is not None and status in (429, 503):
            self._pause(
                clock, retry_after, f"upstream asked to wait {retry_after:.0f}s (HTTP {status})"
            )

    def _pause(self, clock: float, seconds: float, reason: str) -> None:
        if clock + seconds > self.paused_until:
            self.paused_until = clock + seconds
            self.pause_reason = reason

    def backoff(self, clock: float, seconds: float, reason: str) -> None:
        """Pause sending for `seconds` (a 429 without Retry-After, repeated 5xx)."""
        self._pause(clock, seconds, reason)
