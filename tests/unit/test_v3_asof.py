"""API v3's `days`/`months`/`year` (ALM 2.x, rOpenSci alm 0.1): the cutoff rule on its own
(services/api/v3_asof.py) and through `/api/v3/articles` over a work with snapshots on several
days."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from services.aggregator.service import fold
from services.api.v3_asof import AsOf, parse_as_of, state_as_of
from services.core.aggregation import HistoryPoint, SourceState
from services.core.events import Observation, PeriodCount, SourceEvent, Status
from services.core.identifiers import parse_identifier
from services.embedded import refresh_until_idle
from tests.unit.pipeline_kit import Kit, api_client, pipeline_kit

PEERJ = "10.7717/peerj.4375"  # issued 2018-02-13 (the stub's Crossref record)
ISSUED = date(2018, 2, 13)
TODAY = date(2026, 11, 25)  # the kit's clock
# reddit's (comments, likes) snapshots; the kit's own sources are first fetched today
SNAPSHOTS = [
    (datetime(2018, 2, 20, 9, tzinfo=UTC), 2, 5),
    (datetime(2018, 4, 1, 9, tzinfo=UTC), 4, 9),
    (datetime(2019, 6, 10, 9, tzinfo=UTC), 7, 20),
    (datetime(2026, 11, 20, 9, tzinfo=UTC), 10, 30),
]


@pytest.mark.parametrize(
    ("days", "months", "year", "expected"),
    [
        ("10", None, None, AsOf(days=10)),
        (None, "6", "2019", AsOf(months=6, year=2019)),
        (" 3 ", None, None, AsOf(days=3)),
        ("0", "-2", "abc", AsOf()),
        ("1.5", "", "1899", AsOf()),
        (None, "1e3", "2101", AsOf()),
        ("99999999", None, "1900", AsOf(year=1900)),
    ],
)
def test_parse_ignores_bad_values(
    days: str | None, months: str | None, year: str | None, expected: AsOf
) -> None:
    """Positive integers only, years 1900-2100; anything else is ignored, as v3 ignores a bad
    `info` or `type`."""
    assert parse_as_of(days, months, year) == expected


@pytest.mark.parametrize(
    ("as_of", "issued", "cutoff"),
    [
        (AsOf(days=10), ISSUED, date(2018, 2, 23)),
        (AsOf(months=1), date(2020, 1, 31), date(2020, 2, 29)),  # clamped to the month's end
        (AsOf(months=14), ISSUED, date(2019, 4, 13)),
        (AsOf(year=2018), ISSUED, date(2018, 12, 31)),
        (AsOf(year=2018), None, date(2018, 12, 31)),
        (AsOf(days=10, year=2019), ISSUED, date(2018, 2, 23)),  # the earliest wins
        (AsOf(days=400, months=2, year=2019), ISSUED, date(2018, 4, 13)),
        (AsOf(days=10, months=3), None, None),  # no publication date: ignored
        (AsOf(year=2026), ISSUED, None),  # ends after today: the current figures
        (AsOf(days=3207), ISSUED, None),  # today itself: current
        (AsOf(days=3206), ISSUED, date(2026, 11, 24)),
        (AsOf(days=999999), ISSUED, None),
        (AsOf(), ISSUED, None),
    ],
)
def test_cutoff(as_of: AsOf, issued: date | None, cutoff: date | None) -> None:
    """The earliest asked cutoff of a work, None when the current figures are asked."""
    assert as_of.cutoff(issued, TODAY) == cutoff


def test_state_as_of_takes_the_last_snapshot_on_or_before() -> None:
    """The totals of the last snapshot on or before the cutoff, 0 for every metric before the
    first; upstream periods begun after the cutoff are left out."""
    now = datetime(2026, 11, 20, 9, tzinfo=UTC)
    periods = (
        PeriodCount("comments", "2018", 4),
        PeriodCount("comments", "2019-06", 3),
        PeriodCount("comments", "2019-06-11", 3),
    )
    state = SourceState("w", "reddit", {"comments": 10, "likes": 30}, now, periods=periods)
    points = [
        HistoryPoint("w", "reddit", date(2019, 6, 10), {"comments": 7, "likes": 20}),
        HistoryPoint("w", "reddit", date(2018, 2, 20), {"comments": 2, "likes": 5}),
    ]
    at, kept = state_as_of(state, points, date(2019, 6, 10))
    assert at.metrics == {"comments": 7, "likes": 20}
    assert [p.day for p in kept] == [date(2018, 2, 20), date(2019, 6, 10)]
    assert at.retrieved_at == datetime(2019, 6, 10, 23, 59, 59, 999999, tzinfo=UTC)
    assert [p.period for p in at.periods] == ["2018", "2019-06"]
    at, kept = state_as_of(state, points, date(2019, 6, 9))
    assert at.metrics == {"comments": 2, "likes": 5} and len(kept) == 1
    at, kept = state_as_of(state, points, date(2018, 2, 19))
    assert at.metrics == {"comments": 0, "likes": 0} and kept == [] and at.periods == ()


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    async with pipeline_kit(tmp_path) as kit:
        await kit.register([PEERJ])
        await refresh_until_idle(kit.pipeline)
        await _reddit_snapshots(kit)
        async with api_client(kit, tmp_path) as c:
            yield c


async def _reddit_snapshots(kit: Kit) -> None:
    work = await kit.store.find_work(parse_identifier(PEERJ))
    assert work is not None and work.issued == ISSUED
    for at, comments, likes in SNAPSHOTS:
        post = SourceEvent(f"reddit-{at.year}", at.isoformat(), f"https://reddit.com/{at.year}")
        obs = Observation(
            work.work_id,
            "reddit",
            at,
            Status.OK,
            {"comments": comments, "likes": likes},
            events=(post,),
        )
        key = (work.work_id, "reddit")
        await kit.store.write_aggregates(fold([obs], await kit.store.states([key])))


async def _reddit(client: TestClient[Any, Any], query: str) -> dict[str, Any]:
    resp = await client.get(f"/api/v3/articles?ids={PEERJ}&source=reddit&{query}")
    assert resp.status == 200, await resp.text()
    [article] = await resp.json()
    [source] = article["sources"]
    assert source["name"] == "reddit"
    return dict(source)


def _counts(source: dict[str, Any]) -> tuple[int, int, int]:
    metrics = source["metrics"]
    return metrics["comments"], metrics["likes"], metrics["total"]


@pytest.mark.parametrize(
    ("query", "counts"),
    [
        ("", (10, 30, 40)),
        ("days=7", (2, 5, 7)),  # 2018-02-20: the first snapshot's day itself
        ("days=10", (2, 5, 7)),
        ("days=46", (2, 5, 7)),  # 2018-03-31
        ("days=47", (4, 9, 13)),  # 2018-04-01
        ("days=6", (0, 0, 0)),  # before the first snapshot: nothing counted yet
        ("months=1", (2, 5, 7)),
        ("months=2", (4, 9, 13)),
        ("months=17", (7, 20, 27)),  # 2019-07-13
        ("year=2017", (0, 0, 0)),
        ("year=2018", (4, 9, 13)),
        ("year=2019", (7, 20, 27)),
        ("year=2025", (7, 20, 27)),
        ("year=2026", (10, 30, 40)),  # ends after today: current
        ("days=10&year=2019", (2, 5, 7)),  # the earliest wins
        ("months=2&days=400&year=2020", (4, 9, 13)),
        ("year=2019&months=1", (2, 5, 7)),
        ("days=abc", (10, 30, 40)),  # bad values are ignored
        ("days=0&months=-1&year=1800", (10, 30, 40)),
        ("days=x&year=2018", (4, 9, 13)),  # a good one still counts
    ],
)
async def test_v3_counts_as_of(
    client: TestClient[Any, Any], query: str, counts: tuple[int, int, int]
) -> None:
    """`metrics` of a source as of the cutoff: its last snapshot on or before it."""
    assert _counts(await _reddit(client, query)) == counts


async def test_v3_summary_figures_as_of(client: TestClient[Any, Any]) -> None:
    """The article's group figures follow the cutoff too: the citation sources first fetched
    today had counted nothing by 2018."""
    now = (await (await client.get(f"/api/v3/articles?ids={PEERJ}&info=summary")).json())[0]
    assert now["shares"] == 40 and now["citations"] > 0
    resp = await client.get(f"/api/v3/articles?ids={PEERJ}&info=summary&year=2018")
    then = (await resp.json())[0]
    assert then["shares"] == 13 and then["citations"] == 0
    crossref = await client.get(f"/api/v3/articles?ids={PEERJ}&source=crossref&months=3")
    [source] = (await crossref.json())[0]["sources"]
    assert source["metrics"]["citations"] == source["metrics"]["total"] == 0


async def test_v3_charts_stop_at_the_cutoff(client: TestClient[Any, Any]) -> None:
    """`by_day`/`by_month`/`by_year` end at the cutoff and add up to its counts; none before
    the first snapshot."""
    now = await _reddit(client, "info=history")
    assert [r["year"] for r in now["by_year"]] == [2018, 2019, 2026]
    source = await _reddit(client, "info=history&year=2018")
    assert [(r["year"], r["total"]) for r in source["by_year"]] == [(2018, 13)]
    assert [(r["month"], r["total"]) for r in source["by_month"]] == [(2, 7), (4, 6)]
    assert [(r["day"], r["total"]) for r in source["by_day"]] == [(20, 7)]
    source = await _reddit(client, "info=detail&days=10")
    assert [(r["year"], r["month"], r["total"]) for r in source["by_month"]] == [(2018, 2, 7)]
    assert source["update_date"] == "2018-02-23T23:59:59Z"
    source = await _reddit(client, "info=history&days=6")
    assert source["by_day"] is None and source["by_month"] is None and source["by_year"] is None


async def test_v3_events_as_of(client: TestClient[Any, Any]) -> None:
    """`info=event`: the events dated on or before the cutoff."""
    now = await _reddit(client, "info=event")
    assert len(now["events"]) == 3  # one post a year: 2018, 2019, 2026
    then = await _reddit(client, "info=event&year=2018")
    assert [e["event_url"] for e in then["events"]] == ["https://reddit.com/2018"]
    assert (await _reddit(client, "info=event&days=6"))["events"] == []


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (
            "info=history",
            [
                ("2026-11-20T09:00:00Z", 40),  # the last retrieval: the source's update_date
                ("2019-06-10T23:59:59Z", 27),
                ("2018-04-01T23:59:59Z", 13),
                ("2018-02-20T23:59:59Z", 7),
            ],
        ),
        ("info=detail&year=2026", None),  # ends after today: as without a cutoff
        ("info=history&year=2018", [("2018-04-01T23:59:59Z", 13), ("2018-02-20T23:59:59Z", 7)]),
        ("info=detail&days=7", [("2018-02-20T23:59:59Z", 7)]),  # the first snapshot's day
        ("info=history&days=6", []),  # before any retrieval
    ],
)
async def test_v3_histories_as_of(
    client: TestClient[Any, Any], query: str, expected: list[tuple[str, int]] | None
) -> None:
    """`histories`: the last retrieval, then each earlier snapshot at its day's end, newest
    first; none after the cutoff (v3_histories.py)."""
    source = await _reddit(client, query)
    rows = [(h["update_date"], h["total"]) for h in source["histories"]]
    if expected is None:
        expected = [
            (h["update_date"], h["total"])
            for h in (await _reddit(client, "info=history"))["histories"]
        ]
    assert rows == expected
    if rows:
        assert rows[0][1] == source["metrics"]["total"]


@pytest.mark.parametrize("info", ["summary", "event", "totals", ""])
async def test_v3_histories_only_with_history_or_detail(
    client: TestClient[Any, Any], info: str
) -> None:
    """ALM 2.x: `histories` with `info=history` or `info=detail` only."""
    resp = await client.get(f"/api/v3/articles?ids={PEERJ}&source=reddit&info={info}")
    [article] = await resp.json()
    assert all("histories" not in s for s in article.get("sources", []))
