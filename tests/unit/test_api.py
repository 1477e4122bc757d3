"""The HTTP API over the embedded store: lookups in every id form, batch, history, register,
and a JSON error with the right status for every bad input."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from services.core.works import Work
from services.embedded import refresh_until_idle
from tests.unit.pipeline_kit import Kit, api_client, pipeline_kit

PCBI = "10.1371/journal.pcbi.1000204"  # PMID 18974831, PMCID PMC2568856 in the fixtures
PEERJ = "10.7717/peerj.4375"
ZENODO = "10.5281/zenodo.1234567"  # DataCite: views by month 2021-05 (3) and 2022-01 (14)


@pytest.fixture
async def kit(tmp_path: Path) -> AsyncIterator[Kit]:
    async with pipeline_kit(tmp_path) as k:
        await k.register([PCBI, PEERJ])
        await refresh_until_idle(k.pipeline)
        yield k


@pytest.fixture
async def client(kit: Kit, tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    async with api_client(kit, tmp_path) as c:
        yield c


@pytest.mark.parametrize(
    "path",
    [
        f"/api/v1/works/{PCBI}",
        "/api/v1/works/10.1371%2Fjournal.pcbi.1000204",
        "/api/v1/works/https%3A%2F%2Fdoi.org%2F10.1371%2FJOURNAL.PCBI.1000204",
        "/api/v1/works/doi:10.1371/Journal.Pcbi.1000204",
        "/api/v1/works/pmid:18974831",
        "/api/v1/works/18974831",
        "/api/v1/works/PMC2568856",
    ],
)
async def test_work_found_by_any_accepted_id_form(client: TestClient[Any, Any], path: str) -> None:
    """Every accepted DOI/PMID/PMCID form, encoded or not, finds the same work."""
    resp = await client.get(path)
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["work_id"] == PCBI
    assert body["title"] == "Ten Simple Rules for Getting Published"


async def test_work_totals_per_source_and_group(client: TestClient[Any, Any], kit: Kit) -> None:
    """The work shows each source's metrics, ALM slots (null vs 0) and the group sum."""
    body = await (await client.get(f"/api/v1/works/{PEERJ}")).json()
    by_source = {s["name"]: s for s in body["sources"]}
    assert set(by_source) == {"crossref", "openalex", "europepmc"}
    stored = {
        s.source: s.metrics["citations"] for s in (await kit.store.states_for([PEERJ]))[PEERJ]
    }
    assert {n: s["metrics"]["citations"] for n, s in by_source.items()} == stored
    assert body["groups"]["cited"] == sum(stored.values())
    assert body["groups"]["viewed"] == 0
    assert by_source["crossref"]["alm"]["pdf"] is None
    assert by_source["crossref"]["alm"]["total"] == stored["crossref"]


@pytest.mark.parametrize(
    ("path", "status", "needle"),
    [
        ("/api/v1/works/not-a-doi", 400, "not-a-doi"),
        ("/api/v1/works/10.12/x", 400, "10.12/x"),
        ("/api/v1/works/10.9999/unknown.work", 404, "10.9999/unknown.work"),
        ("/api/v1/works?page=0", 400, "page"),
        ("/api/v1/works?per_page=abc", 400, "per_page"),
        ("/api/v1/works?ids=10.7717/peerj.4375,garbage", 400, "garbage"),
        (f"/api/v1/works/{PEERJ}/history?period=week", 400, "period"),
        (f"/api/v1/works/{PEERJ}/history?source=nosuch", 400, "source"),
        ("/api/v1/nothing-here", 404, "no such path: /api/v1/nothing-here"),
    ],
)
async def test_bad_input_gets_json_error(
    client: TestClient[Any, Any], path: str, status: int, needle: str
) -> None:
    """Malformed ids and parameters get a JSON 400 naming them; unknown works a JSON 404."""
    resp = await client.get(path)
    assert resp.status == status
    body = await resp.json()
    assert needle in body["error"]


