"""An admin pauses a source from the page, in Chromium: sign in with an admin key, pause
Crossref with a reason, see it paused on the page and on the API, resume it, revoke a reader's
key on the keys page (refused by the API at once); a reader signed in sees no controls;
signing out forgets the key."""

from __future__ import annotations

from datetime import UTC, datetime

import aiohttp
from playwright.async_api import Page

from services.core.keys import Role
from services.keyring import create_key
from tests.browser.conftest import Site, screenshot

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


async def _sign_in(site: Site, page: Page, key: str) -> None:
    await page.goto(f"{site.url}/signin")
    await page.get_by_label("API key").fill(key)
    async with page.expect_navigation():
        await page.get_by_role("button", name="Sign in").click()


async def _crossref(site: Site) -> dict[str, object]:
    async with aiohttp.ClientSession() as http, http.get(f"{site.url}/api/v1/sources") as resp:
        body = await resp.json()
    return next(s for s in body["data"] if s["name"] == "crossref")


async def test_an_admin_pauses_and_resumes_a_source_from_the_page(site: Site, page: Page) -> None:
    _, admin = await create_key(site.keys, "ops", Role.ADMIN, NOW)
    await page.goto(f"{site.url}/sources")
    assert await page.get_by_role("button", name="Pause Crossref").count() == 0  # signed out
    await _sign_in(site, page, admin)
    assert page.url == f"{site.url}/sources" and await page.title() == "Sources · ALM"
    row = page.locator("tr#crossref")
    assert "collecting" in await row.inner_text()
    await screenshot(page, "admin")
    await page.get_by_label("Reason for pausing Crossref").fill("quota exceeded upstream")
    async with page.expect_navigation() as navigation:
        await page.get_by_role("button", name="Pause Crossref").click()
    response = await navigation.value
    assert response is not None and response.status == 200  # after the 303
    assert "paused" in await row.inner_text()
    assert "quota exceeded upstream" in await row.inner_text()
    await screenshot(page, "paused")
    crossref = await _crossref(site)
    assert (crossref["paused"], crossref["pause_reason"]) == (True, "quota exceeded upstream")
    async with page.expect_navigation():
        await page.get_by_role("button", name="Resume Crossref").click()
    assert "collecting" in await row.inner_text()
    assert (await _crossref(site))["paused"] is False
    record, reader = await create_key(site.keys, "journal", Role.READER, NOW)
    await page.get_by_role("link", name="API keys").click()
    await page.wait_for_url(f"{site.url}/keys")
    await screenshot(page, "keys")
    async with page.expect_navigation():
        await page.get_by_role("button", name=f"Revoke {record.key_id}").click()
    assert "revoked" in await page.locator(f"tr#key-{record.key_id}").inner_text()
    async with aiohttp.ClientSession() as http:
        me = await http.get(f"{site.url}/api/v1/keys/me", headers={"X-API-Key": reader})
        assert me.status == 401
        me.release()
    async with page.expect_navigation():
        await page.evaluate("""() => { const f = document.createElement('form');
            f.method = 'post'; f.action = '/signout'; document.body.append(f); f.submit(); }""")
    await page.goto(f"{site.url}/sources")
    assert await page.get_by_role("button", name="Pause Crossref").count() == 0


async def test_a_reader_sees_the_sources_without_controls(site: Site, page: Page) -> None:
    _, reader = await create_key(site.keys, "reader", Role.READER, NOW)
    await _sign_in(site, page, reader)
    assert await page.get_by_role("table").count() == 1
    assert await page.get_by_role("button", name="Pause Crossref").count() == 0
    link = page.locator('link[rel="alternate"]')
    assert await link.get_attribute("href") == "/api/v1/sources"
    await screenshot(page, "reader")


async def test_a_wrong_key_is_refused_on_the_form(site: Site, page: Page) -> None:
    await _sign_in(site, page, "alm_000000000000_" + "A" * 43)
    assert page.url == f"{site.url}/signin"
    assert "wrong API key" in await page.get_by_role("alert").inner_text()
    await screenshot(page, "wrong-key")
