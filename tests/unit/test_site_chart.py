"""The history chart (services/site/chart.py): one point per dated bucket of the presenter's
history, the undated remainder left to the table, the y scale's nice ends, positions inside the
plot area, an empty history, escaping, and well-formed SVG with its accessible name."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import date

import pytest

from services.api.present import present_history
from services.core.aggregation import HistoryPoint
from services.core.catalog import Catalog
from services.core.history import PERIODS, Period
from services.site import chart

SVG = "{http://www.w3.org/2000/svg}"


def _snapshots() -> list[HistoryPoint]:
    days = [date(2025, 11, 3), date(2025, 12, 1), date(2025, 12, 20), date(2026, 2, 7)]
    return [
        HistoryPoint("10.1/x", "src", day, {"views": n})
        for day, n in zip(days, (5, 9, 14, 30), strict=True)
    ]


@pytest.mark.parametrize(
    ("period", "labels", "values"),
    [
        ("day", ["2025-11-03", "2025-12-01", "2025-12-20", "2026-02-07"], [5, 4, 5, 16]),
        ("month", ["2025-11", "2025-12", "2026-02"], [5, 9, 16]),
        ("year", ["2025", "2026"], [14, 16]),
    ],
)
def test_one_point_per_period_of_the_presenter_s_history(
    period: str, labels: list[str], values: list[int]
) -> None:
    chosen: Period = PERIODS[PERIODS.index(period)]
    (hist,) = present_history(Catalog([]), _snapshots(), [], chosen, date(2026, 3, 1))
    shown = chart.points(hist["buckets"])
    assert [p.label for p in shown] == labels
    assert [p.value for p in shown] == values
    svg = ET.fromstring(chart.render(shown, f"src by {period}"))
    circles = list(svg.iter(f"{SVG}circle"))
    assert [c.get("data-period") for c in circles] == labels
    assert [c.findtext(f"{SVG}title") for c in circles] == [
        f"{label}: {v:,}" for label, v in zip(labels, values, strict=True)
    ]
    assert svg.get("aria-label") == f"src by {period}" == svg.findtext(f"{SVG}title")
    assert svg.get("role") == "img"


def test_the_undated_remainder_is_not_a_point() -> None:
    buckets = [
        {"undated": True, "metrics": {}, "total": 7},
        {"year": 2024, "metrics": {}, "total": 3},
    ]
    assert chart.points(buckets) == [chart.Point("2024", 3)]
    assert chart.label_of(buckets[0]) == "undated"
    assert chart.label_of({"year": 2024, "month": 3, "day": 9}) == "2024-03-09"


@pytest.mark.parametrize(
    ("value", "ceiling"),
    [(0, 1), (1, 1), (3, 5), (7, 10), (11, 20), (21, 25), (26, 50), (999, 1000), (1015, 2000)],
)
def test_nice_ceilings(value: int, ceiling: int) -> None:
    assert chart.nice_ceiling(value) == ceiling


def test_the_y_range_starts_at_zero_or_below_a_count_that_went_down() -> None:
    assert chart.y_range([3, 8]) == (0, 10)
    assert chart.y_range([0, 0]) == (0, 1)
    assert chart.y_range([-3, 12]) == (-5, 20)
    assert chart.y_range([-3, -1]) == (-5, 0)


def test_positions_stay_in_the_plot_area_and_scale_with_the_counts() -> None:
    xy = chart.positions([0, 5, 10])
    assert [x for x, _ in xy] == [
        chart.LEFT,
        (chart.LEFT + chart.WIDTH - chart.RIGHT) / 2,
        chart.WIDTH - chart.RIGHT,
    ]
    base, top = chart.HEIGHT - chart.BOTTOM, chart.TOP
    assert [y for _, y in xy] == [base, (base + top) / 2, top]
    (only,) = chart.positions([4])
    assert only[0] == (chart.LEFT + chart.WIDTH - chart.RIGHT) / 2
    assert chart.positions([]) == []


def test_an_empty_history_is_an_empty_chart_saying_so() -> None:
    svg = ET.fromstring(chart.render([], "nothing"))
    assert list(svg.iter(f"{SVG}circle")) == [] and list(svg.iter(f"{SVG}polyline")) == []
    assert "no history yet" in [t.text for t in svg.iter(f"{SVG}text")]


def test_many_points_get_a_few_labels_first_and_last_included() -> None:
    shown = [chart.Point(f"2026-01-{d:02d}", d) for d in range(1, 32)]
    svg = ET.fromstring(chart.render(shown, "days"))
    assert len(list(svg.iter(f"{SVG}circle"))) == 31
    labels = [t.text for t in svg.iter(f"{SVG}text") if (t.text or "").startswith("2026")]
    assert labels[0] == "2026-01-01" and labels[-1] == "2026-01-31" and len(labels) <= 7


def test_titles_are_escaped() -> None:
    svg = ET.fromstring(chart.render([chart.Point("<b>", 1)], 'a "b" & <c>'))
    assert svg.get("aria-label") == 'a "b" & <c>'
    assert svg.find(f"{SVG}script") is None
