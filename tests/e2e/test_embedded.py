"""The embedded pipeline end to end: registration -> scheduler -> fetchers -> aggregator ->
store, against the stub upstream replaying recorded real-format responses."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path

from services.aggregator.service import Aggregator
from services.core.events import TOPIC_CHANGED, TOPIC_DEADLETTER, TOPIC_RAW, TOPIC_RETRY
from services.embedded import (
    Pacing,
    RunSummary,
    refresh_until_idle,
    release_dead_leases,
    run_services,
)
from tests.unit.pipeline_kit import pipeline_kit

PEERJ = "10.7717/peerj.4375"
NATURE = "10.1038/s41586-023-06139-9"
ZENODO = "10.5281/zenodo.1234567"  # a DataCite DOI: unknown to all three sources


def _fixture_count(source: str, doi: str) -> int:
    """The count recorded in a fixture file, read independently of the plug-ins."""
    import json

    from services.settings import FIXTURES

    data = json.loads((FIXTURES / source / "records" / f"{doi.replace('/', '_')}.json").read_text())
    if source == "crossref":
        return int(data["message"]["is-referenced-by-count"])
    if source == "openalex":
        return int(data["cited_by_count"])
    return int(data["resultList"]["result"][0]["citedByCount"])


async def test_registered_works_are_refreshed_from_every_source(tmp_path: Path) -> None:
    """A registered DOI ends with each source's recorded count stored, and changes emitted."""
    async with pipeline_kit(tmp_path) as kit:
        await kit.register([f"https://doi.org/{PEERJ.upper()}", NATURE])
        summary = await refresh_until_idle(kit.pipeline)
        assert summary.requested == 6 and summary.refreshed == 6 and summary.errors == 0
        states = await kit.store.states_for([PEERJ])
        got = {s.source: s.metrics["citations"] for s in states[PEERJ]}
        assert got == {
            src: _fixture_count(src, PEERJ) for src in ("crossref", "openalex", "europepmc")
        }
        assert kit.bus.published[TOPIC_CHANGED] == 6


async def test_batch_source_fetches_many_works_in_one_call(tmp_path: Path) -> None:
    """OpenAlex and Crossref get one OR-filter call per 50 works; DataCite one call a work;
    every work's count comes back from its own record."""
    sources = ("openalex", "crossref", "datacite")
    async with pipeline_kit(tmp_path, synthetic=True, sources=sources) as kit:
        dois = [f"10.5555/batch.{i}" for i in range(120)]
        await kit.register(dois)
        summary = await refresh_until_idle(kit.pipeline)
        hits = kit.hits()
        assert hits["datacite"] == 120
        assert hits["crossref"] == 3  # 120 works / 50 per call
        assert hits["openalex"] == 3
        assert summary.refreshed == 360
        state = (await kit.store.states([(dois[7], "crossref")]))[(dois[7], "crossref")]
        expected = kit.stub("crossref").synthesize(dois[7])["message"]["is-referenced-by-count"]
        assert state.metrics == {"citations": expected}


async def test_unknown_work_counts_zero_not_error(tmp_path: Path) -> None:
    """An upstream 'not found' stores zero with status not_found, never an error."""
    async with pipeline_kit(tmp_path) as kit:
        await kit.register([ZENODO])
        summary = await refresh_until_idle(kit.pipeline)
        assert summary.errors == 0
        states = (await kit.store.states_for([ZENODO]))[ZENODO]
        assert {s.status.value for s in states if s.status} == {"not_found"}
        assert all(s.metrics == {"citations": 0} for s in states)


async def test_malformed_response_is_recorded_error_and_keeps_totals(tmp_path: Path) -> None:
    """Truncated JSON later on becomes a visible fetch error; the stored total is untouched,
    the work goes to the retry topic, and a later success clears the error."""
    async with pipeline_kit(tmp_path) as kit:
        await kit.register([PEERJ])
        await refresh_until_idle(kit.pipeline)
        before = (await kit.store.states([(PEERJ, "crossref")]))[(PEERJ, "crossref")]

        kit.fail(
            "crossref",
            PEERJ,
            200,
            '{"status":"ok","message":{"DOI":"10.7717/pe',
            "application/json",
        )
        kit.clock.advance(timedelta(days=40))
        summary = await refresh_until_idle(kit.pipeline)
        assert summary.errors == 1
        after = (await kit.store.states([(PEERJ, "crossref")]))[(PEERJ, "crossref")]
        assert after.metrics == before.metrics
        assert after.status is not None and after.status.value == "error"
        assert after.error is not None and "malformed crossref response" in after.error
        assert kit.bus.published[TOPIC_RETRY] == 1

        kit.heal("crossref", PEERJ)
        kit.clock.advance(timedelta(hours=1))
        await refresh_until_idle(kit.pipeline)
        healed = (await kit.store.states([(PEERJ, "crossref")]))[(PEERJ, "crossref")]
        assert healed.status is not None and healed.status.value == "ok" and healed.error is None


