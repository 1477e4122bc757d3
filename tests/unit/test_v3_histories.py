"""API v3's `histories` (ALM 2.x `retrieval_histories`): the rule on its own
(services/api/v3_histories.py); through the API in test_v3_asof.py and, as the clients read
it, in test_api_v3_clients.py."""

from __future__ import annotations

from datetime import UTC, date, datetime

from services.api.v3_histories import histories
from services.core.aggregation import HistoryPoint, SourceState
from services.core.metrics import Group, MetricSpec

SPECS = (
    MetricSpec("cited", Group.CITED, slot=None, in_total=True),
    MetricSpec("noise", Group.CITED, slot=None, in_total=False),
)
AT = datetime(2024, 5, 9, 14, 3, 7, 250000, tzinfo=UTC)
POINTS = [
    HistoryPoint("w", "s", date(2023, 1, 4), {"cited": 2, "noise": 50}),
    HistoryPoint("w", "s", date(2024, 5, 9), {"cited": 9, "noise": 70}),  # the retrieval's day
    HistoryPoint("w", "s", date(2023, 8, 30), {"cited": 5}),
]
STATE = SourceState("w", "s", {"cited": 9, "noise": 70}, AT)


def _rows(cutoff: date | None = None, state: SourceState | None = STATE) -> list[tuple[str, int]]:
    out = histories(SPECS, state, POINTS, cutoff)
    assert all(list(h) == ["update_date", "total"] for h in out)  # R 0.1 reads by position
    return [(h["update_date"], h["total"]) for h in out]


def test_last_retrieval_then_earlier_snapshots_newest_first() -> None:
    """The retrieval's own time (whole seconds) and total first; the snapshot of its day is
    that retrieval; earlier ones at the end of their day; `total` counts counting metrics."""
    assert _rows() == [
        ("2024-05-09T14:03:07Z", 9),
        ("2023-08-30T23:59:59Z", 5),
        ("2023-01-04T23:59:59Z", 2),
    ]


def test_cutoff_leaves_out_what_came_after() -> None:
    """A cutoff before the last retrieval: the snapshots on or before its day only."""
    assert _rows(date(2023, 8, 30)) == [("2023-08-30T23:59:59Z", 5), ("2023-01-04T23:59:59Z", 2)]
    assert _rows(date(2023, 8, 29)) == [("2023-01-04T23:59:59Z", 2)]
    assert _rows(date(2023, 1, 3)) == []
    assert _rows(date(2024, 5, 9)) == _rows()  # the retrieval's day: it is in
    assert _rows(date(2030, 1, 1)) == _rows()


def test_never_fetched_and_nothing_counted() -> None:
    """A source never fetched has none; a total nothing was reported for is 0, not null."""
    assert _rows(state=None) == []
    assert _rows(state=SourceState("w", "s", {}, None)) == []
    out = histories(SPECS, SourceState("w", "s", {"noise": 3}, AT), [], None)
    assert out == [{"update_date": "2024-05-09T14:03:07Z", "total": 0}]
