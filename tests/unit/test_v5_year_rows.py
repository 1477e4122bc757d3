"""v5/v3 `by_year` where no month is known: source_views works years out only then (it skips
them where months exist, since `by_year` is their sum), so an upstream's yearly counts still
show (services/api/lookup.py, v5_present.histories)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from services.api.lookup import source_views
from services.api.state import CLOCK, STORE
from services.api.v5_present import histories
from services.core.aggregation import HistoryPoint, SourceState
from services.core.events import PeriodCount, SourceEvent
from services.core.works import Work
from services.fetchers.registry import catalog

NOW = datetime(2026, 11, 25, 12, tzinfo=UTC)


class _History:
    """The two reads source_views makes, over fixed snapshots."""

    def __init__(self, points: list[HistoryPoint]) -> None:
        self.points = points

    async def history(self, work_id: str, source: str | None) -> list[HistoryPoint]:
        return [p for p in self.points if p.work_id == work_id]

    async def events(self, work_id: str, source: str) -> list[SourceEvent]:
        return []


def _request(points: list[HistoryPoint]) -> web.Request:
    app = web.Application()
    fake: Any = _History(points)  # an in-memory fake of the two Store reads
    app[STORE] = fake
    app[CLOCK] = lambda: NOW
    return make_mocked_request("GET", "/api/v5/articles", app=app)


async def test_years_of_an_upstream_without_months() -> None:
    """A source whose upstream reports years only, and no month from snapshots: by_year from
    the upstream's years (to the year of the totals), by_month empty."""
    cat = catalog()
    metric = cat.specs("openalex")[0].name
    periods = (PeriodCount(metric, "2024", 3), PeriodCount(metric, "2025", 4))
    state = SourceState("w", "openalex", {}, NOW, periods=periods)
    [view] = await source_views(_request([]), Work("w"), [state], ("openalex",), False)
    rows = histories(cat, view)
    assert rows["by_month"] == []
    assert [(r.period, r.total) for r in rows["by_year"]] == [
        ({"year": 2024}, 3),
        ({"year": 2025}, 4),
        ({"year": 2026}, 0),  # upstream years reach to the year of the totals
    ]


async def test_years_are_the_months_sum_where_months_exist() -> None:
    """Snapshots give months: by_year is their per-year sum."""
    cat = catalog()
    metric = cat.specs("crossref")[0].name
    points = [HistoryPoint("w", "crossref", date(2025, 3, 1), {metric: 2})]
    state = SourceState("w", "crossref", {metric: 5}, NOW)
    [view] = await source_views(_request(points), Work("w"), [state], ("crossref",), False)
    rows = histories(cat, view)
    assert [(r.period, r.total) for r in rows["by_month"]] == [
        ({"year": 2025, "month": 3}, 2),
        ({"year": 2026, "month": 11}, 3),
    ]
    assert [(r.period, r.total) for r in rows["by_year"]] == [
        ({"year": 2025}, 2),
        ({"year": 2026}, 3),
    ]
