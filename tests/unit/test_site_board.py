"""A source's leaderboard (services/site/board.py): `/sources/{name}` lists works by the source's
counting metric, most first, ties by work id, a page at a time through the keyset cursor; the
JSON twin `/api/v1/sources/{name}/top` pages the same rows; an unknown source is a 404 page
(JSON 404 for the API); a forged cursor is a 400."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from services.api.board import Position, decode, encode
from services.core.works import Work
from tests.contracts.store import T0, apply, obs
from tests.unit.pipeline_kit import Kit, api_client, pipeline_kit

# crossref counts `citations`; a tie of 40 across a page boundary, zeros not listed
CITED = {f"10.5555/w{n:02d}": v for n, v in enumerate([7, 40, 3, 40, 0, 12, 40, 1, 9, 0, 5])}
ORDER = sorted(((w, v) for w, v in CITED.items() if v), key=lambda wv: (-wv[1], wv[0]))


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    async with pipeline_kit(tmp_path) as kit:
        await seed(kit)
        async with api_client(kit, tmp_path) as c:
            yield c


async def seed(kit: Kit) -> None:
    await kit.store.register([Work(w, doi=w, title=f"Title <{w}>") for w in CITED])
    await apply(kit.store, [obs(w, "crossref", T0, {"citations": v}) for w, v in CITED.items()])
    # another source's numbers do not change crossref's board
    await apply(
        kit.store, [obs(w, "openalex", T0, {"citations": 100 - v}) for w, v in CITED.items()]
    )


def rows(html: str) -> list[tuple[int, str, int]]:
    """(rank, work path, count) of each row of the board's table."""
    found = re.findall(
        r'data-label="Rank">([\d,]+)</td><th scope="row"><a href="([^"]+)">.*?'
        r'data-label="Count">([\d,]+)</td>',
        html,
    )
    return [(int(r), path, int(c.replace(",", ""))) for r, path, c in found]


async def test_the_board_orders_by_the_source_s_count_across_pages(
    client: TestClient[Any, Any],
) -> None:
    seen: list[tuple[int, str, int]] = []
    url: str | None = "/sources/crossref?per_page=3"
    while url:
        resp = await client.get(url)
        assert resp.status == 200 and resp.content_type == "text/html"
        html = await resp.text()
        page = rows(html)
        assert 0 < len(page) <= 3
        seen += page
        found = re.search(r'<a rel="next" href="([^"]+)">', html)
        url = found.group(1).replace("&amp;", "&") if found else None
        assert len(seen) <= len(CITED)
    assert [(p, c) for _, p, c in seen] == [(f"/works/{w}", v) for w, v in ORDER]
    assert [r for r, _, _ in seen] == list(range(1, len(ORDER) + 1))


async def test_the_json_twin_pages_the_same_rows(client: TestClient[Any, Any]) -> None:
    html = await (await client.get("/sources/crossref?per_page=4")).text()
    alternate = re.search(r'<link rel="alternate" type="application/json" href="([^"]+)"', html)
    assert alternate and alternate.group(1) == "/api/v1/sources/crossref/top?per_page=4"
    got: list[tuple[str, int]] = []
    url: str | None = alternate.group(1)
    while url:
        body = await (await client.get(url)).json()
        assert body["metric"] == "citations" and len(body["data"]) <= 4
        got += [(d["id"], d["value"]) for d in body["data"]]
        assert [d["rank"] for d in body["data"]] == list(
            range(len(got) - len(body["data"]) + 1, len(got) + 1)
        )
        url = body["next"]
    assert got == ORDER
    first = (await (await client.get("/api/v1/sources/crossref/top?per_page=1")).json())["data"]
    assert first[0]["doi"] == ORDER[0][0] and first[0]["title"] == f"Title <{ORDER[0][0]}>"


async def test_titles_are_escaped_and_link_to_the_work_and_the_doi(
    client: TestClient[Any, Any],
) -> None:
    html = await (await client.get("/sources/crossref")).text()
    top = ORDER[0][0]
    assert f'<a href="/works/{top}">Title &lt;{top}&gt;</a>' in html
    assert f'<a href="https://doi.org/{top}">{top}</a>' in html
    assert "<title>Crossref: most citations · ALM</title>" in html or "most citations" in html
    assert 'rel="next"' not in html  # 25 a page: every counted work on the first


async def test_an_unknown_source_is_a_404_page_and_a_json_404(
    client: TestClient[Any, Any],
) -> None:
    resp = await client.get("/sources/nosuch")
    assert resp.status == 404 and resp.content_type == "text/html"
    assert "No such source" in await resp.text()
    resp = await client.get("/api/v1/sources/nosuch/top")
    assert resp.status == 404 and (await resp.json())["status"] == 404


@pytest.mark.parametrize("cursor", ["x", "!!", encode(Position(5, "a", 1))[:-2] + "$$", "W10"])
async def test_a_forged_cursor_is_a_400(client: TestClient[Any, Any], cursor: str) -> None:
    assert (await client.get(f"/sources/crossref?cursor={cursor}")).status == 400
    assert (await client.get(f"/api/v1/sources/crossref/top?cursor={cursor}")).status == 400


def test_a_cursor_comes_back_as_it_went() -> None:
    at = Position(40, "10.5555/ü/x", 12)
    assert decode(encode(at)) == at
