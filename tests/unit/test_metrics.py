"""Metric slots, source totals and group figures (ALM's per-source `metrics` object)."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from services.core.metrics import Group, MetricSpec, Slot, group_figures, slot_values, source_total

USAGE = (
    MetricSpec("pdf_views", Group.VIEWED, Slot.PDF),
    MetricSpec("html_views", Group.VIEWED, Slot.HTML),
    MetricSpec("supp_downloads", Group.VIEWED),
    MetricSpec("unique_visitors", Group.VIEWED, in_total=False),
)
CITATIONS = (MetricSpec("citations", Group.CITED),)
READERS = (MetricSpec("readers", Group.SAVED, Slot.READERS),)
NO_SLOTS = {"pdf": None, "html": None, "readers": None, "comments": None, "likes": None}


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (
            {"pdf_views": 3, "html_views": 10, "supp_downloads": 2, "unique_visitors": 7},
            {**NO_SLOTS, "pdf": 3, "html": 10, "total": 15},
        ),
        (
            {"pdf_views": 0, "html_views": 10},
            {**NO_SLOTS, "pdf": 0, "html": 10, "total": 10},
        ),
        (
            {"pdf_views": None, "html_views": 4},
            {**NO_SLOTS, "html": 4, "total": 4},
        ),
        (
            {"pdf_views": 0, "html_views": 0, "supp_downloads": 0},
            {**NO_SLOTS, "pdf": 0, "html": 0, "total": 0},
        ),
        ({}, {**NO_SLOTS, "total": None}),
        ({"unique_visitors": 9}, {**NO_SLOTS, "total": None}),
    ],
)
def test_slot_values_keep_null_apart_from_zero(
    values: Mapping[str, int | None], expected: dict[str, int | None]
) -> None:
    """An unreported slot is None, a reported zero is 0; total sums counting metrics only."""
    assert slot_values(USAGE, values) == expected


def test_slot_values_always_list_every_slot_and_total() -> None:
    """The metrics object has exactly ALM's five slots plus total, even for a citation source."""
    assert slot_values(CITATIONS, {"citations": 27}) == {**NO_SLOTS, "total": 27}


def test_metrics_sharing_a_slot_add_up() -> None:
    """Two metrics mapped to one slot fill it with their sum (a None one is skipped)."""
    specs = (
        MetricSpec("html_views", Group.VIEWED, Slot.HTML),
        MetricSpec("abstract_views", Group.VIEWED, Slot.HTML),
        MetricSpec("figure_views", Group.VIEWED, Slot.HTML),
    )
    values = {"html_views": 10, "abstract_views": 5, "figure_views": None}
    assert slot_values(specs, values)["html"] == 15


def test_slot_values_accept_a_generator_of_specs() -> None:
    """Specs given as a one-shot iterable still fill both the slots and the total."""
    result = slot_values((s for s in USAGE), {"pdf_views": 1, "html_views": 2})
    assert result["pdf"] == 1
    assert result["total"] == 3


@pytest.mark.parametrize(
    ("values", "total"),
    [
        ({}, None),
        ({"unique_visitors": 100}, None),
        ({"pdf_views": None, "html_views": None}, None),
        ({"pdf_views": 0}, 0),
        ({"pdf_views": 3, "unique_visitors": 100}, 3),
        ({"pdf_views": 3, "html_views": 4, "supp_downloads": 5, "unique_visitors": 100}, 12),
        ({"pdf_views": 3, "html_views": None}, 3),
        ({"pdf_views": 3, "not_a_declared_metric": 50}, 3),
    ],
)
def test_source_total_ignores_non_counting_metrics(
    values: Mapping[str, int | None], total: int | None
) -> None:
    """The total sums declared metrics with in_total=True; None when none was reported."""
    assert source_total(USAGE, values) == total


def test_group_figures_sum_counting_metrics_per_group() -> None:
    """Each group sums its sources' counting metrics; every group appears, 0 when empty."""
    rows = [
        (CITATIONS, {"citations": 10}),
        (CITATIONS, {"citations": 12}),
        (READERS, {"readers": 5}),
        (USAGE, {"pdf_views": 3, "html_views": None, "unique_visitors": 100}),
    ]
    assert group_figures(rows) == {
        "viewed": 3,
        "saved": 5,
        "discussed": 0,
        "cited": 22,
        "recommended": 0,
    }


def test_group_figures_of_no_sources_are_all_zero() -> None:
    """A work without sources still has every group, at zero."""
    assert group_figures([]) == {
        "viewed": 0,
        "saved": 0,
        "discussed": 0,
        "cited": 0,
        "recommended": 0,
    }
