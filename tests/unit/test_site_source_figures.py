"""`/sources` shows each source's recent work (services/api/source_figures.py): the last
successful fetch (the week of activity windows kept), the error rate and calls per refresh of
the last 24 h of windows, and the works due now from the due index; `/api/v1/sources` (its
JSON twin) carries the same figures; each source links to its leaderboard."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from services.api.source_figures import DUE_CAP
from services.bootstrap import make_checks
from services.core.activity import FetchWindow
from services.core.ports import DueEntry
from services.settings import Settings
from tests.unit.pipeline_kit import Kit, api_client, pipeline_kit


@pytest.fixture
async def kit(tmp_path: Path) -> AsyncIterator[Kit]:
    async with pipeline_kit(tmp_path) as k:
        yield k


@pytest.fixture
async def client(kit: Kit, tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    now = kit.clock()
    hour = now.replace(minute=0, second=0, microsecond=0)
    checks = make_checks(Settings(data_dir=tmp_path), kit.store)
    await checks.record_activity(
        [
            # the last 24 h: two instances of crossref, 50 refreshes, 5 failed, 75 calls
            FetchWindow(
                "crossref",
                hour - timedelta(hours=2),
                "a",
                calls=30,
                refreshes=20,
                failed=2,
                last_ok=now - timedelta(hours=2),
            ),
            FetchWindow(
                "crossref",
                hour - timedelta(hours=1),
                "b",
                calls=45,
                refreshes=30,
                failed=3,
                last_ok=now - timedelta(minutes=70),
            ),
            # three days ago: its successes count for "last success", not for the 24 h rates
            FetchWindow(
                "openalex",
                hour - timedelta(days=3),
                "a",
                calls=9,
                refreshes=9,
                failed=9,
                last_ok=now - timedelta(days=3, minutes=5),
            ),
        ]
    )
    due = [DueEntry(f"10.5555/d{n}", now - timedelta(minutes=n)) for n in range(3)]
    await kit.store.set_due("europepmc", [*due, DueEntry("10.5555/later", now + timedelta(days=1))])
    async with api_client(kit, tmp_path) as c:
        yield c


async def test_the_json_carries_each_source_s_recent_figures(
    kit: Kit, client: TestClient[Any, Any]
) -> None:
    data = {
        s["name"]: s["activity"]
        for s in (await (await client.get("/api/v1/sources")).json())["data"]
    }
    now = kit.clock()
    assert data["crossref"] == {
        "last_success": (now - timedelta(minutes=70)).isoformat(),
        "refreshes_24h": 50,
        "error_rate_24h": 0.1,
        "calls_per_refresh": 1.5,
        "works_due": 0,
        "works_due_capped": False,
    }
    assert data["openalex"]["last_success"] == (now - timedelta(days=3, minutes=5)).isoformat()
    assert data["openalex"]["refreshes_24h"] == 0 and data["openalex"]["error_rate_24h"] is None
    assert data["europepmc"]["works_due"] == 3 and data["europepmc"]["last_success"] is None
    assert DUE_CAP >= 100


async def test_the_page_shows_them_and_links_each_leaderboard(
    client: TestClient[Any, Any],
) -> None:
    html = await (await client.get("/sources")).text()
    row = html[html.index('<tr id="crossref">') :]
    row = row[: row.index("</tr>")]
    assert '<a href="/sources/crossref">' in row
    assert '<td class=num data-label="Errors in 24 h">10.0%</td>' in row
    assert '<td class=num data-label="Calls a refresh">1.50</td>' in row
    assert "2026-11-25 10:50</time>" in row
    europepmc = html[html.index('<tr id="europepmc">') :]
    europepmc = europepmc[: europepmc.index("</tr>")]
    assert '<td class=num data-label="Works due">3</td>' in europepmc
    assert '<td data-label="Last success">never</td>' in europepmc
