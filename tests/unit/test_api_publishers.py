"""The publisher filters of the API: `GET /api/v1/works?publisher_id=` and ALM v5's
`/api/v5/articles?publisher_id=` / `publisher=`, over the embedded store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient, TestServer

from services.adapters.memory.bus import MemoryBus
from services.adapters.sqlite import SqliteStore
from services.adapters.sqlite.publishers import SqlitePublishers
from services.api.app import init_app
from services.bootstrap import api_context
from services.core.publishers import Publisher
from services.core.works import Work
from services.settings import Settings

PLOS = [f"10.1371/journal.pone.{n:07d}" for n in (3, 1, 2)]
OTHER = "10.7717/peerj.4375"


def _work(doi: str, member: str | None) -> Work:
    return Work(doi, doi=doi, title=doi, type="journal-article", publisher_id=member)


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    """Three PLOS works, one of PeerJ, one without a publisher; PLOS known by its names."""
    store = SqliteStore(tmp_path / "alm.sqlite")
    await store.migrate()
    works = [_work(d, "340") for d in PLOS] + [_work(OTHER, "4443"), _work("10.1/x.y", None)]
    await store.register(works)
    publishers = SqlitePublishers(store)
    await publishers.put_publisher(
        Publisher("340", "Public Library of Science (PLoS)", ("10.1371",), ("PLOS",))
    )
    app = init_app(
        api_context(Settings(data_dir=tmp_path, status_cache_seconds=0), store, MemoryBus())
    )
    async with TestClient(TestServer(app)) as c:
        yield c
    await store.close()


async def _get(client: TestClient[Any, Any], url: str, status: int = 200) -> Any:
    resp = await client.get(url)
    assert resp.status == status, await resp.text()
    return await resp.json()


async def test_v1_lists_a_publishers_works_in_pages(client: TestClient[Any, Any]) -> None:
    """Only that publisher's works, in work-id order, paged, with its own total."""
    first = await _get(client, "/api/v1/works?publisher_id=340&per_page=2")
    second = await _get(client, "/api/v1/works?publisher_id=340&per_page=2&page=2")
    assert (first["total"], first["total_pages"]) == (3, 2)
    ids = [w["work_id"] for w in first["data"] + second["data"]]
    assert ids == sorted(PLOS)
    assert {(w["type"], w["publisher_id"]) for w in first["data"]} == {("journal-article", "340")}
    nothing = await _get(client, "/api/v1/works?publisher_id=999")
    assert (nothing["total"], nothing["data"]) == (0, [])
    everything = await _get(client, "/api/v1/works")
    assert everything["total"] == 5  # no filter, no change


@pytest.mark.parametrize("query", ["", "&publisher_id=340"])
async def test_v1_walks_every_work_with_a_cursor(client: TestClient[Any, Any], query: str) -> None:
    """`cursor=*`, then each page's `next_cursor`: every work once, in work-id order, the last
    page saying so with `next_cursor: null`; `page` is ignored in a keyset walk."""
    expected = sorted([*PLOS, OTHER, "10.1/x.y"] if not query else PLOS)
    walked: list[str] = []
    cursor = "*"
    for _ in range(10):
        body = await _get(
            client, f"/api/v1/works?cursor={quote(cursor, safe='')}&per_page=2&page=7{query}"
        )
        assert set(body) == {"total", "per_page", "next_cursor", "data"}
        assert body["total"] == len(expected)
        walked += [w["work_id"] for w in body["data"]]
        if body["next_cursor"] is None:
            break
        cursor = body["next_cursor"]
    assert walked == expected
    past = await _get(client, f"/api/v1/works?cursor={quote(expected[-1], safe='')}{query}")
    assert (past["data"], past["next_cursor"]) == ([], None)


@pytest.mark.parametrize("value", ["", "x" * 401])
async def test_v1_refuses_a_cursor_that_cannot_be_one(
    client: TestClient[Any, Any], value: str
) -> None:
    body = await _get(client, f"/api/v1/works?cursor={value}", 400)
    assert "cursor" in body["error"]


@pytest.mark.parametrize("value", ["PLOS", "0340", "-1", "340 ", "1" * 11])
async def test_v1_refuses_a_publisher_id_that_is_not_a_member_id(
    client: TestClient[Any, Any], value: str
) -> None:
    """A value that is no Crossref member id is a 400 naming the parameter."""
    body = await _get(client, f"/api/v1/works?publisher_id={value}", 400)
    assert "publisher_id" in body["error"]


@pytest.mark.parametrize(
    "query",
    [
        "publisher_id=340",
        "publisher=340",
        "publisher=Public+Library+of+Science+(PLoS)",
        "publisher=plos",
        "publisher=PLOS&publisher_id=340",
    ],
)
async def test_v5_filters_by_member_id_or_publisher_name(
    client: TestClient[Any, Any], query: str
) -> None:
    """ALM v5's `publisher_id`, or `publisher` as an id or any of the publisher's names, in
    any case: its works, each carrying `publisher_id` as v5 did (a number)."""
    body = await _get(client, f"/api/v5/articles?{query}&info=summary")
    assert body["total"] == 3
    assert sorted(a["doi"] for a in body["data"]) == sorted(PLOS)
    assert {a["publisher_id"] for a in body["data"]} == {340}


async def test_v5_combines_ids_with_a_publisher_and_matches_nothing_for_an_unknown_one(
    client: TestClient[Any, Any],
) -> None:
    """With `ids` the filter keeps that publisher's among them; an unknown name, or two filters
    that disagree, match nothing (a filter narrows; schemathesis sends the documented example
    name to a store that never imported it: a 400 was "valid data rejected"); a `publisher`
    empty or over 500 characters is a 400 naming it."""
    body = await _get(client, f"/api/v5/articles?ids={PLOS[0]},{OTHER}&publisher_id=4443")
    assert [a["doi"] for a in body["data"]] == [OTHER]
    assert (await _get(client, f"/api/v5/articles?ids={OTHER}"))["data"][0]["publisher_id"] == 4443
    for query in ("publisher=Nobody+Press", "publisher=PLOS&publisher_id=4443", "publisher=0"):
        nothing = await _get(client, f"/api/v5/articles?{query}")
        assert (nothing["total"], nothing["data"]) == (0, []), query
        among = await _get(client, f"/api/v5/articles?ids={PLOS[0]},{OTHER}&{query}")
        assert among["data"] == [], query
    for value in ("", "x" * 501):
        refused = await _get(client, f"/api/v5/articles?publisher={value}", 400)
        assert "'publisher'" in refused["error"]
