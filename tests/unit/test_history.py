"""History: rolling cumulative daily snapshots up into day, month and year counts."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

import pytest

from services.core.events import PeriodCount
from services.core.history import PERIODS, Bucket, Period, history, rollup

Snapshots = list[tuple[date, Mapping[str, int]]]

DAILY: Snapshots = [
    (date(2024, 3, 1), {"citations": 5}),
    (date(2024, 3, 2), {"citations": 7}),
    (date(2024, 3, 4), {"citations": 7}),
    (date(2024, 3, 5), {"citations": 10}),
]

MONTHLY: Snapshots = [
    (date(2023, 12, 30), {"citations": 1}),
    (date(2024, 1, 5), {"citations": 3}),
    (date(2024, 1, 20), {"citations": 5}),
    (date(2024, 2, 3), {"citations": 6}),
    (date(2024, 2, 29), {"citations": 9}),
    (date(2024, 4, 10), {"citations": 10}),
]

YEARLY: Snapshots = [
    (date(2022, 3, 1), {"citations": 2}),
    (date(2022, 12, 31), {"citations": 4}),
    (date(2023, 6, 1), {"citations": 9}),
    (date(2024, 1, 1), {"citations": 9}),
]


def test_rollup_by_day() -> None:
    """Each day counts its cumulative value minus the previous snapshot's; the first counts all."""
    assert rollup(DAILY, "day") == [
        {"year": 2024, "month": 3, "day": 1, "metrics": {"citations": 5}},
        {"year": 2024, "month": 3, "day": 2, "metrics": {"citations": 2}},
        {"year": 2024, "month": 3, "day": 4, "metrics": {"citations": 0}},
        {"year": 2024, "month": 3, "day": 5, "metrics": {"citations": 3}},
    ]


def test_rollup_by_month_uses_last_value_in_each_month() -> None:
    """A month counts its last cumulative value minus the last value before it."""
    assert rollup(MONTHLY, "month") == [
        {"year": 2023, "month": 12, "metrics": {"citations": 1}},
        {"year": 2024, "month": 1, "metrics": {"citations": 4}},
        {"year": 2024, "month": 2, "metrics": {"citations": 4}},
        {"year": 2024, "month": 4, "metrics": {"citations": 1}},
    ]


def test_rollup_by_year() -> None:
    """A year counts its last cumulative value minus the previous year's last value."""
    assert rollup(YEARLY, "year") == [
        {"year": 2022, "metrics": {"citations": 4}},
        {"year": 2023, "metrics": {"citations": 5}},
        {"year": 2024, "metrics": {"citations": 0}},
    ]


@pytest.mark.parametrize("snapshots", [DAILY, MONTHLY, YEARLY])
@pytest.mark.parametrize("period", PERIODS)
def test_rollup_buckets_add_up_to_the_latest_total(snapshots: Snapshots, period: Period) -> None:
    """Whatever the period, the bucket counts sum to the last cumulative total."""
    rows = rollup(snapshots, period)
    total = sum(row["metrics"]["citations"] for row in rows)  # type: ignore[index]
    assert total == snapshots[-1][1]["citations"]


def test_rollup_reports_a_decrease_as_negative() -> None:
    """A total that drops gives a negative bucket (kept for the data-quality check)."""
    snapshots: Snapshots = [
        (date(2024, 3, 1), {"citations": 10}),
        (date(2024, 3, 2), {"citations": 8}),
    ]
    assert [row["metrics"] for row in rollup(snapshots, "day")] == [
        {"citations": 10},
        {"citations": -2},
    ]


def test_rollup_with_metrics_that_appear_later() -> None:
    """A metric first reported later counts from zero; the others keep their differences."""
    snapshots: Snapshots = [
        (date(2024, 3, 1), {"pdf": 2}),
        (date(2024, 3, 2), {"pdf": 3, "html": 4}),
    ]
    assert [row["metrics"] for row in rollup(snapshots, "day")] == [
        {"pdf": 2},
        {"html": 4, "pdf": 1},
    ]


def test_rollup_of_nothing_is_empty() -> None:
    """No snapshots, no rows."""
    assert rollup([], "month") == []


AS_OF = date(2024, 5, 2)


def _p(metric: str, period: str, count: int) -> PeriodCount:
    return PeriodCount(metric, period, count)


# (name, snapshots, upstream periods, current totals): histories every period size must keep
# adding up to the totals.
CASES: list[tuple[str, Snapshots, list[PeriodCount], dict[str, int]]] = [
    ("snapshots only", MONTHLY, [], {"citations": 10}),
    ("a total and no snapshot yet", [], [], {"citations": 12}),
    ("totals newer than the last snapshot", DAILY, [], {"citations": 14}),
    (
        "upstream years covering recent years only",
        [],
        [_p("citations", "2022", 4), _p("citations", "2020", 3)],
        {"citations": 9},
    ),
    (
        "upstream months of views, years of citations",
        [(date(2023, 1, 1), {"views": 5, "citations": 1})],
        [
            _p("views", "2022-11", 2),
            _p("views", "2023-01", 3),
            _p("views", "2024-02", 6),
            _p("citations", "2023", 2),
        ],
        {"views": 11, "citations": 2},
    ),
    ("upstream years adding up to more", [], [_p("citations", "2023", 7)], {"citations": 5}),
]


