"""API v5 as the existing ALM clients call it: each test replays the exact request one of them
sends (wire encoding, headers, method) and checks every field that client reads with its
conversion (tests/unit/clients_kit.py; the requests are listed in docs/clients.md). DOIs are the
fixture works' instead of PLOS's."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp import FormData
from aiohttp.test_utils import TestClient

from services.embedded import refresh_until_idle
from services.fetchers.registry import SOURCES
from tests.unit import clients_kit as read
from tests.unit.clients_kit import keyed_api_client
from tests.unit.pipeline_kit import Kit, pipeline_kit

PCBI = "10.1371/journal.pcbi.1000204"  # issued 2008-10-31, PMID 18974831
PEERJ = "10.7717/peerj.4375"  # issued 2018-02-13
PCBI_Q = "10.1371%2Fjournal.pcbi.1000204"  # requests' encoding of the slash
PEERJ_Q = "10.7717%2Fpeerj.4375"
PYALM = {
    "Accept": "application/json",
    "User-Agent": "python-requests/2.34.2",
    "Accept-Encoding": "gzip, deflate",
}
HTTR = {
    "Accept": "application/json, text/xml, application/xml, */*",
    "User-Agent": "libcurl/8.5.0 r-curl/5.2.0 httr/1.4.7",
}


@pytest.fixture
async def kit(tmp_path: Path) -> AsyncIterator[Kit]:
    async with pipeline_kit(tmp_path) as k:
        k.clock.advance(timedelta(microseconds=982616))  # as the issue saw: 12:00:00.982616
        await k.register([PCBI, PEERJ])
        await refresh_until_idle(k.pipeline)
        yield k


@pytest.fixture
async def client(kit: Kit, tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    async with keyed_api_client(kit, tmp_path) as c:
        yield c


async def _get(client: TestClient[Any, Any], query: str, headers: dict[str, str]) -> Any:
    resp = await client.get(f"/api/v5/articles?{query}", headers=headers)
    assert resp.status == 200, await resp.text()
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    body = await resp.json()
    read.v5_envelope(body)
    return body


# -- pyalm (get_alm) ----------------------------------------------------------------------------


async def test_pyalm_summary(client: TestClient[Any, Any]) -> None:
    """`get_alm(doi, info='summary')`: update_date parses with pyalm's strptime (it carried
    microseconds before, and pyalm crashed on every work)."""
    body = await _get(client, f"ids={PCBI_Q}&info=summary&api_key=k123", PYALM)
    [work] = body["data"]
    read.v5_work(work, with_sources=False)
    assert work["update_date"] is not None and work["doi"] == PCBI
    assert (body["total"], body["total_pages"], body["page"]) == (1, 1, 1)


async def test_pyalm_detail_with_source_filter(client: TestClient[Any, Any]) -> None:
    """`get_alm([a, b], info='detail', source='europepmc', per_page=10)`: `source=` (the v5
    name until Lagotto 3.9) limits the sources; events in ALM's shape, newest work first."""
    query = f"ids={PCBI_Q}%2C{PEERJ_Q}&info=detail&source=europepmc&per_page=10&api_key=k"
    body = await _get(client, query, PYALM)
    assert [w["doi"] for w in body["data"]] == [PEERJ, PCBI]
    for work in body["data"]:
        read.v5_work(work, with_sources=True)
        [source] = work["sources"]
        assert source["name"] == "europepmc"
    events = body["data"][0]["sources"][0]["events"]
    assert events, "the fixture's Europe PMC answer lists citing works"
    for entry in events:
        read.v5_event(entry)
        read.journal_cite(entry["event"])
    csl = body["data"][0]["sources"][0]["events_csl"]
    assert csl == [e["event_csl"] for e in events]


async def test_pyalm_pmid_lookup(client: TestClient[Any, Any]) -> None:
    """`get_alm('18974831', id_type='pmid', info='summary')`."""
    body = await _get(client, "ids=18974831&type=pmid&info=summary&api_key=k", PYALM)
    assert [w["doi"] for w in body["data"]] == [PCBI]
    assert body["data"][0]["pmid"] == "18974831"


async def test_pyalm_source_without_ids_selects_works_counted(
    client: TestClient[Any, Any], kit: Kit
) -> None:
    """`get_alm(info='summary', source='crossref')`: the works whose crossref count is above
    zero (ALM), not every work; paging past the end keeps the page asked for."""
    body = await _get(client, "info=summary&source=crossref&api_key=k", PYALM)
    counted = [
        s.work_id
        for states in (await kit.store.states_for([PCBI, PEERJ])).values()
        for s in states
        if s.source == "crossref" and s.metrics.get("citations", 0) > 0
    ]
    assert body["total"] == len(counted) > 0
    assert sorted(w["doi"] for w in body["data"]) == sorted(counted)
    far = await _get(client, "info=summary&source=crossref&per_page=2&page=10&api_key=k", PYALM)
    assert far["data"] == [] and far["page"] == 10 and far["total"] == len(counted)


