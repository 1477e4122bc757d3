"""A work's page in Chromium, over a store the pipeline filled from the stub upstream: its numbers
are the API's, each source's chart has one point per period of the API's history, the period
switch (a link, reached with the keyboard) redraws the charts by year, and the events and the
provenance are linked."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Page

from services.api.app import init_app
from services.bootstrap import api_context
from services.embedded import refresh_until_idle
from services.settings import Settings
from tests.browser.conftest import get_json, refreshed_site, screenshot
from tests.unit.pipeline_kit import pipeline_kit

DOI = "10.7717/peerj.4375"


@pytest.fixture
async def url(tmp_path: Path) -> AsyncIterator[str]:
    async with refreshed_site(tmp_path, [DOI]) as (base, _):
        yield base


async def _points_match(page: Page, url: str, period: str) -> int:
    """Each source's chart has one point per dated bucket of the API's history, with its
    count; the number of points drawn."""
    history = await get_json(f"{url}/api/v1/works/{DOI}/history?period={period}")
    drawn = 0
    for h in history["data"]:
        dated = [b["total"] for b in h["buckets"] if not b.get("undated")]
        circles = page.locator(f"#source-{h['source']} svg circle.point")
        values = [
            int(v or 0)
            for v in await circles.evaluate_all("cs => cs.map(c => c.getAttribute('data-value'))")
        ]
        assert values == dated, (h["source"], period)
        drawn += len(values)
    return drawn


async def test_a_work_page_shows_the_api_s_numbers_and_history(url: str, page: Page) -> None:
    await page.goto(f"{url}/works/https://doi.org/{DOI}")
    work = await get_json(f"{url}/api/v1/works/{DOI}")
    assert await page.title() == f"{work['title']} · ALM"
    for group, value in work["groups"].items():
        shown = await page.locator(f'[data-group="{group}"]').inner_text()
        assert int(shown.replace(",", "")) == value
    for source in work["sources"]:
        total = await page.locator(
            f'[data-source="{source["name"]}"][data-slot="total"]'
        ).inner_text()
        expected = (source["alm"] or {}).get("total")
        assert total == ("—" if expected is None else f"{expected:,}")
        link = page.locator(f'#source-{source["name"]} a[href="{source["provenance"]}"]')
        assert await link.count() == 1
    assert await _points_match(page, url, "month") > 0
    await screenshot(page, "month")

    by_year = page.get_by_role("link", name="by year")
    await by_year.focus()
    async with page.expect_navigation():
        await page.keyboard.press("Enter")
    assert page.url.endswith("?period=year#history")
    assert await page.get_by_role("link", name="by year").get_attribute("aria-current") == "page"
    assert await _points_match(page, url, "year") > 0
    chart = page.locator("svg.chart").first
    assert "by year" in (await chart.get_attribute("aria-label") or "")
    await screenshot(page, "year")

    await page.get_by_text("as a table").first.click()  # the chart's text alternative
    assert await page.locator("table.history").first.is_visible()
    await screenshot(page, "table")


async def test_the_numbers_follow_the_change_stream(tmp_path: Path, page: Page) -> None:
    """With script on, a page opened before the work's numbers came shows them when they come
    (the change stream, then the page read again), without a reload."""
    async with pipeline_kit(tmp_path) as kit:
        await kit.register([DOI])  # registered, not fetched yet
        settings = Settings(data_dir=tmp_path, status_cache_seconds=0)
        app = init_app(api_context(settings, store=kit.store, bus=kit.bus, clock=kit.clock))
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        try:
            url = str(server.make_url("")).rstrip("/")
            errors: list[str] = []
            refused: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("response", lambda r: refused.append(r.url) if r.status >= 400 else None)
            await page.goto(f"{url}/works/{DOI}")
            cited = page.locator('[data-group="cited"]')
            assert await cited.inner_text() == "0"
            await page.locator('#live[data-stream="open"]').wait_for(state="attached")
            await page.wait_for_timeout(300)  # the stream's subscription follows its headers
            await refresh_until_idle(kit.pipeline)
            work = await get_json(f"{url}/api/v1/works/{DOI}")
            expected = f"{work['groups']['cited']:,}"
            assert expected != "0"
            await page.wait_for_function(
                "n => document.querySelector('[data-group=cited]').textContent === n",
                arg=expected,
                timeout=10_000,
            )
            assert "updated" in await page.locator("#live").inner_text()
            assert await page.locator("svg.chart circle.point").count() > 0
            assert [u for u in refused if not u.endswith("/favicon.ico")] == []
            assert [e for e in errors if "Failed to load resource" not in e] == []  # no CSP refusal
            await screenshot(page, "live")
        finally:
            await server.close()
