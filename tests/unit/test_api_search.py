"""`GET /api/v1/works?q=`: search by title and publisher words or by an identifier, cursor
pages, the publisher and source filters, and hostile queries (a 400, never a 500), over the
embedded store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient, TestServer

from services.adapters.memory.bus import MemoryBus
from services.adapters.sqlite import SqliteStore
from services.api import search, search_sort
from services.api.app import init_app
from services.bootstrap import api_context
from services.core.aggregation import Aggregate, SourceState
from services.core.events import Status
from services.core.works import Work
from services.settings import Settings

AT = datetime(2026, 1, 2, tzinfo=UTC)
CORAL = [f"10.1371/journal.pone.{n:07d}" for n in range(7)]
OTHER = "10.7717/peerj.4375"
LONG = (
    "The state of OA: a large-scale analysis of the prevalence and impact of Open Access articles"
)


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    """Seven coral works (PLOS, member 340; even ones cited by crossref), one PeerJ work with a
    PMID, about something else."""
    store = SqliteStore(tmp_path / "alm.sqlite")
    await store.migrate()
    works = [
        Work(d, doi=d, title=f"Coral Reefs part {n}", publisher="PLOS", publisher_id="340")
        for n, d in enumerate(CORAL)
    ]
    works.append(Work(OTHER, doi=OTHER, pmid="29456894", title=LONG, publisher="PeerJ"))
    await store.register(works)
    await store.write_aggregates(
        [
            Aggregate(
                SourceState(
                    d, "crossref", {"citations": (n + 1) * (n % 2 == 0)}, AT, AT, Status.OK
                ),
                True,
            )
            for n, d in enumerate(CORAL)
        ]
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


async def _walk(client: TestClient[Any, Any], query: str, per_page: int) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor = "*"
    while cursor is not None and len(pages) < 20:
        body = await _get(
            client, f"/api/v1/works?q={query}&per_page={per_page}&cursor={quote(cursor)}"
        )
        assert set(body) == {"query", "per_page", "next_cursor", "data"}
        pages.append([w["work_id"] for w in body["data"]])
        cursor = body["next_cursor"]
    return pages


async def test_words_find_works_in_cursor_pages(client: TestClient[Any, Any]) -> None:
    pages = await _walk(client, "coral+REEFS", 3)
    assert sorted(w for p in pages for w in p) == CORAL
    assert [len(p) for p in pages][:3] == [3, 3, 1]
    body = await _get(client, "/api/v1/works?q=reefs+part+3")
    assert [w["work_id"] for w in body["data"]] == [CORAL[3]]
    assert body["data"][0]["title"] == "Coral Reefs part 3" and "groups" in body["data"][0]
    assert (await _get(client, "/api/v1/works?q=coral+peerj"))["data"] == []
    assert [w["work_id"] for w in (await _get(client, "/api/v1/works?q=peerj"))["data"]] == [OTHER]


@pytest.mark.parametrize(
    "q",
    [
        "10.7717/PEERJ.4375",
        "doi:10.7717/peerj.4375",
        "https://doi.org/10.7717/peerj.4375",
        "29456894",
        "pmid:29456894",
    ],
)
async def test_an_identifier_finds_its_work(client: TestClient[Any, Any], q: str) -> None:
    body = await _get(client, f"/api/v1/works?q={quote(q, safe='')}")
    assert ([w["work_id"] for w in body["data"]], body["next_cursor"]) == ([OTHER], None)


async def test_a_long_query_checks_the_words_past_the_index(
    client: TestClient[Any, Any],
) -> None:
    """Past MAX_WORDS words, every word still counts: a pasted title finds its work, and one
    word more or changed finds none."""
    found = await _get(client, f"/api/v1/works?q={quote(LONG)}")
    assert [w["work_id"] for w in found["data"]] == [OTHER]
    for q in (LONG + " coral", LONG.replace("Open", "Closed"), LONG.replace("of OA", "of XY")):
        assert (await _get(client, f"/api/v1/works?q={quote(q)}"))["data"] == [], q


async def test_an_unknown_number_falls_back_to_words(client: TestClient[Any, Any]) -> None:
    assert (await _get(client, "/api/v1/works?q=3"))["data"][0]["work_id"] == CORAL[3]
    assert (await _get(client, "/api/v1/works?q=10.1/none"))["data"] == []


async def test_publisher_and_source_filters(client: TestClient[Any, Any]) -> None:
    body = await _get(client, "/api/v1/works?q=coral&publisher_id=340&per_page=10")
    assert len(body["data"]) == 7
    assert (await _get(client, "/api/v1/works?q=coral&publisher_id=4443"))["data"] == []
    cited = await _walk(client, "coral&source=crossref", 2)
    assert sorted(w for p in cited for w in p) == CORAL[0::2]
    body = await _get(client, "/api/v1/works?q=coral&source=nosuch", 400)
    assert "source" in body["error"]


@pytest.mark.parametrize("order", ["crossref", "cited"])
async def test_sorted_by_a_source_or_group_highest_first(
    client: TestClient[Any, Any], order: str
) -> None:
    pages = await _walk(client, f"coral&sort={order}", 2)
    assert [w for p in pages for w in p] == [CORAL[n] for n in (6, 4, 2, 0, 1, 3, 5)]
    assert [len(p) for p in pages] == [2, 2, 2, 1]
    body = await _get(client, f"/api/v1/works?q=coral&sort={order}&source=crossref")
    assert [w["work_id"] for w in body["data"]] == [CORAL[n] for n in (6, 4, 2, 0)]


async def test_sorting_reads_a_bounded_number_of_matches(
    client: TestClient[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(search_sort, "SORT_LIMIT", 6)
    monkeypatch.setattr(search_sort, "READ", 4)
    body = await _get(client, "/api/v1/works?q=coral&sort=crossref", 400)
    assert "narrow the search" in body["error"]
    body = await _get(client, "/api/v1/works?q=coral&sort=crossref&publisher_id=340&source=x", 400)
    assert "source" in body["error"]


@pytest.mark.parametrize(
    "query", ["q=coral&sort=nosuch", "q=coral&sort=crossref&cursor=abc", "sort=x", "source=x"]
)
async def test_a_wrong_sort_source_or_sorted_cursor_is_a_400(
    client: TestClient[Any, Any], query: str
) -> None:
    await _get(client, f"/api/v1/works?{query}", 400)


async def test_source_filter_reads_a_bounded_number_of_index_pages(
    client: TestClient[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With few matches counted by the source, a page stops after SCAN_ROUNDS reads, shorter
    than per_page but with a cursor to go on from."""
    monkeypatch.setattr(search, "SCAN_ROUNDS", 1)
    body = await _get(client, "/api/v1/works?q=coral&source=crossref&per_page=2")
    assert len(body["data"]) == 1 and body["next_cursor"] is not None


@pytest.mark.parametrize(
    "q",
    [
        "",
        "   ",
        '"',
        "***",
        "a" * 501,
        "doi:10.1/",
        "pmcid:PMCx",
    ],
)
async def test_hostile_queries_are_a_400(client: TestClient[Any, Any], q: str) -> None:
    body = await _get(client, f"/api/v1/works?q={quote(q, safe='')}", 400)
    assert "'q'" in body["error"]


@pytest.mark.parametrize(
    "q", ['coral"', "NEAR(coral reefs)", "coral OR x", "coral AND NOT x", "coral*", "^coral", "c:r"]
)
async def test_fts_syntax_is_searched_as_words(client: TestClient[Any, Any], q: str) -> None:
    """Quotes, operators and column filters are no syntax: only their words are searched."""
    await _get(client, f"/api/v1/works?q={quote(q, safe='')}")


async def test_a_cursor_from_nowhere_is_a_400(client: TestClient[Any, Any]) -> None:
    body = await _get(client, "/api/v1/works?q=coral&cursor=10.1/abc", 400)
    assert "cursor" in body["error"]
