"""Search finds a sample work by a title word, in Chromium: a work registered and fetched by the
pipeline from the stub upstream is found by a word of the title the pipeline learned, typed in
the site's search box with the keyboard; the result links to the work's page and its DOI; the
source filter keeps it (its counts are non-zero) and the JSON alternate lists the same work."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Page

from services.api.app import init_app
from services.bootstrap import api_context
from services.embedded import refresh_until_idle
from services.settings import Settings
from tests.browser.conftest import screenshot
from tests.unit.pipeline_kit import pipeline_kit

DOI = "10.7717/peerj.4375"


@pytest.fixture
async def url(tmp_path: Path) -> AsyncIterator[str]:
    async with pipeline_kit(tmp_path) as kit:
        await kit.register([DOI])
        await refresh_until_idle(kit.pipeline)
        settings = Settings(data_dir=tmp_path, status_cache_seconds=0)
        app = init_app(api_context(settings, store=kit.store, bus=kit.bus, clock=kit.clock))
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        try:
            yield str(server.make_url("")).rstrip("/")
        finally:
            await server.close()


async def _json(url: str) -> Any:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        assert resp.status == 200
        return await resp.json()


async def test_search_finds_a_sample_work_by_a_title_word(url: str, page: Page) -> None:
    work = await _json(f"{url}/api/v1/works/{DOI}")
    title = work["title"]
    word = max(re.findall(r"[A-Za-z]{4,}", title), key=len)  # a word of the learned title
    await page.goto(f"{url}/works")
    box = page.get_by_role("searchbox")
    await box.focus()
    await page.keyboard.type(word.upper())
    async with page.expect_navigation():
        await page.keyboard.press("Enter")
    assert await page.title() == "Search works · ALM"
    results = page.locator("ol.results li")
    assert await results.count() >= 1
    hit = results.filter(has_text=title).first
    assert await hit.get_by_role("link", name=f"doi:{DOI}").get_attribute("href") == (
        f"https://doi.org/{DOI}"
    )
    await screenshot(page, "results")
    alternate = await page.locator('link[rel="alternate"]').get_attribute("href")
    listed = await _json(f"{url}{alternate}")
    assert DOI in [w["work_id"] for w in listed["data"]]
    counted = next(s["name"] for s in work["sources"] if any(v for v in s["metrics"].values()))
    await page.get_by_label("Counted by").select_option(counted)
    async with page.expect_navigation():
        await page.get_by_role("button", name="Search").click()
    assert await page.locator("ol.results li").filter(has_text=title).count() == 1
    await page.get_by_role("link", name=title).focus()
    async with page.expect_navigation():
        await page.keyboard.press("Enter")
    assert page.url == f"{url}/works/{DOI}"
