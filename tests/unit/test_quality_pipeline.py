"""The data-quality checks in the running pipeline: fetchers record their hourly activity,
the aggregator stores the alerts of each observation, the periodic checker those of the
activity and the stale states, each counted in Prometheus and listed at GET /api/v1/alerts
(admin: loopback only for now)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from services.adapters.sqlite.checks import SqliteChecks
from services.api.access import Access
from services.api.routes import ACCESS
from services.checks.service import Checker
from services.core.alerts import Alert, AlertKind, Thresholds
from services.embedded import refresh_until_idle
from services.telemetry.alerts import ALERTS, CHECKS_RUN
from tests.unit.pipeline_kit import Kit, api_client, pipeline_kit
from tests.unit.sources_kit import record

PCBI = "10.1371/journal.pcbi.1000204"
PEERJ = "10.7717/peerj.4375"


def counted(kind: str, source: str) -> float:
    """alm_alerts_total{kind, source} now."""
    return ALERTS.labels(kind, source)._value.get()


def crossref_says(kit: Kit, doi: str, citations: int) -> None:
    """Make the stub's Crossref answer `citations` for `doi`."""
    item = {**record("crossref", doi)["message"], "is-referenced-by-count": citations}
    import json

    body = json.dumps({"status": "ok", "message-type": "work", "message": item})
    kit.fail("crossref", doi, 200, body, "application/json")


async def test_fetchers_record_their_hourly_activity(tmp_path: Path) -> None:
    """Each source's fetcher stores a window of the hour with its calls, their latencies and
    its refreshes (failed ones apart), adding up to what the refresh did."""
    async with pipeline_kit(tmp_path) as kit:
        await kit.register([PCBI, PEERJ])
        kit.fail("europepmc", PEERJ, 500, "oops", "text/plain")
        summary = await refresh_until_idle(kit.pipeline)
        windows = await SqliteChecks(kit.store).activity(kit.clock() - timedelta(hours=1))
    by_source = {w.source: w for w in windows}
    assert set(by_source) == {"crossref", "openalex", "europepmc"}
    assert sum(w.calls for w in windows) == summary.upstream_calls
    answered = sum(w.calls - w.unanswered for w in windows)  # a call paced out is unanswered
    assert sum(sum(w.latency) for w in windows) == answered and answered >= 4
    assert sum(w.refreshes for w in windows) == summary.refreshed + summary.errors
    assert by_source["europepmc"].failed == 1 and by_source["crossref"].failed == 0
    assert by_source["crossref"].last_ok == kit.clock()


async def test_the_aggregator_stores_an_observations_alerts_once(tmp_path: Path) -> None:
    """A total that went down is an alert, stored once for its day and counted; a milestone
    reached is an info alert."""
    async with pipeline_kit(tmp_path) as kit:
        await kit.register([PCBI])
        await refresh_until_idle(kit.pipeline)  # crossref: 27 citations
        before = counted("total_decreased", "crossref")
        crossref_says(kit, PCBI, 20)
        kit.clock.advance(timedelta(days=40))
        await refresh_until_idle(kit.pipeline)
        crossref_says(kit, PCBI, 55)
        kit.clock.advance(timedelta(days=40))
        await refresh_until_idle(kit.pipeline)
        async with api_client(kit, tmp_path, admin=True) as client:
            body = await (await client.get("/api/v1/alerts?source=crossref")).json()
    found = {(a["kind"], a["work_id"]) for a in body["data"]}
    assert found == {("total_decreased", PCBI), ("milestone", PCBI)}
    decreased = next(a for a in body["data"] if a["kind"] == "total_decreased")
    assert decreased["message"] == "total decreased from 27 to 20"
    assert decreased["severity"] == "warning" and decreased["details"]["current"] == 20
    assert counted("total_decreased", "crossref") == before + 1


async def test_the_checker_finds_failing_silent_and_stale_sources(tmp_path: Path) -> None:
    """From the stored activity and states: a source whose refreshes fail, one silent while
    others ran, and states not updated for 40 days; each alert stored once and counted."""
    async with pipeline_kit(tmp_path) as kit:
        await kit.register([PCBI, PEERJ])
        kit.fail("crossref", PCBI, 503, "down", "text/plain")
        kit.fail("crossref", PEERJ, 503, "down", "text/plain")
        await refresh_until_idle(kit.pipeline)
        checks = SqliteChecks(kit.store)
        limits = Thresholds(min_refreshes=2, failure_share=0.5)
        sources = ["crossref", "openalex", "europepmc", "wikidata"]
        checker = Checker(checks, kit.store, sources, kit.clock, limits)
        first = await checker.run_once()
        assert [(a.kind, a.source) for a in first] == [(AlertKind.FAILED_REFRESHES, "crossref")]
        assert CHECKS_RUN._value.get() > 0
        kit.clock.advance(timedelta(days=2))  # the windows are older than 24 h: ALM ran
        second = await checker.run_once()
        silent = {a.source for a in second if a.kind is AlertKind.SOURCE_SILENT}
        assert silent == set(sources)
        assert await checker.run_once() == []  # the same day: nothing new
        kit.clock.advance(timedelta(days=40))
        stale = await checker.run_once(stale=True)
    not_updated = {(a.source, a.work_id) for a in stale if a.kind is AlertKind.NOT_UPDATED}
    assert not_updated == {(s, w) for s in ("openalex", "europepmc") for w in (PCBI, PEERJ)}


