"""The badge as another site embeds it: an `<img>` on a page of another origin that Chromium
draws (an SVG it can decode), and the SVG opened on its own is an SVG document, not HTML."""

from __future__ import annotations

from datetime import UTC, datetime

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from playwright.async_api import Page

from services.core.keys import Role
from services.keyring import create_key
from tests.browser.conftest import Site, screenshot

DOI = "10.7717/peerj.4375"


async def test_a_badge_is_an_image_another_site_can_embed(site: Site, page: Page) -> None:
    _, admin = await create_key(site.keys, "ops", Role.ADMIN, datetime.now(UTC))
    async with aiohttp.ClientSession() as http:  # a work without numbers yet
        headers = {"Authorization": f"Bearer {admin}"}
        async with http.post(f"{site.url}/api/v1/works", json=[DOI], headers=headers) as resp:
            assert resp.status == 200
    await page.goto(f"{site.url}/badge/{DOI}.svg")
    assert await page.evaluate("document.documentElement.tagName") == "svg"

    async def journal(request: web.Request) -> web.Response:
        img = f'<img id="b" alt="ALM metrics" src="{site.url}/badge/{DOI}.svg">'
        return web.Response(text=f"<!doctype html><p>Metrics: {img}</p>", content_type="text/html")

    other = web.Application()
    other.router.add_get("/", journal)
    server = TestServer(other, host="127.0.0.1")  # another origin: another port
    await server.start_server()
    try:
        await page.goto(str(server.make_url("/")))
        badge = page.locator("#b")
        await page.wait_for_function("document.getElementById('b').complete")
        width = await badge.evaluate("b => b.naturalWidth")
        height = await badge.evaluate("b => b.naturalHeight")
        assert width > 50 and height == 20, (width, height)
        await screenshot(page, "embedded")
    finally:
        await server.close()
