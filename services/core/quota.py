"""Request quotas: a rate (`60/min`) and token buckets by name, with time passed in.

A bucket holds up to `count` requests and refills at `count` per `seconds`: a client may send
a burst of `count`, then one request every `seconds / count`. Buckets live in insertion-
and-use order; a bucket idle long enough to be full again is the same as none and is dropped,
and past `max_buckets` the least recently used goes, so memory follows the clients active
within one window, whatever the number of addresses or keys seen.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from dataclasses import dataclass

_RATE = re.compile(r"(?P<n>[0-9]{1,9})\s*(?:/\s*(?P<unit>s|sec|second|m|min|minute|h|hour|d|day))?")
_SECONDS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
EPSILON = 1e-9  # refills add up in floating point: 10 x 0.1 is 0.9999999999999999
_UNIT_NAMES = {1.0: "s", 60.0: "min", 3600.0: "h", 86400.0: "d"}
UNLIMITED = ("unlimited", "none", "0")


@dataclass(frozen=True, slots=True)
class Rate:
    """`count` requests per `seconds` (also the largest burst)."""

    count: int
    seconds: float = 60.0

    def __post_init__(self) -> None:
        if self.count < 1 or not self.seconds > 0:
            raise ValueError("a rate is at least 1 request per a positive number of seconds")

    @property
    def per_second(self) -> float:
        """Requests a second once a burst is spent."""
        return self.count / self.seconds

    def __str__(self) -> str:
        unit = _UNIT_NAMES.get(self.seconds)
        return f"{self.count}/{unit}" if unit else f"{self.count}/{self.seconds:g}s"


def parse_rate(text: str, default_unit: str = "m") -> Rate | None:
    """A rate from `N/s`, `N/min`, `N/h`, `N/d` or `N` (per `default_unit`); None for
    `unlimited` (or `0`); a ValueError for anything else."""
    value = text.strip().lower()
    if value in UNLIMITED:
        return None
    found = _RATE.fullmatch(value)
    if found is None or int(found.group("n")) < 1:
        raise ValueError(f"a rate reads N/s, N/min, N/h, N/d or unlimited, not {text!r}")
    unit = (found.group("unit") or default_unit)[0]
    return Rate(int(found.group("n")), _SECONDS[unit])


def per_minute(count: int) -> Rate | None:
    """A key's stored rate (requests a minute; 0: no limit) as a Rate."""
    return Rate(count, 60.0) if count > 0 else None


@dataclass(frozen=True, slots=True)
class Verdict:
    """One request against a bucket: allowed or not, and what the client is told."""

    allowed: bool
    limit: int  # the bucket's size: requests per window
    window: float  # seconds the bucket takes to fill from empty
    remaining: int  # whole requests left now
    reset: int  # seconds until the bucket is full again
    retry_after: int  # seconds until one request is allowed (0 when allowed)

    @property
    def rate(self) -> Rate:
        """The rate the bucket enforces."""
        return Rate(self.limit, self.window)

    def headers(self) -> dict[str, str]:
        """The X-RateLimit-* headers (and Retry-After when refused)."""
        out = {
            "X-RateLimit-Limit": str(self.limit),
            "X-RateLimit-Remaining": str(self.remaining),
            "X-RateLimit-Reset": str(self.reset),
        }
        if not self.allowed:
            out["Retry-After"] = str(self.retry_after)
        return out


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float
    rate: Rate

    def refill(self, now: float) -> None:
        if now > self.updated:
            gained = (now - self.updated) * self.rate.per_second
            self.tokens = min(float(self.rate.count), self.tokens + gained)
            self.updated = now

    def full_at(self) -> float:
        return self.updated + (self.rate.count - self.tokens) / self.rate.per_second


class Buckets:
    """Token buckets by name (a key id, a client address), bounded in number."""

    def __init__(self, max_buckets: int = 100_000) -> None:
        self.max_buckets = max_buckets
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, name: str, rate: Rate, now: float) -> Verdict:
        """Spend one request of `name`'s bucket (made full at `rate` if new) at monotonic
        time `now`; refused when less than one is left (nothing is spent then)."""
        self._drop_idle(now)
        bucket = self._buckets.get(name)
        if bucket is None:
            bucket = _Bucket(float(rate.count), now, rate)
            self._buckets[name] = bucket
            while len(self._buckets) > self.max_buckets:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(name)
            bucket.refill(now)
            if bucket.rate != rate:  # the key's rate was changed
                bucket.rate = rate
                bucket.tokens = min(bucket.tokens, float(rate.count))
        allowed = bucket.tokens >= 1.0 - EPSILON
        if allowed:
            bucket.tokens -= 1.0
        wait = 0.0 if allowed else (1.0 - bucket.tokens) / rate.per_second
        return Verdict(
            allowed=allowed,
            limit=rate.count,
            window=rate.seconds,
            remaining=int(bucket.tokens + EPSILON),
            reset=math.ceil(max(0.0, bucket.full_at() - now)),
            retry_after=max(1, math.ceil(wait)) if not allowed else 0,
        )

    def has_left(self, name: str, now: float) -> bool:
        """Whether `name`'s bucket holds at least one request at `now` (nothing is spent)."""
        bucket = self._buckets.get(name)
        if bucket is None:
            return True
        bucket.refill(now)
        return bucket.tokens >= 1.0 - EPSILON

    def _drop_idle(self, now: float) -> None:
        """Drop the least recently used buckets that are full again by `now` (a full bucket
        and no bucket are the same)."""
        while self._buckets:
            name, oldest = next(iter(self._buckets.items()))
            oldest.refill(now)
            if oldest.tokens < oldest.rate.count - EPSILON:
                return
            del self._buckets[name]
