"""The per-source rate limiter: header parsing and how upstream headers change the pacing."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.fetchers.ratelimit import RateLimiter, parse_interval, parse_retry_after

NOW = datetime(2026, 11, 25, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("120", 120.0),
        (" 5 ", 5.0),
        ("Wed, 25 Nov 2026 12:01:30 GMT", 90.0),
        ("Wed, 25 Nov 2026 11:59:00 GMT", 0.0),  # a date in the past: no wait
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_in_seconds_or_http_date(text: str | None, seconds: float | None) -> None:
    """Retry-After is read as delta-seconds or an HTTP date relative to now; junk is ignored."""
    assert parse_retry_after(text, NOW) == seconds


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1s", 1.0), ("500ms", 0.5), ("60", 60.0), ("2m", 120.0), ("1h", 3600.0), ("fast", None)],
)
def test_interval_header_units(text: str, seconds: float | None) -> None:
    """x-rate-limit-interval values with and without units become seconds."""
    assert parse_interval(text) == seconds


def limiter(rate: float = 5.0) -> RateLimiter:
    """A limiter with a full single-token bucket at clock 0."""
    return RateLimiter(rate=rate, burst=1.0, concurrency=2, tokens=1.0, updated=0.0)


def test_crossref_limit_and_interval_set_the_rate() -> None:
    """x-rate-limit-limit 3 per x-rate-limit-interval 1s paces calls a third of a second apart."""
    lim = limiter(rate=50.0)
    lim.observe({"x-rate-limit-limit": "3", "x-rate-limit-interval": "1s"}, 0.0, NOW, 200)
    assert lim.rate == pytest.approx(3.0)
    assert lim.reserve(0.0) == 0.0
    assert lim.reserve(0.0) == pytest.approx(1 / 3)


def test_limit_per_minute_interval() -> None:
    """A limit of 60 per 60s interval is one call a second."""
    lim = limiter()
    lim.observe({"x-rate-limit-limit": "60", "x-rate-limit-interval": "60s"}, 0.0, NOW, 200)
    assert lim.rate == pytest.approx(1.0)


def test_concurrency_limit_header() -> None:
    """x-concurrency-limit replaces the declared concurrency."""
    lim = limiter()
    lim.observe({"x-concurrency-limit": "1"}, 0.0, NOW, 200)
    assert lim.concurrency == 1


@pytest.mark.parametrize("remaining", ["0", "0.0", " 0 "])
def test_budget_used_up_pauses_until_reset(remaining: str) -> None:
    """X-RateLimit-Remaining 0 (OpenAlex/NCBI "0", Reddit "0.0") pauses for X-RateLimit-Reset."""
    lim = limiter()
    lim.observe({"x-ratelimit-remaining": remaining, "x-ratelimit-reset": "30"}, 10.0, NOW, 200)
    assert lim.paused_until == pytest.approx(40.0)
    assert lim.reserve(10.0) == pytest.approx(30.0)
    assert "X-RateLimit-Remaining: 0" in lim.pause_reason


def test_budget_left_does_not_pause() -> None:
    """A remaining budget (Reddit's "599.0") leaves the limiter running."""
    lim = limiter()
    lim.observe({"x-ratelimit-remaining": "599.0", "x-ratelimit-reset": "30"}, 10.0, NOW, 200)
    assert lim.paused_until == 0.0


@pytest.mark.parametrize(("status", "paused"), [(429, 120.0), (503, 120.0), (200, 0.0)])
def test_retry_after_pauses_only_on_429_and_503(status: int, paused: float) -> None:
    """Retry-After on a 429/503 pauses the source; on a 200 it means nothing to us."""
    lim = limiter()
    lim.observe({"retry-after": "120"}, 0.0, NOW, status)
    assert lim.paused_until == paused


def test_retry_after_as_http_date_pauses_until_then() -> None:
    """An HTTP-date Retry-After pauses until that moment."""
    lim = limiter()
    lim.observe({"retry-after": "Wed, 25 Nov 2026 12:00:45 GMT"}, 100.0, NOW, 429)
    assert lim.paused_until == pytest.approx(145.0)


def test_backoff_without_retry_after_and_longest_pause_wins() -> None:
    """A 429 without Retry-After backs off; a shorter later pause does not cut a longer one."""
    lim = limiter()
    lim.backoff(0.0, 8.0, "HTTP 429 without Retry-After")
    lim.backoff(1.0, 2.0, "shorter")
    assert lim.paused_until == 8.0 and lim.pause_reason == "HTTP 429 without Retry-After"


def test_tokens_refill_at_the_rate() -> None:
    """After waiting one interval the next call goes at once."""
    lim = limiter(rate=2.0)
    assert lim.reserve(0.0) == 0.0
    assert lim.reserve(0.0) == pytest.approx(0.5)
    assert lim.reserve(10.0) == 0.0
