"""API v3 as the OJS ALM plugin (OJS 2.4.4-2.4.6), almviz's embed script and rOpenSci alm 0.1
call it: the exact requests, and every field they read with its type (docs/clients.md)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from services.embedded import refresh_until_idle
from tests.unit import clients_kit as read
from tests.unit.clients_kit import keyed_api_client
from tests.unit.pipeline_kit import Kit, pipeline_kit

PCBI = "10.1371/journal.pcbi.1000204"  # issued 2008-10-31
PEERJ = "10.7717/peerj.4375"  # issued 2018-02-13
OJS = {"Accept": "text/xml, */*"}  # pkp-lib WebServiceRequest's default; no User-Agent


@pytest.fixture
async def kit(tmp_path: Path) -> AsyncIterator[Kit]:
    async with pipeline_kit(tmp_path) as k:
        await k.register([PCBI, PEERJ])
        await refresh_until_idle(k.pipeline)
        yield k


@pytest.fixture
async def client(kit: Kit, tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    async with keyed_api_client(kit, tmp_path) as c:
        yield c


def _v3_entry(entry: dict[str, Any], fields: tuple[str, ...]) -> None:
    """alm.js: `new Date(year, month - 1, day)` and `entry[category]` summed as numbers."""
    for key in fields:
        assert isinstance(entry[key], int), (key, entry)
    for key in read.V3_KEYS:
        read.count(entry[key])


def _history(source: dict[str, Any]) -> None:
    read.v3_histories(source)
    periods = {
        "by_day": ("year", "month", "day"),
        "by_month": ("year", "month"),
        "by_year": ("year",),
    }
    for name, fields in periods.items():
        rows = source[name]
        assert rows is None or (isinstance(rows, list) and rows), name  # null = no chart
        for entry in rows or ():
            _v3_entry(entry, fields)
    if source["by_month"]:
        read.years_sum_months(
            {
                "by_month": source["by_month"],
                "by_year": source["by_year"],
            }
        )


async def test_ojs_plugin_read(client: TestClient[Any, Any]) -> None:
    """`GET {ALM_API_URL}info:doi/{DOI}?info=history&api_key=`: plain JSON whatever Accept
    says, an array whose element 0 the page script charts."""
    resp = await client.get(
        f"/api/v3/articles/info:doi/{PEERJ}?info=history&api_key=k", headers=OJS
    )
    assert resp.status == 200 and resp.content_type == "application/json"
    body = json.loads(await resp.text())
    assert isinstance(body, list) and len(body) == 1  # not an object: `error` would discard it
    article = body[0]
    assert article["doi"] == PEERJ and isinstance(article["title"], str)
    assert datetime.fromisoformat(article["publication_date"].replace("Z", "+00:00")).year == 2018
    read.alm_time(article["publication_date"], nullable=False)
    assert isinstance(article["sources"], list) and article["sources"]
    for source in article["sources"]:
        assert isinstance(source["name"], str) and isinstance(source["display_name"], str)
        assert isinstance(source["events_url"], str | None)
        assert list(source["metrics"]) == list(read.V3_KEYS)
        for value in source["metrics"].values():
            read.count(value)
        _history(source)
        assert "events" not in source
    crossref = next(s for s in article["sources"] if s["name"] == "crossref")
    assert crossref["metrics"]["citations"] == crossref["metrics"]["total"] > 0
    assert crossref["by_day"] is None  # the fetch is years after publication


@pytest.mark.parametrize("doi", ["10.9999/does.not.exist", "not-a-doi", "0"])
async def test_ojs_unknown_doi_is_an_error_object(client: TestClient[Any, Any], doi: str) -> None:
    """The plugin falls back to its own figures on any object with `error`: never `[]`; an id
    that is none is not found either, as in ALM."""
    resp = await client.get(f"/api/v3/articles/info:doi/{doi}?info=history&api_key=k")
    assert resp.status == 404
    body = await resp.json()
    assert isinstance(body, dict) and body["error"] == "Article not found."


@pytest.mark.parametrize(
    "path",
    [
        f"/api/v3/articles/info:doi/{PCBI.upper()}",
        "/api/v3/articles/info:doi/10.1371%2Fjournal.pcbi.1000204",
        f"/api/v3/articles/{PCBI}",
        "/api/v3/articles/info:pmid/18974831",
        "/api/v3/articles/info:pmcid/PMC2568856",
    ],
)
async def test_show_route_id_forms(client: TestClient[Any, Any], path: str) -> None:
    """ALM's v3 show route: `info:doi/`, `info:pmid/`, `info:pmcid/` URIs and bare DOIs."""
    resp = await client.get(path)
    assert resp.status == 200, await resp.text()
    assert [a["doi"] for a in await resp.json()] == [PCBI]


