"""Every plug-in, fed response bodies recorded from the real upstream APIs, extracts the figures
the corpus manifests name (tests/fixtures/real/<source>/manifest.json), through the engine."""

from __future__ import annotations

from typing import Any

import pytest

from services.core.events import Observation
from services.core.history import PERIODS, history
from services.fetchers.base import Source
from services.fetchers.outcomes import outcome_of
from services.fetchers.registry import SOURCES, get_source
from tests.unit import real_corpus as corpus
from tests.unit.sources_kit import kind

CASES = corpus.cases()

# Sources without three real recorded bodies yet (see docs/sources.md, "Real-body corpus"):
# Wikidata, whose parser needs answers of its own query (variables doi, item, citations).
GAPS = {"wikidata"}


def _periods(obs: Observation) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for p in obs.periods:
        out.setdefault(p.metric, {})[p.period] = out.get(p.metric, {}).get(p.period, 0) + p.count
    return out


def _check_error(obs: Observation, want: dict[str, Any]) -> None:
    """The failure a work's observation carries, where the manifest names one."""
    if not {"error_kind", "error_contains", "retryable"} & set(want):
        return
    assert obs.error is not None
    assert obs.error.kind == want.get("error_kind", obs.error.kind), obs.error
    assert want.get("error_contains", "") in obs.error.message
    assert obs.error.retryable is want.get("retryable", obs.error.retryable)


def _check_events(obs: Observation, want: dict[str, Any]) -> None:
    """The events (count, URLs, the citing works' DOIs) and the events link."""
    if "events" in want:
        assert len(obs.events) == want["events"]
    if "event_urls" in want:
        assert sorted(e.url or "" for e in obs.events) == sorted(want["event_urls"])
    if "event_dois" in want:
        assert sorted(str(e.csl.get("DOI")) for e in obs.events) == sorted(want["event_dois"])
    if "events_url" in want:
        assert obs.events_url == want["events_url"]


def _check_periods(obs: Observation, want: dict[str, Any]) -> None:
    """Per-period counts: all of them, or per metric (count, sum, first and last period)."""
    got = _periods(obs)
    if "periods" in want:
        assert got == want["periods"]
    for metric, summary in (want.get("periods_summary") or {}).items():
        series = got.get(metric, {})
        shape = (len(series), sum(series.values()), min(series), max(series))
        assert shape == (summary["n"], summary["sum"], summary["first"], summary["last"]), metric


def _key(key: tuple[int, ...]) -> str:
    return "-".join(f"{n:04d}" if i == 0 else f"{n:02d}" for i, n in enumerate(key))


def _check_history(obs: Observation, want: dict[str, Any]) -> None:
    """Under the history rule, every period size adds up to the observed totals; where the
    manifest says so, the undated rest and the first and last period."""
    as_of = corpus.AT.date()
    for period in PERIODS:
        hist = history(period, [], obs.periods, dict(obs.metrics), as_of)
        for metric, total in obs.metrics.items():
            assert sum(b.counts.get(metric, 0) for b in hist.buckets) == total, (period, metric)
        expected = (want.get("history") or {}).get(period)
        if expected is None:
            continue
        undated = next((b.counts for b in hist.buckets if b.key is None), {})
        assert {m: n for m, n in undated.items() if n} == expected["undated"], period
        dated = [_key(b.key) for b in hist.buckets if b.key is not None]
        assert (dated[0], dated[-1]) == (expected["first"], expected["last"]), period


def _check(obs: Observation, want: dict[str, Any]) -> None:
    """The observation of one work against the manifest's figures."""
    assert obs.status.value == want["status"], obs.error
    _check_error(obs, want)
    if "metrics" in want:
        assert dict(obs.metrics) == want["metrics"]
    _check_events(obs, want)
    _check_periods(obs, want)
    for name, value in (want.get("meta") or {}).items():
        assert obs.work_meta.get(name) == value, name
    if obs.status.value == "ok":
        _check_history(obs, want)


def _check_call(plugin: Source, replay: corpus.Replay, check: dict[str, Any]) -> None:
    """What the plug-in made of one recorded answer: outcomes and the follow-up calls."""
    _, request, reply = next(x for x in replay.exchanges if x[0] == check["answer"])
    outcomes, follow_ups = outcome_of(plugin, request, reply)
    for work_key, want in (check.get("outcomes") or {}).items():
        got = outcomes[work_key]
        assert kind(got) == want["kind"]
        if "events" in want:
            assert len(getattr(got, "events", ())) == want["events"]
        if "metrics" in want:
            assert dict(getattr(got, "metrics", {})) == want["metrics"]
    if "follow_ups" in check:
        described = [corpus.describe(r) for r in follow_ups]
        assert len(follow_ups) == len(check["follow_ups"]), described
        for request, want in zip(follow_ups, check["follow_ups"], strict=True):
            assert corpus.matches(request, want), corpus.describe(request)


@pytest.mark.parametrize(("source", "case"), CASES, ids=[f"{s}: {c['name']}" for s, c in CASES])
async def test_real_body_through_the_engine(source: str, case: dict[str, Any]) -> None:
    """The engine's observations of the case's works carry exactly the manifest's figures."""
    plugin = get_source(source)
    observations, replay = await corpus.run(plugin, case)
    by_work = {o.work_id: o for o in observations}
    for work_key, want in case["expect"].items():
        _check(by_work[work_key], want)
    expected_misses = case.get("unrecorded", [])
    assert len(replay.missed) == len(expected_misses), [corpus.describe(r) for r in replay.missed]
    for request, want in zip(replay.missed, expected_misses, strict=True):
        assert corpus.matches(request, want), corpus.describe(request)
    if not case.get("unused_ok"):
        unused = set(range(len(case["answers"]))) - set(replay.used)
        pages = {case["answers"][i]["body"] for i in unused}
        assert not unused, f"recordings the plug-in never asked for: {sorted(pages)}"
    for check in case.get("calls", []):
        _check_call(plugin, replay, check)


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_every_source_has_three_real_bodies(source: str) -> None:
    """Each source's corpus holds at least three recorded bodies, each used by a case."""
    if source in GAPS:
        pytest.xfail(f"{source}: no public recording of its answers found yet")
    data = corpus.manifest(source)
    bodies = data["bodies"]
    assert len(bodies) >= 3
    used = {a["body"] for case in data["cases"] for a in case["answers"]}
    assert used == set(bodies)


@pytest.mark.parametrize("source", corpus.sources())
def test_every_body_says_where_it_came_from(source: str) -> None:
    """A body names its origin (repository, commit, licence), path, request, status and type."""
    data = corpus.manifest(source)
    for name, body in data["bodies"].items():
        origin = data["origins"][body["origin"]]
        assert origin["repo"] and origin["licence"] and len(origin["commit"]) == 40, name
        assert body["path"] and body["recorded_request"], name
        assert isinstance(body["status"], int) and body["content_type"], name
        assert (corpus.REAL / source / name).is_file(), name
