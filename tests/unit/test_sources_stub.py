"""Every registered source end to end: engine.fetch_batch + HttpCaller against the stub
upstream server (recorded real-format fixtures on loopback)."""

from __future__ import annotations

import asyncio
import pkgutil
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from services.core.events import Observation, Status
from services.core.sources import SourceConfig
from services.fetchers.base import Source
from services.fetchers.engine import fetch_batch
from services.fetchers.http import HttpCaller, HttpSettings
from services.fetchers.registry import SOURCES
from services.settings import FIXTURES
from services.stub import server
from services.stub import sources as stub_sources
from services.stub.upstream import StubUpstream, recorded, recorded_bytes
from tests.unit.sources_kit import config_for, error_entries, work

FAST = HttpSettings(
    retries=0,
    backoff_base=0.01,
    rates={name: 1000.0 for name in SOURCES},
    concurrency={name: 8 for name in SOURCES},
)


@dataclass
class Upstream:
    """The stub server, a caller pointed at it, and the stubs (to inspect or break)."""

    caller: HttpCaller
    stubs: dict[str, StubUpstream]
    hits: dict[str, int]

    async def fetch(
        self, name: str, dois: list[str], config: SourceConfig | None = None
    ) -> list[Observation]:
        """Fetch `dois` from source `name` in its batch size; one observation per DOI."""
        source = SOURCES[name]
        works = [work(d) for d in dois]
        out: list[Observation] = []
        for i in range(0, len(works), source.batch_size):
            chunk = works[i : i + source.batch_size]
            cfg = config or config_for(source)
            result = await fetch_batch(source, chunk, cfg, self.caller, lambda: datetime.now(UTC))
            out += result.observations
        return out


@asynccontextmanager
async def upstream(synthetic: bool = False, http: HttpSettings = FAST) -> AsyncIterator[Upstream]:
    """A stub server on a free loopback port and an HttpCaller using it."""
    app = server.init_app(SOURCES, FIXTURES, synthetic)
    runner, root = await server.start(app)
    try:
        async with HttpCaller({n: f"{root}/{n}" for n in SOURCES}, http) as caller:
            yield Upstream(caller, app[server.STUBS], app[server.HITS])
    finally:
        await runner.cleanup()


OK, NOT_FOUND = Status.OK, Status.NOT_FOUND
EXPECTED: list[tuple[str, str, Status, dict[str, int]]] = [
    ("crossref", "10.7717/peerj.4375", OK, {"citations": 1015}),
    ("openalex", "10.1371/journal.pcbi.1000204", OK, {"citations": 41}),
    ("europepmc", "10.7717/peerj.4375", OK, {"citations": 612}),
    ("opencitations", "10.1108/jd-12-2013-0166", OK, {"citations": 5}),
    ("datacite", "10.5281/zenodo.1234567", OK, {"views": 17, "downloads": 5, "citations": 2}),
    ("datacite", "10.7717/peerj.4375", NOT_FOUND, {"views": 0, "downloads": 0, "citations": 0}),
    ("semanticscholar", "10.1038/s41586-023-06139-9", OK, {"citations": 1220}),
    ("pubmed", "10.7717/peerj.4375", OK, {"citations": 5}),
    ("pubmed", "10.1108/jd-12-2013-0166", NOT_FOUND, {"citations": 0}),
    ("wikipedia", "10.1371/journal.pone.0000308", OK, {"pages": 4}),
    ("reddit", "10.7717/peerj.4375", OK, {"comments": 415, "likes": 3066, "posts": 3}),
    ("hypothesis", "10.1145/3290605.3300526", OK, {"annotations": 2}),
    ("wikidata", "10.1371/journal.pone.0000308", OK, {"citations": 7}),
    ("counter", "10.7717/peerj.4375", OK, {"investigations": 6497, "requests": 4191}),
    ("mendeley", "10.7717/peerj.4375", OK, {"readers": 1587}),
]


@pytest.mark.parametrize(("name", "doi", "status", "metrics"), EXPECTED)
async def test_recorded_work_through_http(
    name: str, doi: str, status: Status, metrics: dict[str, int]
) -> None:
    """A recorded work comes through the HTTP layer with the recorded counts."""
    async with upstream() as up:
        [obs] = await up.fetch(name, [doi])
    assert obs.status is status, obs.error
    assert {k: obs.metrics[k] for k in metrics} == metrics


