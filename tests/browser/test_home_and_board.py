"""The home page and a source's leaderboard in Chromium, over a store the pipeline filled from
the stub upstream plus a few works with known counts: the leaderboard, reached from /sources
with the keyboard, orders by that source's count (each row's count is that work's count from
the source on the API) and pages on; the home page shows each group's leaders as the API's
summary gives them (the first one's figure is its work's group figure), and its search box
sends `q` to /works."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.async_api import Page

from services.core.works import Work
from tests.browser.conftest import get_json, refreshed_site, screenshot
from tests.contracts.store import T0, apply, obs

DOI = "10.7717/peerj.4375"
CROSSREF = {"10.5555/b1": 400, "10.5555/b2": 7, "10.5555/b3": 400, "10.5555/b4": 52}


@pytest.fixture
async def url(tmp_path: Path) -> AsyncIterator[str]:
    async with refreshed_site(tmp_path, [DOI]) as (base, kit):
        await kit.store.register([Work(w, doi=w, title=f"Known work {w[-2:]}") for w in CROSSREF])
        await apply(
            kit.store, [obs(w, "crossref", T0, {"citations": n}) for w, n in CROSSREF.items()]
        )
        yield base


async def _crossref_count(url: str, work_path: str) -> int:
    work = await get_json(f"{url}/api/v1{work_path}")
    return next(s["alm"]["total"] for s in work["sources"] if s["name"] == "crossref")


async def _rows(page: Page) -> list[tuple[int, str, int]]:
    out = []
    for row in await page.locator("tbody tr").all():
        rank = await row.locator('td[data-label="Rank"]').inner_text()
        link = await row.locator("th a").get_attribute("href")
        count = await row.locator('td[data-label="Count"]').inner_text()
        out.append((int(rank.replace(",", "")), link or "", int(count.replace(",", ""))))
    return out


async def test_the_leaderboard_orders_by_that_source_s_count(url: str, page: Page) -> None:
    await page.goto(f"{url}/sources")
    link = page.locator('tr#crossref th a[href="/sources/crossref"]')
    await link.focus()
    async with page.expect_navigation():
        await page.keyboard.press("Enter")
    assert page.url == f"{url}/sources/crossref"
    assert await page.title() == "Crossref: most citations · ALM"
    await screenshot(page, "board")
    rows = await _rows(page)
    assert len(rows) == len(CROSSREF) + 1  # the seeded works and the refreshed one
    counts = [await _crossref_count(url, path) for _, path, _ in rows]
    assert [c for _, _, c in rows] == counts == sorted(counts, reverse=True)
    assert [r for r, _, _ in rows] == list(range(1, len(rows) + 1))
    ties = [path for _, path, c in rows if c == 400]
    assert ties == sorted(ties) == ["/works/10.5555/b1", "/works/10.5555/b3"]
    # two a page: the next-page link walks the same order
    await page.goto(f"{url}/sources/crossref?per_page=2")
    walked = await _rows(page)
    while await page.locator('a[rel="next"]').count():
        async with page.expect_navigation():
            await page.locator('a[rel="next"]').click()
        walked += await _rows(page)
    await screenshot(page, "board-last-page")
    assert walked == rows
    alternate = await page.locator('link[rel="alternate"]').get_attribute("href")
    assert alternate and alternate.startswith("/api/v1/sources/crossref/top?cursor=")
    await page.goto(f"{url}/sources/nosuch")
    assert await page.title() == "No such source · ALM"


async def test_the_home_page_shows_the_group_leaders(url: str, page: Page) -> None:
    await page.goto(url + "/")
    assert await page.title() == "Article-Level Metrics · ALM"
    await screenshot(page, "home")
    summary = await get_json(f"{url}/api/v1/summary")
    for group in ("cited", "viewed", "discussed"):
        items = page.locator(f'#leaders-{group} li[data-group="{group}"]')
        hrefs = [await i.locator("a").first.get_attribute("href") for i in await items.all()]
        assert hrefs == [f"/works/{w['id']}" for w in summary["leaders"][group]["data"]]
    cited = summary["leaders"]["cited"]["data"]
    assert [w["id"] for w in cited] == [DOI, "10.5555/b1", "10.5555/b3", "10.5555/b4", "10.5555/b2"]
    for w in cited:  # each figure is its work's, as the work's API gives it
        assert (await get_json(f"{url}/api/v1/works/{w['id']}"))["groups"]["cited"] == w["value"]
    assert [w["value"] for w in cited] == sorted((w["value"] for w in cited), reverse=True)
    shown = await page.locator("#leaders-cited li .num").first.inner_text()
    assert int(shown.replace(",", "")) == cited[0]["value"]
    assert await page.locator("#works-count").inner_text() == str(summary["works"])
    box = page.get_by_label("Search works")
    await box.fill("peerj")
    async with page.expect_navigation():
        await box.press("Enter")
    assert urlsplit(page.url).path == "/works"
    assert parse_qs(urlsplit(page.url).query) == {"q": ["peerj"]}
