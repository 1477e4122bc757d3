"""Sign-up as a person does it, in Chromium: find the page from the navigation, fill the form
with the keyboard, get a key, and use that key on the API; a wrong address gets the form back
with the problem announced and what was typed kept."""

from __future__ import annotations

import aiohttp
from playwright.async_api import Page

from tests.browser.conftest import Site, screenshot


async def test_signup_issues_a_key_that_then_works_on_the_api(site: Site, page: Page) -> None:
    await page.goto(f"{site.url}/signup")
    assert await page.title() == "Get an API key · ALM"
    await screenshot(page, "form")
    nav = page.get_by_role("navigation", name="Site")
    assert await nav.get_by_role("link", name="Get an API key").get_attribute("href") == "/signup"
    # keyboard only: the skip link, the navigation, then the form's fields in order
    name = page.get_by_label("Your name or your project's")
    await name.focus()
    await page.keyboard.type("Browser Lab")
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.name") == "email"
    await page.keyboard.type("lab@example.org")
    async with page.expect_navigation() as navigation:
        await page.keyboard.press("Enter")
    response = await navigation.value
    assert response is not None and response.status == 201
    assert await page.title() == "Your API key · ALM"
    key = (await page.locator("#key").inner_text()).strip()
    await screenshot(page, "key")
    assert key.startswith("alm_")
    async with aiohttp.ClientSession() as http:
        bearer = {"Authorization": f"Bearer {key}"}
        async with http.get(f"{site.url}/api/v1/keys/me", headers=bearer) as me:
            assert me.status == 200
            body = await me.json()
        assert (body["name"], body["role"]) == ("Browser Lab", "reader")
        async with http.get(f"{site.url}/api/v1/works", params={"api_key": key}) as works:
            assert works.status == 200 and "X-RateLimit-Limit" in works.headers
    stored = await site.keys.list_keys()
    assert [k.name for k in stored] == ["Browser Lab"] and stored[0].email == "lab@example.org"


async def test_a_wrong_address_gets_the_form_back(site: Site, page: Page) -> None:
    await page.goto(f"{site.url}/signup")
    await page.get_by_label("Your name or your project's").fill("<b>Lab</b>")
    # past the browser's own check of type=email: the server's is what counts
    await page.get_by_label("E-mail address").evaluate("e => e.type = 'text'")
    await page.get_by_label("E-mail address").fill("lab at example")
    async with page.expect_navigation() as navigation:
        await page.get_by_role("button", name="Get a key").click()
    response = await navigation.value
    assert response is not None and response.status == 400
    alert = page.get_by_role("alert")
    assert "'email' must be an address" in await alert.inner_text()
    assert await page.get_by_label("Your name or your project's").input_value() == "<b>Lab</b>"
    assert await page.locator("b").count() == 0  # shown as text, not markup
    await screenshot(page, "wrong-address")
    assert await site.keys.list_keys() == []
