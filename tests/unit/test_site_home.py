"""The home page (services/site/home.py) and its JSON twin `/api/v1/summary`: the counts of
works and sources, each headline group's leaders equal to the works' own group figures (as
`/api/v1/works/{id}` gives them), the recently changed works from the change topic, and the
search box (a GET form to /works with q)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from services.core.works import Work
from services.embedded import refresh_until_idle
from tests.contracts.store import T0, apply, obs
from tests.unit.pipeline_kit import api_client, pipeline_kit

PEERJ = "10.7717/peerj.4375"
# crossref + openalex citations: s1 leads by the sum (30) though s2 tops crossref alone (25)
SEEDED = {
    "10.5555/s1": {"crossref": 15, "openalex": 15},
    "10.5555/s2": {"crossref": 25},
    "10.5555/s3": {"openalex": 3, "crossref": 1},
}


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    async with pipeline_kit(tmp_path) as kit:
        await kit.register([PEERJ])
        await refresh_until_idle(kit.pipeline)
        await kit.store.register([Work(w, doi=w, title=f"Seeded {w}") for w in SEEDED])
        await apply(
            kit.store,
            [
                obs(w, source, T0, {"citations": n})
                for w, counts in SEEDED.items()
                for source, n in counts.items()
            ],
        )
        async with api_client(kit, tmp_path) as c:
            yield c


async def test_the_summary_counts_and_leaders_match_the_works(
    client: TestClient[Any, Any],
) -> None:
    data = await (await client.get("/api/v1/summary")).json()
    assert data["works"] == 4 and data["sources"] == len(
        (await (await client.get("/api/v1/sources")).json())["data"]
    )
    cited = data["leaders"]["cited"]["data"]
    assert cited and data["leaders"]["cited"]["exact"]
    figures = {}
    for w in [PEERJ, *SEEDED]:
        figures[w] = (await (await client.get(f"/api/v1/works/{w}")).json())["groups"]
    for group, board in data["leaders"].items():
        expected = sorted(
            ((w, g[group]) for w, g in figures.items() if g[group]), key=lambda x: (-x[1], x[0])
        )
        assert [(r["id"], r["value"]) for r in board["data"]] == expected[:5]
    ids = [r["id"] for r in cited]
    assert ids.index("10.5555/s1") < ids.index("10.5555/s2")
    assert set(data["leaders"]) == {"cited", "viewed", "discussed"}


async def test_the_page_shows_the_same_figures(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/")
    assert resp.status == 200 and resp.content_type == "text/html"
    html = await resp.text()
    data = await (await client.get("/api/v1/summary")).json()
    assert f'<strong id="works-count">{data["works"]:,}</strong>' in html
    assert f"{data['sources']:,} sources</a>" in html
    assert '<link rel="alternate" type="application/json" href="/api/v1/summary"' in html
    shown = re.findall(r'<li data-group="cited"><a href="/works/([^"]+)">', html)
    assert shown == [r["id"] for r in data["leaders"]["cited"]["data"]]
    assert '<a href="/works/10.5555/s1">Seeded 10.5555/s1</a>' in html
    assert re.search(r'<form method="get" action="/works" role="search">', html)
    assert re.search(r'<input type="search" name="q"', html)
    assert "<title>Article-Level Metrics · ALM</title>" in html


async def test_recently_changed_works_come_from_the_change_topic(
    client: TestClient[Any, Any],
) -> None:
    data = await (await client.get("/api/v1/summary")).json()
    # the refreshed work changed (the pipeline published it); the seeded ones were written
    # straight to the store, so no change was published for them
    assert [c["id"] for c in data["recent"]] == [PEERJ]
    assert data["recent"][0]["source"] and data["recent"][0]["at"]
    html = await (await client.get("/")).text()
    section = html[html.index('id="recent"') :]
    assert f'<a href="/works/{PEERJ}">' in section
