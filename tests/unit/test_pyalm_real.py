"""The real pyalm (lagotto/pyalm, the Python v5 client) against the API, when a developer has
it: pyalm is not on PyPI, needs small source edits to import on Python 3 and its code is not
part of this project (docs/clients.md), so this test runs only when ALM_PYALM_PYTHON names a
Python interpreter that can `import pyalm`; CI replays pyalm's requests instead
(test_api_v5_clients.py). It serves the app on loopback, points pyalm at it with PLOS_URL
and touches every attribute pyalm maps, with pyalm's own converters."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from services.embedded import refresh_until_idle
from tests.unit.pipeline_kit import Kit, api_client, pipeline_kit

PYALM_PYTHON = os.environ.get("ALM_PYALM_PYTHON", "")
pytestmark = pytest.mark.skipif(
    not PYALM_PYTHON, reason="ALM_PYALM_PYTHON (a Python with pyalm importable) is not set"
)
PCBI = "10.1371/journal.pcbi.1000204"
PEERJ = "10.7717/peerj.4375"

# Run by the pyalm interpreter: every call and attribute pyalm's README shows, results as JSON.
DRIVER = """
import json, sys
import pyalm
from pyalm import events
out = {}
summary = pyalm.get_alm(sys.argv[1], info="summary")
art = summary["articles"][0]
out["summary"] = {a: str(getattr(art, a)) for a in (
    "doi", "title", "url", "pmid", "pmcid", "mendeley_uuid", "issued", "update_date",
    "viewed", "saved", "discussed", "cited")}
out["meta"] = summary["meta"]
detail = pyalm.get_alm(sys.argv[1:], info="detail", source="europepmc", per_page=10)
out["detail"] = []
for art in detail["articles"]:
    src = art.sources["europepmc"]
    row = {a: str(getattr(src, a)) for a in (
        "name", "display_name", "group_name", "events_url", "update_date")}
    row["metrics.total"] = src.metrics.total
    row["by_day"] = [str(r["date"]) for r in src.by_day]
    row["by_month"] = [str(r["date"]) for r in src.by_month]
    row["by_year"] = [str(r["date"]) for r in src.by_year]
    cites = [events.CrossRef(e) for e in src.events]
    row["events"] = [
        [c.article_title, c.publication_year, c.volume, c.first_page, c.fl_count,
         [str(p.first_author) for p in c.contributors]]
        for c in cites
    ]
    out["detail"].append(row)
every = pyalm.get_alm(sys.argv[1], info="detail")
out["sources"] = sorted(every["articles"][0].sources)
out["sources_updated"] = [str(s.update_date) for s in every["articles"][0].sources.values()]
print(json.dumps(out))
"""


@pytest.fixture
async def kit(tmp_path: Path) -> AsyncIterator[Kit]:
    async with pipeline_kit(tmp_path) as k:
        k.clock.advance(timedelta(microseconds=982616))
        await k.register([PCBI, PEERJ])
        await refresh_until_idle(k.pipeline)
        yield k


@pytest.fixture
async def client(kit: Kit, tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    async with api_client(kit, tmp_path) as c:
        yield c


async def test_real_pyalm_reads_every_field(client: TestClient[Any, Any]) -> None:
    """pyalm parses every work, source, history row and event the API serves."""
    url = f"http://127.0.0.1:{client.port}/api/v5/articles"
    env = {**os.environ, "PLOS_URL": url, "PLOS_API_KEY": "k123"}
    proc = await asyncio.create_subprocess_exec(
        PYALM_PYTHON,
        "-c",
        DRIVER,
        PCBI,
        PEERJ,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()[-3000:]
    result = json.loads(out)
    assert result["summary"]["doi"] == PCBI
    assert result["summary"]["update_date"].startswith("2026-11-25 12:00:00")
    assert result["summary"]["issued"] == "2008-10-31 00:00:00"
    assert result["meta"] == {"total": 1, "total_pages": 1, "page": 1, "error": None}
    assert [r["name"] for r in result["detail"]] == ["europepmc", "europepmc"]
    assert all(r["by_month"] and r["by_year"] for r in result["detail"])
    assert any(r["events"] for r in result["detail"])
    assert "crossref" in result["sources"] and "mendeley" in result["sources"]
    print(json.dumps(result, indent=1), file=sys.stderr)
