"""Staleness policy: refresh intervals by work age, jitter, overrides and retry backoff."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from services.core.staleness import (
    Intervals,
    Policy,
    next_refresh,
    parse_duration,
    refresh_interval,
    retry_at,
)

NOW = datetime(2024, 6, 15, 10, 30, tzinfo=UTC)
LAST = NOW - timedelta(hours=3)
DAILY = timedelta(days=1)
WEEKLY_AND_A_HALF = timedelta(days=7.5)
MONTHLY = timedelta(days=30)
ALMOST_ONE = 0.999999


def published(age_days: int) -> date:
    """The publication date of a work `age_days` old at NOW."""
    return NOW.date() - timedelta(days=age_days)


AGE_TABLE = [
    (0, DAILY),
    (1, DAILY),
    (30, DAILY),
    (31, DAILY),
    (32, WEEKLY_AND_A_HALF),
    (100, WEEKLY_AND_A_HALF),
    (365, WEEKLY_AND_A_HALF),
    (366, MONTHLY),
    (3650, MONTHLY),
]


@pytest.mark.parametrize(("age", "interval"), AGE_TABLE)
def test_refresh_interval_by_age(age: int, interval: timedelta) -> None:
    """0-31 days old: daily; 32-365: every 7.5 days; older: monthly (ALM's boundaries)."""
    assert refresh_interval(published(age), NOW, Intervals(), unknown=100) == interval


@pytest.mark.parametrize(("age", "interval"), AGE_TABLE)
def test_next_refresh_without_jitter_is_last_plus_interval(age: int, interval: timedelta) -> None:
    """With rand 0 the next refresh is exactly the last refresh plus the age's interval."""
    assert next_refresh(published(age), LAST, NOW, Policy(), rand=0.0) == LAST + interval


@pytest.mark.parametrize(("age", "interval"), AGE_TABLE)
def test_a_next_refresh_already_past_is_now(age: int, interval: timedelta) -> None:
    """An observation aggregated after its next refresh time has passed (a broker restart, a
    backlog) is due now, never behind the present: the Cassandra due scan starts a margin
    behind the present and would find an older entry only at its next whole-hour read."""
    late = NOW + timedelta(days=100)  # aggregated long after it was fetched
    assert next_refresh(published(age), LAST, late, Policy(), rand=0.5) == late
    assert next_refresh(published(age), LAST, NOW, Policy(), rand=0.5) > NOW


@pytest.mark.parametrize(("age", "interval"), AGE_TABLE)
def test_jitter_adds_at_most_ten_percent(age: int, interval: timedelta) -> None:
    """With rand close to 1 the jitter adds something, but less than 10% of the interval."""
    when = next_refresh(published(age), LAST, NOW, Policy(), rand=ALMOST_ONE)
    assert LAST + interval < when < LAST + interval * 1.1


@pytest.mark.parametrize("rand", [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, ALMOST_ONE])
def test_jitter_stays_within_bounds_and_grows_with_rand(rand: float) -> None:
    """Any rand in [0, 1) lands in [interval, 1.1 x interval), proportionally to rand."""
    when = next_refresh(published(200), LAST, NOW, Policy(), rand=rand)
    assert LAST + WEEKLY_AND_A_HALF <= when < LAST + WEEKLY_AND_A_HALF * 1.1
    expected = WEEKLY_AND_A_HALF * (1 + 0.1 * rand)
    assert when - LAST == pytest.approx(expected, abs=timedelta(seconds=1))


def test_zero_jitter_policy_ignores_rand() -> None:
    """A policy with jitter 0 schedules exactly at last + interval whatever rand is."""
    policy = Policy(jitter=0.0)
    assert next_refresh(published(10), LAST, NOW, policy, rand=ALMOST_ONE) == LAST + DAILY


@pytest.mark.parametrize("age", [0, 31, 32, 365, 366, 5000])
@pytest.mark.parametrize("rand", [0.0, ALMOST_ONE])
def test_never_refreshed_is_due_now(age: int, rand: float) -> None:
    """A work never refreshed from a source is due immediately, without jitter."""
    assert next_refresh(published(age), None, NOW, Policy(), rand=rand) == NOW


def test_never_refreshed_without_issued_date_is_due_now() -> None:
    """A work with no publication date and no refresh yet is due immediately."""
    assert next_refresh(None, None, NOW, Policy(), rand=0.5) == NOW


@pytest.mark.parametrize("last", [None, LAST])
def test_future_publication_is_due_on_that_date(last: datetime | None) -> None:
    """A work published in the future is due at midnight UTC of its publication date."""
    issued = date(2024, 7, 1)
    assert next_refresh(issued, last, NOW, Policy(), rand=0.5) == datetime(2024, 7, 1, tzinfo=UTC)


def test_published_today_is_not_future() -> None:
    """A work published today is already out: due now when never refreshed, else daily."""
    today = NOW.date()
    assert next_refresh(today, None, NOW, Policy(), rand=0.0) == NOW
    assert next_refresh(today, LAST, NOW, Policy(), rand=0.0) == LAST + DAILY


@pytest.mark.parametrize(("unknown", "interval"), [(100, WEEKLY_AND_A_HALF), (10, DAILY)])
def test_unknown_publication_date_counts_as_the_configured_age(
    unknown: int, interval: timedelta
) -> None:
    """Without an issued date the work is treated as `unknown_age_days` old."""
    policy = Policy(unknown_age_days=unknown)
    assert next_refresh(None, LAST, NOW, policy, rand=0.0) == LAST + interval


def test_default_policy_treats_undated_works_as_mid_aged() -> None:
    """By default an undated work is refreshed on the 7.5-day cadence, not daily or monthly."""
    assert next_refresh(None, LAST, NOW, Policy(), rand=0.0) == LAST + WEEKLY_AND_A_HALF


FAST = Intervals(
    recent=timedelta(hours=6),
    year=timedelta(days=2),
    old=timedelta(days=10),
    recent_days=7,
    year_days=90,
)


@pytest.mark.parametrize(
    ("source", "age", "interval"),
    [
        ("wikipedia", 3, timedelta(hours=6)),
        ("wikipedia", 7, timedelta(hours=6)),
        ("wikipedia", 8, timedelta(days=2)),
        ("wikipedia", 90, timedelta(days=2)),
        ("wikipedia", 91, timedelta(days=10)),
        ("crossref", 3, DAILY),
        ("crossref", 91, WEEKLY_AND_A_HALF),
        (None, 3, DAILY),
    ],
)
def test_per_source_override(source: str | None, age: int, interval: timedelta) -> None:
    """A source with an override uses its own intervals and age limits; others the default."""
    policy = Policy(per_source={"wikipedia": FAST})
    assert next_refresh(published(age), LAST, NOW, policy, 0.0, source) == LAST + interval


def test_policy_intervals_falls_back_to_default() -> None:
    """Policy.intervals gives the override for its source and the default otherwise."""
    policy = Policy(per_source={"wikipedia": FAST})
    assert policy.intervals("wikipedia") == FAST
    assert policy.intervals("crossref") == Intervals()
    assert policy.intervals(None) == Intervals()


RETRY = Policy(retry_base=timedelta(minutes=5), retry_max=timedelta(hours=6), max_attempts=5)


@pytest.mark.parametrize(
    ("attempt", "delay"),
    [
        (1, timedelta(minutes=5)),
        (2, timedelta(minutes=10)),
        (3, timedelta(minutes=20)),
        (4, timedelta(minutes=40)),
    ],
)
def test_retry_backoff_doubles(attempt: int, delay: timedelta) -> None:
    """Each failed attempt waits twice as long as the one before, starting at retry_base."""
    assert retry_at(attempt, NOW, RETRY, rand=0.0) == NOW + delay


@pytest.mark.parametrize("attempt", [5, 6, 50])
def test_retry_gives_up_after_max_attempts(attempt: int) -> None:
    """Once `max_attempts` attempts have failed there is no further retry."""
    assert retry_at(attempt, NOW, RETRY, rand=0.0) is None


def test_single_attempt_policy_never_retries() -> None:
    """With max_attempts 1 the first failure is final."""
    assert retry_at(1, NOW, Policy(max_attempts=1), rand=0.0) is None


@pytest.mark.parametrize(
    ("attempt", "delay"),
    [
        (7, timedelta(minutes=320)),
        (8, timedelta(hours=6)),
        (9, timedelta(hours=6)),
        (19, timedelta(hours=6)),
    ],
)
def test_retry_delay_is_capped(attempt: int, delay: timedelta) -> None:
    """The doubling stops at retry_max (5 min x 2^7 = 640 min > 6 h)."""
    policy = Policy(retry_base=timedelta(minutes=5), retry_max=timedelta(hours=6), max_attempts=20)
    assert retry_at(attempt, NOW, policy, rand=0.0) == NOW + delay


@pytest.mark.parametrize("attempt", [1, 3, 4])
def test_retry_jitter_adds_at_most_ten_percent(attempt: int) -> None:
    """Retry jitter also adds less than 10% of the delay."""
    base = retry_at(attempt, NOW, RETRY, rand=0.0)
    jittered = retry_at(attempt, NOW, RETRY, rand=ALMOST_ONE)
    assert base is not None
    assert jittered is not None
    delay = base - NOW
    assert base < jittered < NOW + delay * 1.1


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("90m", timedelta(minutes=90)),
        ("6h", timedelta(hours=6)),
        ("7.5d", timedelta(days=7.5)),
        (" 1D ", timedelta(days=1)),
    ],
)
def test_parse_duration(text: str, expected: timedelta) -> None:
    """Durations in s/m/h/d parse, decimals and case included."""
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "d", "7", "-1d", "0h", "1w", "x1d"])
def test_parse_duration_rejects(text: str) -> None:
    """Anything but a positive number with a unit is a ValueError naming the text."""
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_per_source_intervals_from_environment() -> None:
    """ALM_<SOURCE>_REFRESH overrides one source; ALM_DEFAULT_REFRESH the default."""
    from services.settings import Settings

    settings = Settings.from_env(
        {"ALM_CROSSREF_REFRESH": "12h,2d,10d", "ALM_DEFAULT_REFRESH": "2d,8d,40d"}
    )
    policy = settings.policy()
    assert policy.intervals("crossref") == Intervals(
        recent=timedelta(hours=12), year=timedelta(days=2), old=timedelta(days=10)
    )
    assert policy.intervals("openalex").old == timedelta(days=40)
    with pytest.raises(ValueError, match="three durations"):
        Settings.from_env({"ALM_CROSSREF_REFRESH": "1d,2d"}).policy()
