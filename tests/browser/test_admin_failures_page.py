"""An admin sees what failed, in Chromium: signed in with an admin key, the /sources page's
"In error" count leads to the failed refreshes of that source (the work, its error, a link to
its page), and the admin pages' navigation to the dead letters (the letter's reason and work).
A reader signed in is refused both pages."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Page

from services.adapters.memory.bus import MemoryBus
from services.adapters.sqlite import SqliteStore
from services.adapters.sqlite.keys import SqliteKeyStore
from services.aggregator.service import fold
from services.api.app import init_app
from services.bootstrap import api_context
from services.core.deadletters import refused
from services.core.events import TOPIC_DEADLETTER, FetchError, Observation, Status
from services.core.keys import Role
from services.keyring import create_key
from services.settings import AccessSettings, Settings
from tests.browser.conftest import screenshot

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
WORK = "10.7717/peerj.4375"


@dataclass
class Failing:
    """The running site, with one failed refresh stored and one dead letter on its bus."""

    url: str
    keys: SqliteKeyStore


@pytest.fixture
async def failing(tmp_path: Path) -> AsyncIterator[Failing]:
    store = SqliteStore(tmp_path / "alm.sqlite")
    await store.migrate()
    error = FetchError("http", "upstream answered 503 <Service Unavailable>", True, 503)
    observation = Observation(WORK, "crossref", NOW, Status.ERROR, error=error)
    await store.write_aggregates(fold([observation], await store.states([(WORK, "crossref")])))
    bus = MemoryBus()
    request = {"work_id": "10.1234/gone", "source": "openalex"}
    letter = refused("alm.refresh.openalex", "10.1234/gone", request, "gave up after 9", NOW)
    await bus.publish(TOPIC_DEADLETTER, [("10.1234/gone", letter)])
    settings = Settings(data_dir=tmp_path, status_cache_seconds=0, access=AccessSettings())
    server = TestServer(init_app(api_context(settings, store=store, bus=bus)), host="127.0.0.1")
    await server.start_server()
    try:
        yield Failing(str(server.make_url("")).rstrip("/"), SqliteKeyStore(store))
    finally:
        await server.close()
        await store.close()


async def _sign_in(url: str, page: Page, key: str) -> None:
    await page.goto(f"{url}/signin")
    await page.get_by_label("API key").fill(key)
    async with page.expect_navigation():
        await page.get_by_role("button", name="Sign in").click()


async def test_an_admin_sees_a_failed_refresh_and_a_dead_letter(
    failing: Failing, page: Page
) -> None:
    _, admin = await create_key(failing.keys, "ops", Role.ADMIN, NOW)
    await _sign_in(failing.url, page, admin)
    assert page.url == f"{failing.url}/sources"
    async with page.expect_navigation():
        await page.locator("tr#crossref").get_by_role("link", name="1").click()
    assert page.url == f"{failing.url}/admin/failures?source=crossref"
    assert await page.title() == "ALM: failed refreshes"
    row = page.locator("tbody tr")
    assert await row.count() == 1
    text = await row.inner_text()
    assert "crossref" in text and "upstream answered 503 <Service Unavailable>" in text
    assert "2026-11-29T12:00:00Z" in text
    link = row.get_by_role("link", name=WORK)
    assert await link.get_attribute("href") == f"/works/{WORK}"
    await screenshot(page, "failures")
    async with page.expect_navigation():
        await page.get_by_role("link", name="Dead letters").click()
    assert page.url == f"{failing.url}/admin/deadletters"
    letter = await page.locator("tbody tr").inner_text()
    assert "gave up after 9" in letter and "openalex" in letter
    assert "alm.refresh.openalex" in letter and "10.1234/gone" in letter
    await screenshot(page, "deadletters")


async def test_a_reader_is_refused_the_admin_pages(failing: Failing, page: Page) -> None:
    _, reader = await create_key(failing.keys, "reader", Role.READER, NOW)
    await _sign_in(failing.url, page, reader)
    for path in ("/admin/failures", "/admin/deadletters"):
        response = await page.goto(f"{failing.url}{path}")
        assert response is not None and response.status == 403