async def test_html_429_is_retried_then_dead_lettered(tmp_path: Path) -> None:
    """Crossref's HTML 429 is a retryable error; after the last attempt it goes to dead letter."""
    async with pipeline_kit(tmp_path, sources=("crossref",)) as kit:
        kit.fail("crossref", PEERJ, 429, "<html><h1>429 Too Many Requests</h1></html>", "text/html")
        await kit.register([PEERJ])
        for _ in range(kit.pipeline.scheduler.policy.max_attempts):
            await refresh_until_idle(kit.pipeline)
            kit.clock.advance(timedelta(hours=7))
        assert kit.bus.published.get(TOPIC_DEADLETTER) == 1
        state = (await kit.store.states([(PEERJ, "crossref")]))[(PEERJ, "crossref")]
        assert state.retrieved_at is None and state.error is not None and "429" in state.error


async def test_nothing_due_means_no_upstream_calls(tmp_path: Path) -> None:
    """Right after a refresh nothing is due; when the interval passes the work is due again."""
    async with pipeline_kit(tmp_path, sources=("crossref",)) as kit:
        await kit.register([PEERJ])
        await refresh_until_idle(kit.pipeline)
        calls = kit.hits()["crossref"]
        again = await refresh_until_idle(kit.pipeline)
        assert again.requested == 0 and kit.hits()["crossref"] == calls
        kit.clock.advance(timedelta(days=34))  # an old work: monthly, +10% jitter at most
        later = await refresh_until_idle(kit.pipeline)
        assert later.requested == 1 and kit.hits()["crossref"] == calls + 1
        assert later.changes == 0  # same recorded count: no change event


async def test_services_refresh_in_the_background_and_report_when_idle(tmp_path: Path) -> None:
    """Every service loops on its own; the first time nothing is due or in flight, `on_idle`
    gets what was done (here it asks to stop, as `alm run --once` does)."""
    dois = [f"10.5555/background.{n}" for n in range(60)]
    async with pipeline_kit(tmp_path, synthetic=True) as kit:
        await kit.register(dois)
        stop = asyncio.Event()
        reported: list[RunSummary] = []

        async def idle(summary: RunSummary) -> None:
            reported.append(summary)
            stop.set()

        total = await asyncio.wait_for(run_services(kit.pipeline, stop, on_idle=idle), 60)

        assert [(s.requested, s.refreshed, s.errors) for s in reported] == [(180, 180, 0)]
        assert total.refreshed == 180
        states = await kit.store.states_for(dois)
        assert all(len(rows) == 3 for rows in states.values())


async def test_a_stop_mid_refresh_records_what_was_fetched_within_the_grace(
    tmp_path: Path,
) -> None:
    """Stopped while a slow source's fetch is under way: the fetch finishes and what it brought
    is aggregated and stored before the runner returns, within the grace; the works handed out
    but not fetched stay leased, and the next start makes them due and refreshes them."""
    dois = [f"10.5555/slow.{n}" for n in range(150)]
    async with pipeline_kit(
        tmp_path, synthetic=True, sources=("datacite",), rates={"datacite": 40.0}
    ) as kit:
        await kit.register(dois)
        stop = asyncio.Event()
        runner = asyncio.create_task(run_services(kit.pipeline, stop, Pacing(grace=8.0)))
        while kit.hits().get("datacite", 0) < 5:  # noqa: ASYNC110 (a step of 64+ calls is on)
            await asyncio.sleep(0.02)

        stopping = time.monotonic()
        stop.set()
        await asyncio.wait_for(runner, 20)
        took = time.monotonic() - stopping

        fetched = kit.hits()["datacite"]  # one call a work
        stored = await kit.store.states_for(dois)
        assert took < 8.0
        assert 64 <= fetched < len(dois)
        assert sum(len(rows) for rows in stored.values()) == fetched
        assert kit.bus.pending(TOPIC_RAW, Aggregator.GROUP) == 0
        never_handed_out = await kit.store.due("datacite", kit.clock(), 1000)
        assert not any(e.leased for e in never_handed_out)

        leased = len(dois) - fetched - len(never_handed_out)
        assert leased > 0
        assert await release_dead_leases(kit.pipeline.scheduler) == leased
        await refresh_until_idle(kit.pipeline)
        stored = await kit.store.states_for(dois)
        assert all(len(rows) == 1 for rows in stored.values())
        assert kit.hits()["datacite"] == len(dois)
