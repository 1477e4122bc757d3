"""A work's page (services/site/work.py) over HTTP: its numbers equal /api/v1/works/{id}'s (per
group and each source's ALM slots), one chart point per period the API's history gives, the
period switch, links to the DOI and the provenance, the badge snippet, escaping, and wrong or
unknown ids as HTML pages; reads need a key when ALM_API_REQUIRE_KEY says so."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from services.core.aggregation import Aggregate
from services.core.events import SourceEvent, Status
from services.core.works import Work
from services.embedded import refresh_until_idle
from services.settings import AccessSettings, Settings
from services.site.work_parts import history_section
from tests.unit.pipeline_kit import Kit, api_client, pipeline_kit

PEERJ = "10.7717/peerj.4375"
PAGE = f"/works/{PEERJ}"


class Cells(HTMLParser):
    """The text of elements with a `data-group`, `data-slot` or `data-period` attribute,
    and every link and `<svg>` title."""

    def __init__(self) -> None:
        super().__init__()
        self.groups: dict[str, str] = {}
        self.slots: dict[tuple[str, str], str] = {}
        self.points: dict[str, list[tuple[str, int]]] = {}
        self.links: list[str] = []
        self._open: tuple[str, Any] | None = None
        self._chart = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "a" and a.get("href"):
            self.links.append(a["href"] or "")
        if tag == "section" and (a.get("id") or "").startswith("source-"):
            self._chart = (a.get("id") or "")[7:]
            self.points[self._chart] = []
        if tag == "circle" and a.get("data-period"):
            self.points[self._chart].append((a["data-period"] or "", int(a["data-value"] or 0)))
        if "data-group" in a:
            self._open = ("group", a["data-group"])
        elif "data-slot" in a:
            self._open = ("slot", (a["data-source"], a["data-slot"]))

    def handle_data(self, data: str) -> None:
        if self._open is None:
            return
        kind, key = self._open
        if kind == "group":
            self.groups[key] = data
        else:
            self.slots[key] = data
        self._open = None


def parse(html: str) -> Cells:
    cells = Cells()
    cells.feed(html)
    return cells


def count(shown: str) -> int | None:
    return None if shown == "—" else int(shown.replace(",", ""))


@pytest.fixture
async def kit(tmp_path: Path) -> AsyncIterator[Kit]:
    async with pipeline_kit(tmp_path) as k:
        await k.register([PEERJ, "10.1234/none.yet"])
        await refresh_until_idle(k.pipeline)
        yield k


@pytest.fixture
async def client(kit: Kit, tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    async with api_client(kit, tmp_path) as c:
        yield c


async def test_the_numbers_equal_the_api_s(client: TestClient[Any, Any]) -> None:
    resp = await client.get(PAGE)
    assert resp.status == 200 and resp.content_type == "text/html"
    cells = parse(await resp.text())
    work = await (await client.get(f"/api/v1/works/{PEERJ}")).json()
    assert {g: count(n) for g, n in cells.groups.items()} == work["groups"]
    assert any(work["groups"].values())  # a work with numbers
    expected = {
        (s["name"], slot): value
        for s in work["sources"]
        for slot, value in (s["alm"] or dict.fromkeys(("pdf", "total"))).items()
    }
    shown = {key: count(v) for key, v in cells.slots.items()}
    assert {k: v for k, v in shown.items() if k in expected} == expected
    assert {name for name, _ in shown} == {s["name"] for s in work["sources"]}
    for s in work["sources"]:
        assert s["provenance"] in cells.links
    assert f"https://doi.org/{PEERJ}" in cells.links


@pytest.mark.parametrize("period", ["day", "month", "year"])
async def test_one_chart_point_per_period_of_the_api_s_history(
    client: TestClient[Any, Any], period: str
) -> None:
    html = await (await client.get(f"{PAGE}?period={period}")).text()
    cells = parse(html)
    history = await (await client.get(f"/api/v1/works/{PEERJ}/history?period={period}")).json()
    assert history["data"]
    for h in history["data"]:
        dated = [b for b in h["buckets"] if not b.get("undated")]
        assert [v for _, v in cells.points[h["source"]]] == [b["total"] for b in dated]
        assert all(
            label.count("-") == ("year", "month", "day").index(period)
            for label, _ in cells.points[h["source"]]
        )
    assert f'href="{PAGE}?period={period}#history" aria-current="page"' in html


async def test_the_page_has_its_json_twin_a_title_and_the_badge_snippet(
    client: TestClient[Any, Any],
) -> None:
    resp = await client.get(f"/works/https://doi.org/{PEERJ.upper()}")  # another form of the id
    html = await resp.text()
    assert resp.status == 200
    assert f'<link rel="alternate" type="application/json" href="/api/v1/works/{PEERJ}"' in html
    assert re.search(r"<title>[^<]+ · ALM</title>", html)
    assert f"/badge/{PEERJ}.svg&quot;&gt;" in html  # the snippet, escaped to be shown
    assert re.findall(r"<script[^>]*>", html) == ['<script src="/static/work.js" defer>']
    csp = resp.headers["Content-Security-Policy"]
    assert csp.startswith("default-src 'none'") and "script-src 'self'; connect-src 'self'" in csp
    assert "unsafe" not in csp
    js = await client.get("/static/work.js")
    assert js.status == 200 and js.content_type == "text/javascript"
    assert "/api/v1/changes?work=" in await js.text()


async def test_a_work_without_numbers_yet(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/works/10.1234/none.yet")
    assert resp.status == 200
    cells = parse(await resp.text())
    assert set(cells.groups.values()) == {"0"}


@pytest.mark.parametrize(
    ("path", "status", "title"),
    [
        ("/works/10.9999/unknown", 404, "Unknown work"),
        ("/works/not-an-id", 400, "Not a work identifier"),
        (f"{PAGE}?period=week", 400, "Wrong parameter"),
    ],
)
async def test_wrong_and_unknown_ids_are_pages(
    client: TestClient[Any, Any], path: str, status: int, title: str
) -> None:
    resp = await client.get(path)
    assert resp.status == status and resp.content_type == "text/html"
    assert f"<h1>{title}</h1>" in await resp.text()


async def test_metadata_from_upstream_is_escaped(kit: Kit, tmp_path: Path) -> None:
    await kit.store.register(
        [Work("10.5555/x", doi="10.5555/x", title='<script>alert("x")</script>', pmid="123")]
    )
    async with api_client(kit, tmp_path) as c:
        html = await (await c.get("/works/10.5555/x")).text()
    assert "<script>" not in html and "&lt;script&gt;alert(&quot;x&quot;)" in html
    assert 'href="https://pubmed.ncbi.nlm.nih.gov/123/"' in html


async def test_reads_need_a_key_when_the_api_s_do(kit: Kit, tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path, status_cache_seconds=0, access=AccessSettings(require_key=True)
    )
    async with api_client(kit, tmp_path, settings=settings) as c:
        assert (await c.get(PAGE)).status == 401
        headers = await kit.admin_headers()
        assert (await c.get(PAGE, headers=headers)).status == 200


@pytest.mark.parametrize(
    ("raw", "location"),
    [
        (f"https://doi.org/{PEERJ.upper()}", PAGE),
        ("PMC5815332", "/works/pmcid:PMC5815332"),
        ("29456894", "/works/pmid:29456894"),
    ],
)
async def test_the_find_form_goes_to_the_work_s_page(
    client: TestClient[Any, Any], raw: str, location: str
) -> None:
    form = await client.get("/works")
    assert form.status == 200 and 'name="id"' in await form.text()
    resp = await client.get("/works", params={"id": raw}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == location
    landed = await client.get(location)
    assert landed.status == 200
    assert f'href="https://doi.org/{PEERJ}"' in await landed.text()  # the same work


async def test_the_find_form_says_what_is_wrong(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/works", params={"id": "<nope>"})
    html = await resp.text()
    assert resp.status == 400 and 'role="alert"' in html and 'aria-describedby="problem"' in html
    assert 'value="&lt;nope&gt;"' in html


def test_the_undated_remainder_is_said_beside_the_chart() -> None:
    history = {
        "period": "year",
        "origin": "upstream",
        "buckets": [
            {"undated": True, "metrics": {}, "total": 608},
            {"year": 2020, "metrics": {}, "total": 2},
        ],
    }
    html = history_section("europepmc", "Europe PMC", history)
    assert "Not on the chart: 608 earlier or not dated" in html
    assert html.count("<circle") == 1 and '<th scope="row">undated</th>' in html
    assert "Not on the chart" not in history_section(
        "x", "X", {**history, "buckets": [{"year": 2020, "metrics": {}, "total": 2}]}
    )


async def test_events_are_the_api_s_with_their_links(client: TestClient[Any, Any]) -> None:
    html = await (await client.get(PAGE)).text()
    cells = parse(html)
    v5 = await client.get(
        "/api/v5/articles", params={"ids": PEERJ, "info": "detail", "source_id": "europepmc"}
    )
    [source] = (await v5.json())["data"][0]["sources"]
    urls = [e["event_url"] for e in source["events"] if e["event_url"]]
    assert urls and all(u in cells.links for u in urls)
    assert f"Events ({len(source['events']):,})" in html


async def test_a_source_in_error_says_so(kit: Kit, tmp_path: Path) -> None:
    [state] = (await kit.store.states([(PEERJ, "crossref")])).values()
    failed = replace(state, status=Status.ERROR, error="http 503: <b>down</b>")
    await kit.store.write_aggregates([Aggregate(failed, applied=True)])
    async with api_client(kit, tmp_path) as c:
        html = await (await c.get(PAGE)).text()
        work = await (await c.get(f"/api/v1/works/{PEERJ}")).json()
    [crossref] = [s for s in work["sources"] if s["name"] == "crossref"]
    assert crossref["status"] == "error"
    assert '<span class="error">error</span>: <span class="error">http 503: &lt;b&gt;down' in html
    assert f"{crossref['alm']['total']:,}" in html  # the numbers it had stay


async def test_every_source_s_events_come_from_one_read(
    kit: Kit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page reads the events of all its sources at once (`events_by_source`), not one read
    a source, and lists what the per-source reads give, each under its own source."""
    [state] = (await kit.store.states([(PEERJ, "crossref")])).values()
    citing = SourceEvent("cited-by-1", "2026-01-02", "https://example.org/citing", {})
    await kit.store.write_aggregates([Aggregate(state, applied=True, events=(citing,))])
    names = [s.source for s in (await kit.store.states_for([PEERJ]))[PEERJ]]
    per_source = {n: len(await kit.store.events(PEERJ, n)) for n in names}
    assert sum(1 for n in per_source.values() if n) >= 2  # two sources with events
    asked: list[list[str]] = []
    batched = kit.store.events_by_source

    async def counted(work_id: str, sources: Sequence[str]) -> dict[str, list[SourceEvent]]:
        asked.append(list(sources))
        return await batched(work_id, sources)

    async def one_source(work_id: str, source: str) -> list[SourceEvent]:
        raise AssertionError(f"events of {source} read alone")

    monkeypatch.setattr(kit.store, "events_by_source", counted)
    monkeypatch.setattr(kit.store, "events", one_source)
    async with api_client(kit, tmp_path) as c:
        html = await (await c.get(PAGE)).text()
    assert asked == [names]
    sections = dict(re.findall(r'<section id="source-([^"]+)"(.*?)</section>', html, re.S))
    assert set(sections) == set(names)
    for name, n in per_source.items():
        assert (f"Events ({n:,})" in sections[name]) == bool(n)
    assert 'href="https://example.org/citing"' in sections["crossref"]


