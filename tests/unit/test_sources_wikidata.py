"""Wikidata plug-in: ORed P356 searches, one wbgetentities match, P2860 counts per item."""

from __future__ import annotations

from services.fetchers.base import Found, SourceConfig
from services.fetchers.sources.wikidata import MAX_QUERY, Wikidata
from tests.unit.sources_kit import kind, outcomes, record, response, work

SOURCE = Wikidata()
PONE, PEERJ, UNKNOWN = (
    work("10.1371/journal.pone.0000308"),
    work("10.7717/peerj.4375"),
    work("10.9999/x"),
)


def search(*qids: str, total: int | None = None) -> dict[str, object]:
    """A formatversion=2 search answer listing these items."""
    hits = [{"ns": 0, "title": q, "pageid": i + 1} for i, q in enumerate(qids)]
    n = len(hits) if total is None else total
    return {"batchcomplete": True, "query": {"searchinfo": {"totalhits": n}, "search": hits}}


def test_dois_are_upper_cased_and_ored_under_the_length_limit() -> None:
    """One search holds as many upper-case DOIs as fit in 300 characters; the rest spill over."""
    works = [work(f"10.5555/bench.{i:05d}") for i in range(50)]
    calls = SOURCE.requests(works, SourceConfig())
    queries = [dict(c.params)["srsearch"] for c in calls]
    assert queries[0].startswith("haswbstatement:P356=10.5555/BENCH.00000|P356=10.5555/BENCH.00001")
    assert all(len(q) <= MAX_QUERY for q in queries)
    assert sum(len(c.works) for c in calls) == 50 and len(calls) < 50 / 8


def test_no_hit_means_no_item_for_any_work() -> None:
    """An ORed search without hits: none of its works has a Wikidata item."""
    [call] = SOURCE.requests([PONE, UNKNOWN], SourceConfig())
    got, more = outcomes(SOURCE, call, response(200, search()))
    assert {kind(o) for o in got.values()} == {"not_found"} and more == ()


def test_hits_are_matched_to_dois_with_one_wbgetentities_call() -> None:
    """Several hits: one wbgetentities call; its P356 claims tell which item is which work."""
    [call] = SOURCE.requests([PONE, PEERJ, UNKNOWN], SourceConfig())
    _, (match,) = outcomes(SOURCE, call, response(200, search("Q21090025", "Q47157011")))
    assert dict(match.params)["ids"] == "Q21090025|Q47157011"
    entities = {
        "Q21090025": record("wikidata", PONE.doi or ""),
        "Q47157011": record("wikidata", PEERJ.doi or ""),
    }
    got, cited = outcomes(SOURCE, match, response(200, {"entities": entities, "success": 1}))
    assert kind(got[UNKNOWN.work_id]) == "not_found"
    assert {c.works[0].work_id: dict(c.params)["srsearch"] for c in cited} == {
        PONE.work_id: "haswbstatement:P2860=Q21090025",
        PEERJ.work_id: "haswbstatement:P2860=Q47157011",
    }


def test_single_work_single_hit_skips_the_match_step() -> None:
    """One work and one hit need no wbgetentities call."""
    [call] = SOURCE.requests([PONE], SourceConfig())
    _, (cited,) = outcomes(SOURCE, call, response(200, search("Q21090025")))
    assert cited.step == "cited" and cited.context == {"qid": "Q21090025"}


def test_citing_items_are_the_total_hits() -> None:
    """The P2860 search's totalhits is the count, whatever srlimit listed."""
    [call] = SOURCE.requests([PONE], SourceConfig())
    _, (cited,) = outcomes(SOURCE, call, response(200, search("Q21090025")))
    got, _ = outcomes(SOURCE, cited, response(200, search("Q1", total=7)))
    found = got[PONE.work_id]
    assert isinstance(found, Found) and found.metrics == {"citations": 7}
    assert found.events_url == "https://www.wikidata.org/wiki/Special:WhatLinksHere/Q21090025"
