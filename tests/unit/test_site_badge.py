"""The badge (services/site/badge.py): a work's counts per group equal to the API's, as SVG an
`<img>` can show (well-formed, escaped, no script), cached with an ETag; unknown and wrong ids
are badges too; open to anonymous readers even when reads need a key."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from services.api.app import init_app
from services.bootstrap import api_context
from services.embedded import refresh_until_idle
from services.settings import AccessSettings, Settings
from services.site.badge import BadgeCache, render, text_width
from tests.unit.pipeline_kit import pipeline_kit

PEERJ = "10.7717/peerj.4375"
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    async with pipeline_kit(tmp_path) as kit:
        await kit.register([PEERJ, "10.1234/none.yet"])
        await refresh_until_idle(kit.pipeline)
        access = AccessSettings(require_key=True)
        settings = Settings(data_dir=tmp_path, status_cache_seconds=0, access=access)
        app = init_app(api_context(settings, store=kit.store, bus=kit.bus))
        async with TestClient(TestServer(app)) as c:
            yield c


async def test_the_badge_shows_the_api_s_group_counts(client: TestClient[Any, Any]) -> None:
    resp = await client.get(f"/badge/{PEERJ}.svg")  # no key, though reads need one
    assert resp.status == 200 and resp.content_type == "image/svg+xml"
    assert resp.headers["Cache-Control"] == "public, max-age=300"
    svg = ET.fromstring(await resp.read())
    shown = [t.text for t in svg.iter(f"{SVG}text")]
    assert svg.find(f"{SVG}script") is None and shown[0] == "ALM"
    work = await client.get(f"/api/v1/works/{PEERJ}")
    assert work.status == 401  # reads need a key here: the badge did not
    groups = {g: n for g, n in (s.rsplit(" ", 1) for s in shown[1:])}
    assert groups and all(int(n.replace(",", "")) > 0 for n in groups.values())
    assert set(groups) <= {"cited", "viewed", "discussed", "saved", "recommended"}
    assert svg.get("aria-label") == "ALM: " + ", ".join(shown[1:])
    again = await client.get(f"/badge/{PEERJ}.svg", headers={"If-None-Match": resp.headers["ETag"]})
    assert again.status == 304


async def test_a_badge_equals_the_api(tmp_path: Path) -> None:
    async with pipeline_kit(tmp_path) as kit:
        await kit.register([PEERJ])
        await refresh_until_idle(kit.pipeline)
        app = init_app(
            api_context(
                Settings(data_dir=tmp_path, status_cache_seconds=0), store=kit.store, bus=kit.bus
            )
        )
        async with TestClient(TestServer(app)) as c:
            groups = (await (await c.get(f"/api/v1/works/{PEERJ}")).json())["groups"]
            svg = ET.fromstring(await (await c.get(f"/badge/{PEERJ}.svg")).read())
    shown = [t.text or "" for t in svg.iter(f"{SVG}text")][1:]
    expected = [
        f"{g} {groups[g]:,}"
        for g in ("cited", "viewed", "discussed", "saved", "recommended")
        if groups[g]
    ]
    assert shown == expected and expected


@pytest.mark.parametrize(
    ("path", "status", "says"),
    [
        ("/badge/10.1234/none.yet.svg", 200, "no metrics yet"),
        ("/badge/10.9999/unknown.svg", 404, "unknown work"),
        ("/badge/not-an-id.svg", 400, "not a DOI, PMID or PMCID"),
    ],
)
async def test_works_without_numbers_and_wrong_ids_are_badges(
    client: TestClient[Any, Any], path: str, status: int, says: str
) -> None:
    resp = await client.get(path)
    assert resp.status == status and resp.content_type == "image/svg+xml"
    svg = ET.fromstring(await resp.read())
    assert [t.text for t in svg.iter(f"{SVG}text")] == ["ALM", says]
    if status != 200:
        assert resp.headers["Cache-Control"] == "no-store"


def test_text_is_escaped_and_boxes_fit_it() -> None:
    svg = ET.fromstring(render("A&B", ["<x> 1"], 'say "hi"'))
    assert [t.text for t in svg.iter(f"{SVG}text")] == ["A&B", "<x> 1"]
    widths = [int(r.get("width") or 0) for r in svg.iter(f"{SVG}rect")]
    assert widths == [text_width("A&B") + 12, text_width("<x> 1") + 12]
    assert int(svg.get("width") or 0) == sum(widths)
    assert text_width("mmmm") > text_width("iiii")


def test_the_cache_forgets_after_its_time() -> None:
    now = [0.0]
    cache = BadgeCache(ttl=10, clock=lambda: now[0])
    etag = cache.put("w", b"<svg/>")
    assert cache.get("w") == (b"<svg/>", etag)
    now[0] = 10.0
    assert cache.get("w") is None