async def test_v5_details_read_every_source_s_events_at_once(
    kit: Kit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`/api/v5/articles?info=detail` (services/api/lookup.py) reads the events of a work's
    sources in one read too, and gives each source its own."""
    names = [s.source for s in (await kit.store.states_for([PEERJ]))[PEERJ]]
    per_source = {n: len(await kit.store.events(PEERJ, n)) for n in names}
    assert any(per_source.values())
    asked: list[list[str]] = []
    batched = kit.store.events_by_source

    async def counted(work_id: str, sources: Sequence[str]) -> dict[str, list[SourceEvent]]:
        asked.append(list(sources))
        return await batched(work_id, sources)

    async def one_source(work_id: str, source: str) -> list[SourceEvent]:
        raise AssertionError(f"events of {source} read alone")

    monkeypatch.setattr(kit.store, "events_by_source", counted)
    monkeypatch.setattr(kit.store, "events", one_source)
    async with api_client(kit, tmp_path) as c:
        resp = await c.get("/api/v5/articles", params={"ids": PEERJ, "info": "detail"})
        [work] = (await resp.json())["data"]
    assert len(asked) == 1 and set(asked[0]) == set(names)
    shown = {s["name"]: len(s["events"]) for s in work["sources"] if s["name"] in per_source}
    assert shown == per_source