# -- GET /api/v1/alerts ---------------------------------------------------------------------


@pytest.fixture
async def alerted(tmp_path: Path) -> Any:
    """A kit with stored alerts: crossref's totals fell for two works, one reached 50."""
    async with pipeline_kit(tmp_path) as kit:
        at = kit.clock()
        await SqliteChecks(kit.store).add_alerts(
            [
                Alert(AlertKind.TOTAL_DECREASED, at, "fell", "crossref", PEERJ),
                Alert(AlertKind.TOTAL_DECREASED, at, "fell", "crossref", PCBI),
                Alert(AlertKind.MILESTONE, at, "cited reached 50", "openalex", PCBI),
            ]
        )
        yield kit


async def test_alerts_are_paged_and_filtered(alerted: Kit, tmp_path: Path) -> None:
    """`per_page` pages by keyset (`next` carries the cursor, filters kept); kind, source and
    since filter; bad parameters are 400s."""
    async with api_client(alerted, tmp_path, admin=True) as client:
        first = await (await client.get("/api/v1/alerts?per_page=1&kind=total_decreased")).json()
        second = await (await client.get(first["next"])).json()
        none = await (await client.get("/api/v1/alerts?kind=spike")).json()
        openalex = await (await client.get("/api/v1/alerts?source=openalex")).json()
        later = await (await client.get("/api/v1/alerts?since=2099-01-01")).json()
        bad = [
            await client.get(f"/api/v1/alerts?{q}")
            for q in ("kind=nope", "since=yesterday", "cursor=xyz", "per_page=0", "source=nope")
        ]
    assert "kind=total_decreased" in first["next"]
    assert [a["work_id"] for a in first["data"] + second["data"]] == sorted([PCBI, PEERJ])
    assert second["next"] is None and none["data"] == [] and later["data"] == []
    assert [(a["kind"], a["severity"]) for a in openalex["data"]] == [("milestone", "info")]
    assert [r.status for r in bad] == [400] * 5


def test_alerts_are_for_admins_and_provenance_for_readers() -> None:
    """The access table (services/api/access.py) guards the alert routes with an admin key and
    lets readers see where numbers come from."""
    assert ACCESS[("GET", "/api/v1/alerts")] is Access.ADMIN
    assert ACCESS[("GET", "/admin/alerts")] is Access.ADMIN
    assert ACCESS[("GET", "/api/v1/works/{id}/provenance")] is Access.READ


# -- GET /admin/alerts ----------------------------------------------------------------------


async def test_the_admin_page_lists_alerts_with_links_and_pages(
    alerted: Kit, tmp_path: Path
) -> None:
    """The HTML page shows the same alerts as the JSON listing, each linked to its work and
    to the calls behind its source's numbers, filtered and paged like it; a bad parameter is
    the API's JSON 400."""
    async with api_client(alerted, tmp_path, admin=True) as client:
        resp = await client.get("/admin/alerts?kind=total_decreased&per_page=1")
        first = await resp.text()
        listing = await (await client.get("/api/v1/alerts?kind=total_decreased&per_page=1")).json()
        second = await (
            await client.get("/admin/alerts?" + listing["next"].split("?", 1)[1])
        ).text()
        everything = await (await client.get("/admin/alerts")).text()
        bad = await client.get("/admin/alerts?source=nope")
        error = await bad.json()
    assert resp.status == 200 and resp.content_type == "text/html"
    assert "script-src" not in resp.headers["Content-Security-Policy"]
    assert resp.headers["Content-Security-Policy"].startswith("default-src 'none'")
    [shown] = [w for w in (PCBI, PEERJ) if f">{w}</a>" in first]
    assert shown == listing["data"][0]["work_id"]
    assert f'href="/api/v1/works/{shown}/provenance?source=crossref"' in first
    page_link = f'<a href="/works/{shown}">{shown}</a>'
    assert f'{page_link} (<a href="/api/v1/works/{shown}">JSON</a>' in first
    assert 'rel="next" href="/admin/alerts?kind=total_decreased&amp;per_page=1&amp;cursor=' in first
    [other] = {PCBI, PEERJ} - {shown}
    assert f">{other}</a>" in second and 'rel="next"' not in second
    assert everything.count("<tr><td>") == 3 and "cited reached 50" in everything
    assert '<option value="total_decreased" selected>' in first
    assert bad.status == 400 and error["status"] == 400


async def test_the_admin_page_escapes_what_it_shows(tmp_path: Path) -> None:
    """Messages, work ids and details are text, never markup."""
    async with pipeline_kit(tmp_path) as kit:
        hostile = '<script>alert("x")</script>'
        await SqliteChecks(kit.store).add_alerts(
            [
                Alert(
                    AlertKind.SPIKE,
                    kit.clock(),
                    hostile,
                    "reddit",
                    f'10.1/"{hostile}',
                    {"n": hostile},
                )
            ]
        )
        async with api_client(kit, tmp_path, admin=True) as client:
            page = await (await client.get("/admin/alerts")).text()
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