async def test_paged_list(client: TestClient[Any, Any]) -> None:
    """The list pages through every work with totals."""
    first = await (await client.get("/api/v1/works?per_page=1&page=1")).json()
    second = await (await client.get("/api/v1/works?per_page=1&page=2")).json()
    assert first["total"] == 2 and first["total_pages"] == 2
    assert {first["data"][0]["work_id"], second["data"][0]["work_id"]} == {PCBI, PEERJ}


async def test_batch_lookup_reports_missing(client: TestClient[Any, Any]) -> None:
    """`ids=a,b` returns the known works and names the unknown ones."""
    body = await (await client.get(f"/api/v1/works?ids=pmid:18974831,{PEERJ},10.9999/nope")).json()
    assert sorted(w["work_id"] for w in body["data"]) == sorted([PCBI, PEERJ])
    assert body["missing"] == ["10.9999/nope"]


async def test_register_reports_each_id(client: TestClient[Any, Any], kit: Kit) -> None:
    """POST registers valid ids, says which existed, and names invalid ones; nothing valid lost."""
    resp = await client.post(
        "/api/v1/works",
        json=["10.1234/NEW.ONE", "https://doi.org/10.1234/new.one", PEERJ, "bogus"],
        headers=await kit.admin_headers(),
    )
    assert resp.status == 200
    results = (await resp.json())["data"]
    assert [r["status"] for r in results] == ["created", "exists", "exists", "invalid"]
    assert "bogus" in results[3]["error"]
    assert (await client.get("/api/v1/works/10.1234/new.one")).status == 200


@pytest.mark.parametrize("body", ['{"ids": "10.1/x"}', "not json", "[]", "[1, 2]"])
async def test_register_rejects_malformed_body(
    client: TestClient[Any, Any], kit: Kit, body: str
) -> None:
    """A body that is not a list of id strings is a JSON 400."""
    headers = {"Content-Type": "application/json", **await kit.admin_headers()}
    resp = await client.post("/api/v1/works", data=body, headers=headers)
    assert resp.status == 400
    assert "error" in await resp.json()


async def test_history_by_year_uses_upstream_years(client: TestClient[Any, Any]) -> None:
    """OpenAlex's per-year counts come back zero-filled, with what they leave undated (41
    citations, 20 of them in counts_by_year) as one undated bucket; snapshot sources roll up
    from days; every source's buckets add up to its total."""
    body = await (await client.get(f"/api/v1/works/{PCBI}/history?period=year")).json()
    by_source = {d["source"]: d for d in body["data"]}
    openalex = by_source["openalex"]
    assert openalex["buckets"][0] == {"undated": True, "metrics": {"citations": 21}, "total": 21}
    years = {b["year"]: b["total"] for b in openalex["buckets"][1:]}
    assert years[2020] == 0  # absent from counts_by_year in the fixture
    assert years[2021] == 5
    assert (openalex["origin"], openalex["basis"], openalex["total"]) == (
        "upstream",
        {"citations": "upstream"},
        41,
    )
    for history in body["data"]:
        assert sum(b["total"] for b in history["buckets"]) == history["total"], history["source"]
    assert by_source["crossref"]["origin"] == "snapshots"
    assert by_source["crossref"]["buckets"] == [
        {"year": 2026, "metrics": {"citations": 27}, "total": 27}
    ]