async def test_almviz_embed_jsonp(client: TestClient[Any, Any]) -> None:
    """`$.getJSON(host + "/api/v3/articles?callback=?", {ids, type, info: "summary"})`: the
    body is `callback([...])`; `$.isArray(data)`, then views/shares/bookmarks/citations."""
    callback = "jQuery1102012345678901234_1400000000000"
    resp = await client.get(
        f"/api/v3/articles?callback={callback}&ids={PEERJ}&type=doi&info=summary&_=1400000000001"
    )
    text = await resp.text()
    assert resp.status == 200 and resp.content_type == "application/javascript"
    assert text.startswith(callback + "(") and text.endswith(")")
    data = json.loads(text[len(callback) + 1 : -1])
    assert isinstance(data, list) and len(data) == 1
    for key in ("views", "shares", "bookmarks", "citations"):
        assert isinstance(data[0][key], int)
    assert data[0]["citations"] > 0 and "sources" not in data[0]
    assert isinstance(data[0]["title"], str) and data[0]["doi"] == PEERJ


async def test_r01_detail_with_sources(client: TestClient[Any, Any]) -> None:
    """rOpenSci alm 0.1: `?api_key&info=detail&source=a,b&type=doi&ids=...`: the listed
    sources only, with events and history; several works, most recently updated first."""
    resp = await client.get(
        f"/api/v3/articles?api_key=k&info=detail&source=EuropePMC,crossref&type=doi&ids={PCBI},{PEERJ}"
    )
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert sorted(a["doi"] for a in body) == sorted([PCBI, PEERJ])
    for article in body:
        assert {s["name"] for s in article["sources"]} <= {"europepmc", "crossref"}
        for source in article["sources"]:
            _history(source)
            for entry in source["events"]:
                read.v5_event(entry)


async def test_event_info_lists_events_only(client: TestClient[Any, Any]) -> None:
    """`info=event`: events without history; any other info: the totals only."""
    body = await (
        await client.get(f"/api/v3/articles?ids={PEERJ}&info=event&source=europepmc")
    ).json()
    [source] = body[0]["sources"]
    assert source["events"] and "by_month" not in source
    body = await (await client.get(f"/api/v3/articles?ids={PEERJ}&info=other")).json()
    assert all("events" not in s and "by_year" not in s for s in body[0]["sources"])


@pytest.mark.parametrize(
    ("query", "error"),
    [
        (f"ids={PEERJ}&source=twitter", "Source not found."),
        ("ids=10.9999/none", "Article not found."),
        ("info=summary", "Article not found."),
    ],
)
async def test_v3_not_found(client: TestClient[Any, Any], query: str, error: str) -> None:
    """ALM 2.x: an unknown source or no known article is a 404 with ALM's message."""
    resp = await client.get(f"/api/v3/articles?{query}")
    assert resp.status == 404
    assert (await resp.json())["error"] == error


async def test_v3_post_with_override(client: TestClient[Any, Any]) -> None:
    """Long id lists by POST + X-HTTP-Method-Override, as on v5."""
    resp = await client.post(
        "/api/v3/articles",
        data={"ids": f"{PCBI},{PEERJ}", "info": "summary"},
        headers={"X-HTTP-Method-Override": "get"},
    )
    assert resp.status == 200, await resp.text()
    assert len(await resp.json()) == 2
    resp = await client.post(
        "/api/v3/articles",
        data={"ids": PEERJ, "info": "summary", "callback": "cb"},
        headers={"X-HTTP-Method-Override": "GET"},
    )
    text = await resp.text()
    assert resp.content_type == "application/javascript" and text.startswith('cb([{"doi"')
    bad = await client.post(
        "/api/v3/articles",
        data={"ids": PEERJ, "callback": "x<y"},
        headers={"X-HTTP-Method-Override": "GET"},
    )
    assert bad.status == 400 and "callback" in (await bad.json())["error"]