@pytest.mark.parametrize("name", sorted(SOURCES))
async def test_unknown_work_is_zero_and_known_ones_in_the_same_batch_are_not(name: str) -> None:
    """A DOI no upstream knows stores zero, never an error, next to a found one (batched where
    the source batches)."""
    known = next(d for n, d, s, _ in EXPECTED if n == name and s is OK)
    async with upstream() as up:
        obs = await up.fetch(name, [known, "10.9999/nobody.knows"])
    assert [o.status for o in obs] == [OK, Status.OK if name == "opencitations" else NOT_FOUND]
    assert set(obs[1].metrics.values()) == {0}


RECORDED = [(n, e) for n in sorted(SOURCES) for e in error_entries(n)]


@pytest.mark.parametrize(("name", "entry"), RECORDED, ids=[f"{n}:{e['doi']}" for n, e in RECORDED])
async def test_recorded_errors_through_http(name: str, entry: dict[str, Any]) -> None:
    """Each recorded error shape, served over HTTP, ends as the documented outcome."""
    async with upstream() as up:
        [obs] = await up.fetch(name, [entry["doi"]])
    if entry["expect"] == "not_found":
        assert obs.status is NOT_FOUND
    else:
        assert obs.status is Status.ERROR and obs.error is not None
        assert obs.error.kind == entry["expect"].split(":", 1)[1]


async def test_semantic_scholar_429_without_retry_after_backs_the_source_off() -> None:
    """A 429 without Retry-After pauses Semantic Scholar for a backoff and fails the batch."""
    async with upstream() as up:
        obs = await up.fetch("semanticscholar", ["10.7717/peerj.4375", "10.9999/s2.429"])
        limiter = up.caller.gate(SOURCES["semanticscholar"]).limiter
        assert limiter.paused_until > time.monotonic() - 1
        assert "without Retry-After" in limiter.pause_reason
    assert [o.error.kind if o.error else None for o in obs] == ["rate_limited", "rate_limited"]


async def test_mendeley_token_is_fetched_once_and_renewed_on_401() -> None:
    """One token call serves many works; a 401 (expired token) renews it once and succeeds."""
    async with upstream() as up:
        stub: Any = up.stubs["mendeley"]
        dois = ["10.7717/peerj.4375", "10.1371/journal.pcbi.1000204", "10.9999/x", "10.9999/y"]
        first = await up.fetch("mendeley", dois)
        assert stub.tokens_issued == 1
        stub.expired = True
        [again] = await up.fetch("mendeley", ["10.7717/peerj.4375"])
        assert stub.tokens_issued == 2
    assert [o.status for o in first] == [OK, OK, NOT_FOUND, NOT_FOUND]
    assert again.status is OK and again.metrics == {"readers": 1587}


async def test_refused_credentials_are_a_config_error() -> None:
    """Without credentials Mendeley is not called at all; the work fails with kind config."""
    async with upstream() as up:
        [obs] = await up.fetch("mendeley", ["10.7717/peerj.4375"], SourceConfig())
        assert up.hits.get("mendeley", 0) == 0
    assert obs.error is not None and (obs.error.kind, obs.error.retryable) == ("config", False)


@pytest.mark.parametrize("config", [SourceConfig(), SourceConfig(api_key="cid:sec")])
async def test_reddit_anonymous_and_oauth_give_the_same_counts(config: SourceConfig) -> None:
    """The anonymous .json search and the OAuth search (Bearer token) read the same listing."""
    async with upstream() as up:
        [obs] = await up.fetch("reddit", ["10.7717/peerj.4375"], config)
    assert obs.status is OK and obs.metrics["likes"] == 3066


async def test_wikipedia_pages_through_continue() -> None:
    """With one hit per page the `continue` objects are followed and the total is unchanged."""
    async with upstream() as up:
        stub: Any = up.stubs["wikipedia"]
        stub.page_size = 1
        [obs] = await up.fetch("wikipedia", ["10.1371/journal.pone.0000308"])
        assert up.hits["wikipedia"] == 5 + 1  # five languages, en has a second page
    assert obs.metrics == {"pages": 4} and len(obs.events) == 4


async def test_europe_pmc_citations_down_keeps_the_count() -> None:
    """The citations endpoint's text/plain 503 (recorded for MED:23690734) loses only events."""
    async with upstream() as up:
        [obs] = await up.fetch("europepmc", ["10.1371/journal.pbio.1001555"])
    assert obs.status is OK and obs.metrics == {"citations": 87} and obs.events == ()


async def test_batches_share_calls() -> None:
    """Batch endpoints fetch many works per call: 120 synthetic works, few upstream calls."""
    dois = [f"10.5555/stub.{i}" for i in range(120)]
    async with upstream(synthetic=True) as up:
        for name in ("openalex", "semanticscholar", "pubmed", "wikidata"):
            obs = await up.fetch(name, dois)
            assert all(o.status is not Status.ERROR for o in obs), name
        hits = dict(up.hits)
    assert (hits["openalex"], hits["semanticscholar"], hits["pubmed"]) == (3, 1, 2)
    assert hits["wikidata"] < 120 * 1.3


