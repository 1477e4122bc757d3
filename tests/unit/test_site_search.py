"""The search page (`GET /works?q=`, services/site/search.py) over HTTP: results with their
links, the next-page link following the API's cursor, the filters, the JSON alternate, an
identifier going to its work's page, escaping, and queries that cannot be searched."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from services.adapters.memory.bus import MemoryBus
from services.adapters.sqlite import SqliteStore
from services.api.app import init_app
from services.bootstrap import api_context
from services.core.works import Work
from services.settings import Settings
from services.site import search

DOIS = [f"10.1371/journal.pone.{n:07d}" for n in range(5)]


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    """Five PLOS works about kelp forests, and one with markup in its title."""
    store = SqliteStore(tmp_path / "alm.sqlite")
    await store.migrate()
    await store.register(
        [
            Work(d, doi=d, title=f"Kelp forests {n}", publisher="PLOS", publisher_id="340")
            for n, d in enumerate(DOIS)
        ]
        + [Work("10.1/x", doi="10.1/x", title="<script>alert(1)</script> kelp & co")]
    )
    app = init_app(
        api_context(Settings(data_dir=tmp_path, status_cache_seconds=0), store, MemoryBus())
    )
    async with TestClient(TestServer(app)) as c:
        yield c
    await store.close()


def _links(html: str, pattern: str) -> list[str]:
    return [unescape(h) for h in re.findall(pattern, html)]


async def test_results_page_by_page(
    client: TestClient[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search, "PER_PAGE", 2)
    seen: list[str] = []
    url = "/works?q=kelp+FORESTS"
    for _ in range(5):
        resp = await client.get(url)
        html = await resp.text()
        assert resp.status == 200 and resp.content_type == "text/html"
        assert 'role="search"' in html and 'value="kelp FORESTS"' in html
        results = html[html.index('<ol class="results"') :]
        seen += [h[len("/works/") :] for h in _links(results, r'<li><a href="([^"]+)"')]
        assert "https://doi.org/10.1371/journal.pone." in html and "PLOS" in html
        (alternate,) = _links(html, r'<link rel="alternate" type="application/json" href="([^"]+)"')
        api = await (await client.get(alternate)).json()
        assert [w["work_id"] for w in api["data"]] == seen[-len(api["data"]) :]
        nxt = _links(html, r'<a rel="next" href="([^"]+)"')
        if not nxt:
            break
        url = nxt[0]
    assert sorted(seen) == DOIS


async def test_an_identifier_goes_to_its_page(client: TestClient[Any, Any]) -> None:
    resp = await client.get(
        "/works", params={"q": f"https://doi.org/{DOIS[1].upper()}"}, allow_redirects=False
    )
    assert (resp.status, resp.headers["Location"]) == (303, f"/works/{DOIS[1]}")
    unknown = await client.get("/works", params={"q": "10.9999/none"})
    assert unknown.status == 200 and "No work matches" in await unknown.text()


async def test_filters_and_escaping(client: TestClient[Any, Any]) -> None:
    blank = await client.get("/works?q=kelp&publisher_id=&source=")  # the form's "any"
    assert blank.status == 200 and (await blank.text()).count('<li><a href="/works/10.') == 6
    html = await (await client.get("/works", params={"q": "kelp", "publisher_id": "999"})).text()
    assert "No work matches" in html
    html = await (await client.get("/works", params={"q": "kelp co"})).text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt; kelp &amp; co" in html and "<script>" not in html
    html = await (await client.get("/works", params={"q": "kelp", "source": "crossref"})).text()
    assert "No work matches" in html  # nothing counted yet
    assert '<option value="crossref" selected>' in html
    html = await (await client.get("/works", params={"q": "kelp", "sort": "cited"})).text()
    assert '<option value="cited" selected>' in html and html.count('<li><a href="/works/10.') == 6


@pytest.mark.parametrize("q", ["", '"*"', "x" * 600, "doi:10.1/"])
async def test_a_query_that_cannot_be_searched_is_the_form_again(
    client: TestClient[Any, Any], q: str
) -> None:
    resp = await client.get("/works", params={"q": q})
    html = await resp.text()
    assert resp.status == 400 and 'role="alert"' in html and 'role="search"' in html


async def test_the_find_page_has_the_search_box(client: TestClient[Any, Any]) -> None:
    html = await (await client.get("/works")).text()
    assert 'role="search"' in html and 'name="id"' in html
