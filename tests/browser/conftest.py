"""Browser tests: the site's real pages in headless Chromium (Debian's `chromium`, driven by the
PyPI `playwright` package; `bin/install-browser` installs both), against the API app served on
loopback over an embedded SQLite store. Screenshots of each page go to ALM_ARTIFACTS_DIR
(default .alm-artifacts/browser), kept as test artifacts and not committed."""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from playwright.async_api import Browser, Page, async_playwright

from services.adapters.memory.bus import MemoryBus
from services.adapters.sqlite import SqliteStore
from services.adapters.sqlite.keys import SqliteKeyStore
from services.api.app import init_app
from services.bootstrap import api_context
from services.embedded import refresh_until_idle
from services.settings import REPO_ROOT, AccessSettings, Settings
from tests.unit.pipeline_kit import Kit, pipeline_kit

CHROMIUM = os.environ.get("ALM_CHROMIUM", "/usr/bin/chromium")
FOUND = Path(CHROMIUM).exists()
ARTIFACTS = Path(os.environ.get("ALM_ARTIFACTS_DIR", REPO_ROOT / ".alm-artifacts")) / "browser"


@dataclass
class Site:
    """The running site: its base URL and key store."""

    url: str
    keys: SqliteKeyStore


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    store = SqliteStore(tmp_path / "alm.sqlite")
    await store.migrate()
    settings = Settings(data_dir=tmp_path, status_cache_seconds=0, access=AccessSettings())
    server = TestServer(
        init_app(api_context(settings, store=store, bus=MemoryBus())), host="127.0.0.1"
    )
    await server.start_server()
    try:
        yield Site(str(server.make_url("")).rstrip("/"), SqliteKeyStore(store))
    finally:
        await server.close()
        await store.close()


@asynccontextmanager
async def refreshed_site(tmp_path: Path, dois: list[str]) -> AsyncIterator[tuple[str, Kit]]:
    """The site over a pipeline that registered `dois` and refreshed them from the stub
    upstream: its base URL and the kit (to add data before the page is opened)."""
    async with pipeline_kit(tmp_path) as kit:
        await kit.register(dois)
        await refresh_until_idle(kit.pipeline)
        settings = Settings(data_dir=tmp_path, status_cache_seconds=0)
        app = init_app(api_context(settings, store=kit.store, bus=kit.bus, clock=kit.clock))
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        try:
            yield str(server.make_url("")).rstrip("/"), kit
        finally:
            await server.close()


async def get_json(url: str) -> Any:
    """The JSON of a 200 answer to GET `url`."""
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        assert resp.status == 200
        return await resp.json()


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not FOUND:
        pytest.fail(f"{CHROMIUM} not found: run bin/install-browser (or set ALM_CHROMIUM)")
    async with async_playwright() as pw:
        launched = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport={"width": 390, "height": 844})  # a phone
    opened = await context.new_page()
    try:
        yield opened
    finally:
        await context.close()


async def screenshot(page: Page, name: str) -> None:
    """Keep what the page looks like now as ARTIFACTS/<test>-<name>.png."""
    test = os.environ.get("PYTEST_CURRENT_TEST", "test").split(" ")[0].rsplit("::", 1)[-1]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^\w.-]", "_", f"{test}-{name}")
    await page.screenshot(path=ARTIFACTS / f"{stem}.png", full_page=True)