def test_every_source_has_a_stub_and_fixtures() -> None:
    """Each registered source answers in stub mode from its own fixture directory, and every
    stub module (services/stub/sources/<name>.py, found by name) is a registered source's."""
    missing = [
        n
        for n, s in SOURCES.items()
        if not isinstance(s, Source) or server.stub_for(n) is None or not (FIXTURES / n).is_dir()
    ]
    assert missing == []
    modules = {m.name for m in pkgutil.iter_modules(stub_sources.__path__)}
    assert modules == set(SOURCES)


def test_a_source_without_a_stub_module_has_no_stub() -> None:
    """No module, no stub (the server answers 404 for it); a name is never a path."""
    assert server.stub_for("scopus") is None
    assert server.stub_for("../fetchers/base") is None
    assert server.build_stubs(["scopus", "crossref"], FIXTURES, False).keys() == {"crossref"}


def test_source_descriptions_name_groups_and_slots() -> None:
    """describe() lists every metric with its group and slot (what the API shows)."""
    groups = {n: {m["group"] for m in s.describe()["metrics"]} for n, s in SOURCES.items()}
    assert groups["datacite"] == {"viewed", "cited"}
    assert groups["mendeley"] == {"saved"} and groups["wikipedia"] == {"discussed"}


async def test_own_pacing_is_waited_out_beyond_max_wait() -> None:
    """Calls queued behind our own rate limit wait their turn even past max_wait (only an
    upstream-requested pause longer than max_wait fails a call)."""
    slow = HttpSettings(
        retries=0, max_wait=0.1, rates={"crossref": 40.0}, concurrency={"crossref": 4}
    )
    dois = [f"10.5555/paced.{i}" for i in range(12)]
    async with upstream(synthetic=True, http=slow) as up:
        results = await asyncio.gather(*(up.fetch("crossref", [d]) for d in dois))
        waited = up.caller.gate(SOURCES["crossref"]).waited
    assert [o.status for [o] in results] == [OK] * 12
    assert waited > 0.1


async def test_long_upstream_pause_fails_fast_without_calling() -> None:
    """OpenAlex's budget 429 (Retry-After 54000) pauses the source: the next call fails at once
    with the reason, and the stub is not called again."""
    async with upstream() as up:
        [first] = await up.fetch("openalex", ["10.9999/oa.budget"])
        calls = up.hits["openalex"]
        [second] = await up.fetch("openalex", ["10.7717/peerj.4375"])
        assert up.hits["openalex"] == calls
    assert first.error is not None and first.error.kind == "rate_limited"
    assert second.error is not None and "next call allowed in" in second.error.message


async def test_a_synthetic_work_is_one_pmid_everywhere_and_in_a_restarted_stub() -> None:
    """A synthetic DOI gets the same PMID from PubMed's ID converter and Europe PMC's search,
    and a stub started afresh (after `alm run` restarts) counts the same citations when asked by
    that PMID alone as the first stub did by DOI: the PMID a work learned stays answerable."""
    dois = [f"10.5555/restart.{n}" for n in range(6)]
    async with upstream(synthetic=True) as first:
        by_doi = await first.fetch("pubmed", dois)
        epmc = await first.fetch("europepmc", dois)
    assert [o.work_meta["pmid"] for o in by_doi] == [o.work_meta["pmid"] for o in epmc]
    known = [work(o.work_id, pmid=o.work_meta["pmid"]) for o in by_doi]
    async with upstream(synthetic=True) as restarted:
        pubmed = SOURCES["pubmed"]
        result = await fetch_batch(
            pubmed, known, config_for(pubmed), restarted.caller, lambda: datetime.now(UTC)
        )
    assert [(o.status, o.metrics) for o in result.observations] == [
        (o.status, o.metrics) for o in by_doi
    ]
    assert all(o.status is Status.OK for o in by_doi)
    assert any(o.metrics["citations"] > 0 for o in by_doi)


def test_a_recorded_file_is_parsed_once_and_again_when_it_changes(tmp_path: Path) -> None:
    """Stubs share each recorded file's parse (one per process, not one per test server), and
    a file written again is read again, not served from the old parse."""
    path = tmp_path / "r.json"
    path.write_text('{"n": 1}')
    first = recorded(path)
    assert first == {"n": 1} and recorded(path) is first
    path.write_text('{"n": 22}')
    assert recorded(path) == {"n": 22}
    path.write_bytes(b"abc")
    assert recorded_bytes(path) == b"abc"