@pytest.fixture
async def datacite_client(tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    """An API over a pipeline that fetched ZENODO from DataCite (the stub's recording)."""
    async with pipeline_kit(tmp_path, sources=("datacite",)) as k:
        await k.register([ZENODO])
        await refresh_until_idle(k.pipeline)
        async with api_client(k, tmp_path) as c:
            yield c


async def test_upstream_months_reach_the_history_and_v5(
    datacite_client: TestClient[Any, Any],
) -> None:
    """DataCite's viewsOverTime/downloadsOverTime are the month buckets (gaps zero) and, summed,
    the year buckets, in v1 history and in v5 by_month/by_year; citations (yearly upstream)
    fall back to snapshots by month. Each v1 view adds up to the source's total; v5's by_year
    is the sum of its by_month (ALM's rule), so citations count in their snapshot's year."""
    client = datacite_client
    url = f"/api/v1/works/{ZENODO}/history?source=datacite&period="
    [months] = (await (await client.get(url + "month")).json())["data"]
    assert months["basis"] == {
        "views": "upstream",
        "downloads": "upstream",
        "citations": "snapshots",
    }
    views = {(b["year"], b["month"]): b["metrics"]["views"] for b in months["buckets"]}
    assert views[2021, 5] == 3 and views[2022, 1] == 14 and views[2021, 6] == 0
    assert sum(b["total"] for b in months["buckets"]) == months["total"] == 17 + 5 + 2
    [years] = (await (await client.get(url + "year")).json())["data"]
    by_year = {b["year"]: b["metrics"] for b in years["buckets"]}
    assert by_year[2021] == {"citations": 0, "downloads": 0, "views": 3}
    assert by_year[2022] == {"citations": 1, "downloads": 5, "views": 14}
    body = await (await client.get(f"/api/v5/articles?ids={ZENODO}&source_id=datacite")).json()
    [source] = body["data"][0]["sources"]
    v5_months = {(r["year"], r["month"]): r for r in source["by_month"]}
    assert v5_months[2021, 5]["total"] == 3 and v5_months[2022, 1]["total"] == 14 + 5
    assert v5_months[2022, 1]["html"] == 14 and v5_months[2022, 1]["pdf"] == 5
    v5_years = {r["year"]: r["total"] for r in source["by_year"]}
    assert v5_years[2022] == 14 + 5
    month_sums: dict[int, int] = {}
    for row in source["by_month"]:
        month_sums[row["year"]] = month_sums.get(row["year"], 0) + row["total"]
    assert v5_years == month_sums
    assert sum(v5_years.values()) == source["metrics"]["total"]


async def test_sources_listed_with_status(client: TestClient[Any, Any]) -> None:
    """The sources endpoint lists every plug-in with its metrics and collection status."""
    body = await (await client.get("/api/v1/sources")).json()
    by_name = {s["name"]: s for s in body["data"]}
    assert by_name["openalex"]["batch_size"] == 50
    assert by_name["crossref"]["status"] == {"works": 2, "errors": 0}


async def test_health_and_readiness(client: TestClient[Any, Any]) -> None:
    """Liveness and readiness answer (metrics: test_openapi.py, on their own port)."""
    assert (await client.get("/healthz")).status == 200
    assert (await (await client.get("/readyz")).json()) == {"status": "ready"}


async def test_v5_articles_shape(client: TestClient[Any, Any], kit: Kit) -> None:
    """ALM v5 clients get the v5 envelope, group figures and per-source slots and history."""
    resp = await client.get(f"/api/v5/articles?ids={PCBI},{PEERJ}&type=doi")
    assert resp.status == 200
    body = await resp.json()
    assert {k: body[k] for k in ("total", "total_pages", "page", "error")} == {
        "total": 2,
        "total_pages": 1,
        "page": 1,
        "error": None,
    }
    article = next(a for a in body["data"] if a["doi"] == PCBI)
    assert article["pmid"] == "18974831"
    assert article["pmcid"] == "2568856"
    assert article["issued"] == {"date-parts": [[2008, 10, 31]]}
    stored = {s.source: s.metrics["citations"] for s in (await kit.store.states_for([PCBI]))[PCBI]}
    assert article["cited"] == sum(stored.values())
    crossref = next(s for s in article["sources"] if s["name"] == "crossref")
    assert crossref["group_name"] == "cited"
    assert crossref["metrics"] == {
        "pdf": None,
        "html": None,
        "readers": None,
        "comments": None,
        "likes": None,
        "total": stored["crossref"],
    }
    assert crossref["by_year"] == [{"year": 2026, "total": stored["crossref"]}]


async def test_v5_summary_pmid_lookup_and_order(client: TestClient[Any, Any]) -> None:
    """`type=pmid` looks up by PMID, `info=summary` drops sources, `order=` sorts by a source."""
    summary = await (
        await client.get("/api/v5/articles?ids=18974831&type=pmid&info=summary")
    ).json()
    assert [a["doi"] for a in summary["data"]] == [PCBI]
    assert "sources" not in summary["data"][0]
    ordered = await (await client.get("/api/v5/articles?order=crossref&info=summary")).json()
    assert [a["doi"] for a in ordered["data"]] == [PEERJ, PCBI]  # 1015 > 27 citations


async def test_v5_lists_every_work_newest_first(client: TestClient[Any, Any], kit: Kit) -> None:
    """Without `ids` or `order`, v5 lists works as Lagotto did: by publication date, newest
    first, one date's works by DOI, undated works last (by DOI); pages are disjoint and
    complete; a date learned later moves the work."""
    dates = {
        "10.5555/c.2019": date(2019, 12, 31),
        "10.5555/b.2020": date(2020, 6, 1),
        "10.5555/d.undated": None,
        "10.5555/a.2020": date(2020, 6, 1),
        "10.5555/e.2008": date(2008, 11, 1),
        "10.5555/0.undated": None,
    }
    await kit.store.register([Work(d, doi=d, issued=issued) for d, issued in dates.items()])

    async def listing() -> list[str]:
        seen = []
        for page in (1, 2, 3, 4):
            body = await (await client.get(f"/api/v5/articles?per_page=3&page={page}")).json()
            assert body["total"] == 8 and body["total_pages"] == 3
            seen += [a["doi"] for a in body["data"]]
        return seen

    assert await listing() == [
        "10.5555/a.2020",
        "10.5555/b.2020",
        "10.5555/c.2019",
        PEERJ,  # 2018-02-13
        "10.5555/e.2008",
        PCBI,  # 2008-10-31
        "10.5555/0.undated",
        "10.5555/d.undated",
    ]
    await kit.store.update_works(
        [Work("10.5555/0.undated", doi="10.5555/0.undated", issued=date(2021, 1, 2))]
    )
    assert (await listing())[:2] == ["10.5555/0.undated", "10.5555/a.2020"]
    assert (await listing())[-1] == "10.5555/d.undated"


async def test_v5_order_with_a_publisher_ranks_that_publishers_works(
    client: TestClient[Any, Any], kit: Kit
) -> None:
    """`order=` with `publisher_id`/`publisher` ranks that publisher's works (it was a 400,
    which schemathesis rightly called valid data rejected); a publisher with none ranked, or
    an unknown name, gets an empty page."""
    works = await kit.store.get_works([PCBI, PEERJ])
    await kit.store.update_works(
        [replace(works[PCBI], publisher_id="340"), replace(works[PEERJ], publisher_id="4443")]
    )
    for query, expected in [
        ("order=crossref", [PEERJ, PCBI]),
        ("order=crossref&publisher_id=340", [PCBI]),
        ("order=crossref&publisher=4443", [PEERJ]),
        ("order=crossref&publisher_id=999", []),
        ("order=crossref&publisher=Nobody", []),
        ("order=crossref&publisher_id=340&page=2", []),
    ]:
        body = await (await client.get(f"/api/v5/articles?{query}&info=summary")).json()
        assert [a["doi"] for a in body["data"]] == expected, query
    one = await (await client.get("/api/v5/articles?order=crossref&publisher_id=340")).json()
    assert one["total"] == 1


@pytest.mark.parametrize(
    ("query", "needle"),
    [
        ("page=0", "page"),
        ("page=x", "page"),
        ("ids=abc&type=pmid", "abc"),
    ],
)
async def test_v5_bad_parameters(client: TestClient[Any, Any], query: str, needle: str) -> None:
    """v5 errors ALM clients do not rely on being lenient are JSON 400s naming the parameter
    or value (the lenient ones: test_api_v5_clients.py)."""
    resp = await client.get(f"/api/v5/articles?{query}")
    assert resp.status == 400
    assert needle in (await resp.json())["error"]