@pytest.mark.parametrize("period", PERIODS)
@pytest.mark.parametrize(
    ("name", "snapshots", "upstream", "totals"), CASES, ids=[c[0] for c in CASES]
)
def test_every_history_adds_up_to_the_totals(
    name: str,
    snapshots: Snapshots,
    upstream: list[PeriodCount],
    totals: dict[str, int],
    period: Period,
) -> None:
    """Whatever the basis and the period size, a metric's buckets (the undated one included)
    add up to its current total: a history never silently disagrees with the total."""
    hist = history(period, snapshots, upstream, totals, AS_OF)
    for metric, total in totals.items():
        assert sum(b.counts.get(metric, 0) for b in hist.buckets) == total, metric


def test_a_total_only_source_gets_its_current_bucket_from_the_total() -> None:
    """ALM's rule: the current bucket is the current total minus the earlier buckets (the last
    snapshot said 10 in March; the total of 14 observed in May makes May's bucket 4)."""
    hist = history("month", DAILY, [], {"citations": 14}, AS_OF)
    assert [(b.key, b.counts) for b in hist.buckets] == [
        ((2024, 3), {"citations": 10}),
        ((2024, 5), {"citations": 4}),
    ]
    assert hist.basis == {"citations": "snapshots"}


def test_upstream_years_are_zero_filled_to_the_year_of_the_totals_with_an_undated_rest() -> None:
    """OpenAlex-like years: missing years count zero up to the totals' year, and what the years
    do not cover (counts_by_year is recent years only) is one undated bucket, listed first."""
    upstream = [_p("citations", "2020", 3), _p("citations", "2022", 4)]
    hist = history("year", [], upstream, {"citations": 9}, AS_OF)
    assert [(b.key, b.counts) for b in hist.buckets] == [
        (None, {"citations": 2}),
        ((2020,), {"citations": 3}),
        ((2021,), {"citations": 0}),
        ((2022,), {"citations": 4}),
        ((2023,), {"citations": 0}),
        ((2024,), {"citations": 0}),
    ]
    assert hist.buckets[0].label() == {"undated": True}
    assert hist.basis == {"citations": "upstream"}


def test_years_are_the_sum_of_upstream_months() -> None:
    """DataCite-like months: the month view is the upstream's months (gaps zero), the year view
    sums them; per-year citations come from the upstream's years."""
    upstream = [
        _p("views", "2022-11", 2),
        _p("views", "2023-01", 3),
        _p("views", "2024-02", 6),
        _p("citations", "2023", 2),
    ]
    totals = {"views": 11, "citations": 2}
    months = history("month", [], upstream, totals, AS_OF)
    views = {b.key: b.counts["views"] for b in months.buckets if b.counts["views"]}
    assert views == {(2022, 11): 2, (2023, 1): 3, (2024, 2): 6}
    assert [b.key for b in months.buckets][:3] == [(2022, 11), (2022, 12), (2023, 1)]
    assert months.basis == {"views": "upstream", "citations": "snapshots"}
    years = history("year", [], upstream, totals, AS_OF)
    assert {b.key: b.counts for b in years.buckets} == {
        (2022,): {"citations": 0, "views": 2},
        (2023,): {"citations": 2, "views": 3},
        (2024,): {"citations": 0, "views": 6},
    }
    assert years.basis == {"views": "upstream", "citations": "upstream"}


def test_periods_adding_up_to_more_than_the_total_give_a_negative_undated_bucket() -> None:
    """Per-period counts above the total are shown, not hidden: the undated bucket is negative."""
    hist = history("year", [], [_p("citations", "2023", 7)], {"citations": 5}, AS_OF)
    assert hist.buckets[0] == Bucket(None, {"citations": -2})


def test_a_metric_not_reported_has_no_undated_bucket() -> None:
    """A metric the upstream did not report (absent from the totals) is not reconciled."""
    hist = history("year", [], [_p("requests", "2023", 7)], {}, AS_OF)
    assert [b.key for b in hist.buckets] == [(2023,), (2024,)]


@pytest.mark.parametrize("bad", ["20", "2023-13", "2023-1x", "year", "2023-02-40", "12345"])
def test_unreadable_periods_are_ignored(bad: str) -> None:
    """A period that is not YYYY, YYYY-MM or YYYY-MM-DD is not counted anywhere."""
    hist = history("year", [], [_p("citations", bad, 5)], {"citations": 5}, AS_OF)
    assert hist.basis == {"citations": "snapshots"}
    assert [(b.key, b.counts) for b in hist.buckets] == [((2024,), {"citations": 5})]
