"""Semantic Scholar plug-in: the 500-id batch, null entries, 429 without Retry-After."""

from __future__ import annotations

import json

import pytest

from services.core.sources import SourceConfig
from services.fetchers.base import Failed, Found
from services.fetchers.sources.semanticscholar import MAX_IDS, SemanticScholar
from tests.unit.real_corpus import body_bytes
from tests.unit.sources_kit import fixture, kind, outcomes, record, response, work

SOURCE = SemanticScholar()
NATURE, UNKNOWN, PEERJ = (
    work("10.1038/s41586-023-06139-9"),
    work("10.9999/unknown"),
    work("10.7717/peerj.4375"),
)


def test_one_post_for_the_batch_with_prefixed_ids_and_key() -> None:
    """A batch is one POST /paper/batch with DOI:-prefixed ids in order and the x-api-key."""
    [request] = SOURCE.requests([NATURE, UNKNOWN, PEERJ], SourceConfig(api_key="k"))
    assert (request.method, request.path) == ("POST", "/paper/batch")
    assert request.json_body == {"ids": [f"DOI:{w.doi}" for w in (NATURE, UNKNOWN, PEERJ)]}
    assert dict(request.headers) == {"x-api-key": "k"}
    assert "citationCount" in dict(request.params)["fields"]
    assert SOURCE.batch_size == MAX_IDS == 500


def test_null_entries_are_not_found_by_position() -> None:
    """Results align with the ids: `null` is a paper Semantic Scholar does not know."""
    [request] = SOURCE.requests([NATURE, UNKNOWN, PEERJ], SourceConfig())
    body = [
        record("semanticscholar", NATURE.doi or ""),
        None,
        record("semanticscholar", PEERJ.doi or ""),
    ]
    got, _ = outcomes(SOURCE, request, response(200, body))
    assert [kind(got[w.work_id]) for w in (NATURE, UNKNOWN, PEERJ)] == [
        "found",
        "not_found",
        "found",
    ]
    nature = got[NATURE.work_id]
    assert isinstance(nature, Found)
    assert nature.metrics == {"citations": 1220, "influential_citations": 137}
    assert nature.meta["pmid"] == "37258680" and nature.meta["pmcid"] == "PMC10949956"


def test_influential_citations_are_not_added_to_the_total() -> None:
    """influentialCitationCount is a subset of citationCount: declared in_total=False."""
    assert {m.name: m.in_total for m in SOURCE.metrics} == {
        "citations": True,
        "influential_citations": False,
    }


@pytest.mark.parametrize(
    "body",
    [[None], [None, None, None, None], {"data": []}],
)
def test_misaligned_or_malformed_batch_fails_all(body: object) -> None:
    """A result list of the wrong length, or no list, cannot be aligned: all fail."""
    request = SOURCE.requests([NATURE, UNKNOWN, PEERJ], SourceConfig())[0]
    got, _ = outcomes(SOURCE, request, response(200, body))
    assert {kind(o) for o in got.values()} == {"failed:parse"}


def test_one_unreadable_entry_fails_only_its_work() -> None:
    """Entries are positional: one that is no paper, or (as recorded when `fields` lacked it)
    has no citationCount, fails its own work; the other works of the batch keep their figures.
    The entries are real: from the corpus bodies of danielnsilva/semanticscholar's cassettes."""
    full = json.loads(body_bytes("semanticscholar", "batch-null-and-three.json"))[1]
    bare = json.loads(body_bytes("semanticscholar", "batch-fields-authors.json"))[1]
    works = [NATURE, UNKNOWN, PEERJ, work("10.1257/rct.1355")]
    request = SOURCE.requests(works, SourceConfig())[0]
    got, _ = outcomes(SOURCE, request, response(200, [full, bare, "paper", None]))
    assert [kind(got[w.work_id]) for w in works] == [
        "found",
        "failed:parse",
        "failed:parse",
        "not_found",
    ]
    assert isinstance(got[NATURE.work_id], Found)
    assert got[NATURE.work_id].metrics["citations"] == full["citationCount"]
    failed = got[UNKNOWN.work_id]
    assert isinstance(failed, Failed) and "citationCount" in failed.error.message


def test_absent_influential_count_is_not_reported() -> None:
    """influentialCitationCount missing from an entry is null (not reported), never zero; an
    explicit 0 stays 0 (Semantic Scholar's own swagger example asks fields without it)."""
    body = json.loads(body_bytes("semanticscholar", "swagger-batch-no-influential.json"))
    body[1] = {**body[1], "influentialCitationCount": 0}
    request = SOURCE.requests([NATURE, PEERJ], SourceConfig())[0]
    got, _ = outcomes(SOURCE, request, response(200, body))
    nature, peerj = got[NATURE.work_id], got[PEERJ.work_id]
    assert isinstance(nature, Found) and isinstance(peerj, Found)
    assert nature.metrics == {"citations": 299, "influential_citations": None}
    assert peerj.metrics == {"citations": 0, "influential_citations": 0}


def test_429_without_retry_after_is_rate_limited() -> None:
    """The 429 JSON body (code as a string, no Retry-After) is a retryable rate-limit failure."""
    request = SOURCE.requests([NATURE, PEERJ], SourceConfig())[0]
    reply = response(429, fixture("semanticscholar", "errors/429.json"))
    assert "retry-after" not in reply.headers
    got, _ = outcomes(SOURCE, request, reply)
    assert {kind(o) for o in got.values()} == {"failed:rate_limited"}
    assert all(isinstance(o, Failed) and o.error.retryable for o in got.values())