async def test_pyalm_order_and_publisher(client: TestClient[Any, Any], kit: Kit) -> None:
    """`order='crossref'` sorts by its count; `publisher=` (pyalm's name of `publisher_id`)
    keeps that publisher's works, each carrying its member id as a number (null if unknown)."""
    body = await _get(client, "info=summary&order=crossref&per_page=10&api_key=k", PYALM)
    assert [w["doi"] for w in body["data"]] == [PEERJ, PCBI]  # 1015 > 27 citations
    assert [w["publisher_id"] for w in body["data"]] == [None, None]  # no import named them
    works = await kit.store.get_works([PCBI])
    await kit.store.update_works([replace(works[PCBI], publisher_id="340")])
    body = await _get(client, "info=summary&publisher=340&api_key=k", PYALM)
    assert [(w["doi"], w["publisher_id"]) for w in body["data"]] == [(PCBI, 340)]
    body = await _get(client, "info=summary&order=crossref&publisher=340&api_key=k", PYALM)
    assert [w["doi"] for w in body["data"]] == [PCBI]
    body = await _get(client, "info=summary&source=crossref&publisher=340&api_key=k", PYALM)
    assert [w["doi"] for w in body["data"]] == [PCBI]


# -- rOpenSci alm ---------------------------------------------------------------------------------


async def test_r_double_encoded_doi(client: TestClient[Any, Any]) -> None:
    """`alm_ids(doi=)` pre-encodes the slash and httr encodes again: `%252F` on the wire."""
    body = await _get(client, "type=doi&ids=10.1371%252Fjournal.pcbi.1000204", HTTR)
    [work] = body["data"]
    read.v5_work(work, with_sources=True)
    assert [s["name"] for s in work["sources"]] == list(SOURCES)  # same list for every work


@pytest.mark.parametrize("multipart", [True, False])
async def test_r_many_ids_by_post_with_override(
    client: TestClient[Any, Any], multipart: bool
) -> None:
    """2-50 ids: POST + `X-HTTP-Method-Override: GET`, fields in a multipart body (httr's
    default) or urlencoded (docs/api.md's curl example); the query string is merged."""
    form = FormData(default_to_multipart=multipart)
    form.add_field("info", "summary")
    form.add_field("type", "doi")
    form.add_field("ids", "10.1371%2Fjournal.pcbi.1000204,10.7717%2Fpeerj.4375")
    resp = await client.post(
        "/api/v5/articles?per_page=1",
        data=form,
        headers={**HTTR, "X-HTTP-Method-Override": "GET"},
    )
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    read.v5_envelope(body)
    assert (body["total"], body["total_pages"], body["page"]) == (2, 2, 1)
    assert [w["doi"] for w in body["data"]] == [PEERJ]


async def test_r_publisher_id_in_a_posted_form(client: TestClient[Any, Any], kit: Kit) -> None:
    """`publisher_id` as a form field of the overridden POST filters as in the query string."""
    works = await kit.store.get_works([PEERJ])
    await kit.store.update_works([replace(works[PEERJ], publisher_id="4443")])
    form = FormData()
    form.add_field("ids", f"{PCBI_Q},{PEERJ_Q}")
    form.add_field("publisher_id", "4443")
    resp = await client.post(
        "/api/v5/articles", data=form, headers={**HTTR, "X-HTTP-Method-Override": "GET"}
    )
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert [(w["doi"], w["publisher_id"]) for w in body["data"]] == [(PEERJ, 4443)]


async def test_unknown_form_field_is_a_400(client: TestClient[Any, Any]) -> None:
    """The query string may carry anything (jQuery's `_`), a POST's form only the parameters."""
    resp = await client.post(
        "/api/v5/articles?_=1",
        data={"ids": PCBI, "colour": "blue"},
        headers={"X-HTTP-Method-Override": "GET"},
    )
    assert resp.status == 400 and "colour" in (await resp.json())["error"]


@pytest.mark.parametrize("override", [None, "PUT"])
async def test_post_without_override_is_refused(
    client: TestClient[Any, Any], override: str | None
) -> None:
    """A POST that is not a GET in disguise: a JSON 400 naming the header it needs."""
    headers = {"X-HTTP-Method-Override": override} if override else {}
    resp = await client.post("/api/v5/articles", data={"ids": PCBI}, headers=headers)
    assert resp.status == 400
    assert "X-HTTP-Method-Override: GET" in (await resp.json())["error"]


async def test_r_source_id_only_and_events(client: TestClient[Any, Any]) -> None:
    """`alm_ids(source_id='crossref')` and `alm_events(doi, source_id=...)`."""
    body = await _get(client, "source_id=crossref", HTTR)
    for work in body["data"]:
        read.v5_work(work, with_sources=True)
        assert [s["name"] for s in work["sources"]] == ["crossref"]
        assert work["sources"][0]["metrics"]["total"] > 0
    body = await _get(client, f"info=detail&source_id=europepmc&type=doi&ids={PEERJ_Q}", HTTR)
    [source] = body["data"][0]["sources"]
    assert source["events"] and next(iter(source["events"][0])) == "event"  # R: x[[1]]


