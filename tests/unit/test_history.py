"""History: rolling cumulative daily snapshots up into day, month and year counts."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

import pytest

from services.core.events import PeriodCount
from services.core.history import PERIODS, Period, rollup, year_counts

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


def test_year_counts_zero_fill_years_the_upstream_omits() -> None:
    """Years missing between first and last year are zeros, not gaps."""
    periods = [PeriodCount("citations", "2019", 3), PeriodCount("citations", "2021", 5)]
    assert year_counts(periods, 2018, 2022) == [
        {"year": 2018, "metrics": {"citations": 0}},
        {"year": 2019, "metrics": {"citations": 3}},
        {"year": 2020, "metrics": {"citations": 0}},
        {"year": 2021, "metrics": {"citations": 5}},
        {"year": 2022, "metrics": {"citations": 0}},
    ]


def test_year_counts_extend_to_years_outside_the_range() -> None:
    """Counts in years outside [first_year, last_year] widen the range instead of vanishing."""
    periods = [PeriodCount("citations", "2016", 1), PeriodCount("citations", "2020", 2)]
    rows = year_counts(periods, 2018, 2018)
    assert [r["year"] for r in rows] == [2016, 2017, 2018, 2019, 2020]
    assert [r["metrics"] for r in rows] == [
        {"citations": 1},
        {"citations": 0},
        {"citations": 0},
        {"citations": 0},
        {"citations": 2},
    ]


def test_year_counts_ignore_month_and_day_periods() -> None:
    """Only `YYYY` periods are year counts; monthly and daily ones are left out."""
    periods = [
        PeriodCount("citations", "2020", 4),
        PeriodCount("citations", "2020-05", 99),
        PeriodCount("citations", "2020-05-01", 99),
    ]
    assert year_counts(periods, 2020, 2020) == [{"year": 2020, "metrics": {"citations": 4}}]


def test_year_counts_fill_every_metric_in_every_year() -> None:
    """Each year lists every metric seen, zero where that metric had no count that year."""
    periods = [PeriodCount("pdf", "2020", 1), PeriodCount("html", "2021", 2)]
    assert year_counts(periods, 2020, 2021) == [
        {"year": 2020, "metrics": {"html": 0, "pdf": 1}},
        {"year": 2021, "metrics": {"html": 2, "pdf": 0}},
    ]


def test_year_counts_without_any_year_are_empty() -> None:
    """With no per-year counts at all there is no history to zero-fill."""
    assert year_counts([PeriodCount("citations", "2020-05", 3)], 2018, 2020) == []
    assert year_counts([], 2018, 2020) == []
