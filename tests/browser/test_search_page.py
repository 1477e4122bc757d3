"""Search finds a sample work by a title word, in Chromium: a work registered and fetched by the
pipeline from the stub upstream is found by a word of the title the pipeline learned, typed in
the site's search box with the keyboard; the result links to the work's page and its DOI; the
source filter keeps it (its counts are non-zero) and the JSON alternate lists the same work."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Page

from tests.browser.conftest import get_json, refreshed_site, screenshot

DOI = "10.7717/peerj.4375"


@pytest.fixture
async def url(tmp_path: Path) -> AsyncIterator[str]:
    async with refreshed_site(tmp_path, [DOI]) as (base, _):
        yield base


async def test_search_finds_a_sample_work_by_a_title_word(url: str, page: Page) -> None:
    work = await get_json(f"{url}/api/v1/works/{DOI}")
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
    listed = await get_json(f"{url}{alternate}")
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