async def test_r_03_guest_key_and_source(client: TestClient[Any, Any]) -> None:
    """rOpenSci alm 0.3 always sends the PLOS guest key and `source=`."""
    query = f"api_key=rkfDr76z75benY3pytM1&source=crossref&type=doi&ids={PCBI_Q}"
    body = await _get(client, query, HTTR)
    assert [s["name"] for s in body["data"][0]["sources"]] == ["crossref"]


# -- almviz -------------------------------------------------------------------------------------


async def test_almviz_article_page(client: TestClient[Any, Any]) -> None:
    """Lagotto's article page: raw slash in `ids`, no `info`; by_* lists, by_year = sum of
    by_month, history rows with the plotted keys."""
    body = await _get(client, f"api_key=K&ids={PEERJ}&type=doi", {"Accept": "application/json"})
    [work] = body["data"]
    read.v5_work(work, with_sources=True)
    fetched = [s for s in work["sources"] if s["update_date"]]
    assert {s["name"] for s in fetched} >= {"crossref", "openalex", "europepmc"}
    assert all(s["by_month"] for s in fetched)


async def test_almviz_events_list(client: TestClient[Any, Any]) -> None:
    """`show.js`: every source's `events_csl` merged; each item's author/container-title/url."""
    body = await _get(client, f"api_key=K&ids={PEERJ}&type=doi&info=detail", {})
    items = [c for s in body["data"][0]["sources"] for c in s["events_csl"]]
    assert items
    for item in items:
        read.csl(item)


async def test_cors_preflight(client: TestClient[Any, Any]) -> None:
    """A cross-origin POST with the override header is preflighted: OPTIONS answers it."""
    resp = await client.options(
        "/api/v5/articles",
        headers={
            "Origin": "https://journal.example.org",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-http-method-override",
        },
    )
    assert resp.status == 204
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in resp.headers["Access-Control-Allow-Methods"]
    assert "X-HTTP-Method-Override" in resp.headers["Access-Control-Allow-Headers"]


async def test_jsonp(client: TestClient[Any, Any]) -> None:
    """`callback=NAME`: `NAME(<json>)` as JavaScript; errors stay JSON with their status (a
    browser runs no script served with an error status); a callback that is not a JavaScript
    name is a JSON 400."""
    resp = await client.get(f"/api/v5/articles?callback=jQuery1_2&ids={PCBI}&info=summary")
    text = await resp.text()
    assert resp.status == 200 and resp.content_type == "application/javascript"
    assert text.startswith('jQuery1_2({"total": 1,') and text.endswith("})")
    bad = await client.get("/api/v5/articles?callback=cb&page=0")
    assert bad.status == 400 and bad.content_type == "application/json"
    assert "page" in (await bad.json())["error"]
    evil = await client.get("/api/v5/articles?callback=alert(1)//")
    assert evil.status == 400 and evil.content_type == "application/json"
    assert evil.headers["Access-Control-Allow-Origin"] == "*"


# -- leniency ALM clients rely on, and the 400s kept ----------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        f"ids={PCBI}&type=url",
        f"ids={PCBI}&type=scp",
        f"ids={PCBI}&type=wos",
        f"ids={PCBI}&info=history",
        f"ids={PCBI}&info=totals",
        f"ids={PCBI}&per_page=0",
        f"ids={PCBI}&per_page=51",
        f"ids={PCBI}&per_page=abc",
        f"ids={PCBI}&order=twitter",
    ],
)
async def test_lenient_where_alm_was(client: TestClient[Any, Any], query: str) -> None:
    """Unknown type → doi, unknown info → default, per_page outside 1-50 → 50, unknown order →
    default order: what Lagotto did and what R/pyalm users send."""
    body = await _get(client, query, {})
    assert [w["doi"] for w in body["data"]] == [PCBI]
    read.v5_work(body["data"][0], with_sources=True)


async def test_unknown_source_lists_no_sources(client: TestClient[Any, Any]) -> None:
    """An unknown `source_id` (or `source`) selects as if absent; every work lists no sources."""
    for name in ("source_id", "source"):
        body = await _get(client, f"{name}=twitter", {})
        assert body["total"] == 2 and all(w["sources"] == [] for w in body["data"])


async def test_empty_result_is_page_zero(client: TestClient[Any, Any]) -> None:
    """Nothing found: `total 0, total_pages 0, page 0` as ALM answered."""
    body = await _get(client, "ids=10.9999/unknown.work&info=summary", {})
    assert body == {"total": 0, "total_pages": 0, "page": 0, "error": None, "data": []}


@pytest.mark.parametrize(
    ("query", "needle"),
    [("ids=abc&type=pmid", "abc"), ("page=0", "page"), ("ids=10.12/x", "10.12")],
)
async def test_truly_broken_input_is_still_a_400(
    client: TestClient[Any, Any], query: str, needle: str
) -> None:
    """An id that is no identifier at all, or a page that is not a page: JSON 400, with CORS."""
    resp = await client.get(f"/api/v5/articles?{query}")
    assert resp.status == 400
    assert needle in (await resp.json())["error"]
    assert resp.headers["Access-Control-Allow-Origin"] == "*"
