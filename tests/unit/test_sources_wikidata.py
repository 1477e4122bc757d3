"""Wikidata plug-in: one SPARQL query (VALUES of upper-case DOIs) per batch, rows back to works."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from services.core.sources import SourceConfig
from services.core.works import WorkRef
from services.fetchers.base import Failed, Found, NotFound
from services.fetchers.sources.wikidata import SPARQL_JSON, Wikidata, sparql_literal
from services.settings import FIXTURES
from services.stub.sources.wikidata import WikidataStub, binding, results, values_dois
from services.stub.upstream import StubRequest
from tests.unit.sources_kit import fixture, kind, outcomes, response, work

SOURCE = Wikidata()
PONE, PEERJ, UNKNOWN = (
    work("10.1371/journal.pone.0000308"),
    work("10.7717/peerj.4375"),
    work("10.9999/x"),
)


def query_of(works: list[WorkRef]) -> str:
    """The SPARQL text of the batch's single call."""
    [call] = SOURCE.requests(works, SourceConfig())
    return dict(call.form)["query"]


def test_one_post_per_batch_with_upper_case_values() -> None:
    """Fifty works: one POST form call to /sparql asking for SPARQL JSON, DOIs upper-cased."""
    works = [work(f"10.5555/bench.{i:05d}") for i in range(50)]
    [call] = SOURCE.requests(works, SourceConfig())
    assert (call.method, call.path, len(call.works)) == ("POST", "/sparql", 50)
    assert dict(call.headers)["Accept"] == SPARQL_JSON
    assert dict(call.form)["format"] == "json"
    dois = values_dois(dict(call.form)["query"])
    assert dois is not None and dois[:2] == ["10.5555/BENCH.00000", "10.5555/BENCH.00001"]
    assert len(dois) == 50


def test_literals_are_escaped_and_unwritable_dois_refused() -> None:
    """Quotes and backslashes are escaped; control characters are refused, not sent."""
    assert sparql_literal('10.1000/a"b\\c') == '"10.1000/A\\"B\\\\C"'
    assert sparql_literal("10.1000/a\nb") is None and sparql_literal("") is None
    odd, broken = work('10.1000/a"b\\c'), work("10.1000/line\nbreak")
    assert values_dois(query_of([odd, broken])) == ['10.1000/A"B\\C']
    [call] = SOURCE.requests([odd, broken], SourceConfig())
    got, _ = outcomes(SOURCE, call, response(200, results([])))
    assert kind(got[broken.work_id]) == "not_found"


def test_counts_and_not_found() -> None:
    """A row gives its count and the item page; a DOI without a row has no item."""
    [call] = SOURCE.requests([PONE, PEERJ, UNKNOWN], SourceConfig())
    rows = [
        binding("10.1371/JOURNAL.PONE.0000308", "Q21090025", 7),
        binding("10.7717/PEERJ.4375", "Q47157011", 0),
    ]
    got, more = outcomes(SOURCE, call, response(200, results(rows)))
    assert more == ()
    pone, peerj = got[PONE.work_id], got[PEERJ.work_id]
    assert isinstance(pone, Found) and pone.metrics == {"citations": 7}
    assert pone.events_url == "https://www.wikidata.org/wiki/Q21090025"
    assert isinstance(peerj, Found) and peerj.metrics == {"citations": 0}
    assert isinstance(got[UNKNOWN.work_id], NotFound)


def test_rows_match_dois_case_insensitively() -> None:
    """A row whose DOI is spelled in another case still belongs to the work."""
    [call] = SOURCE.requests([PONE], SourceConfig())
    rows = [binding("10.1371/journal.PONE.0000308", "Q21090025", 3)]
    got, _ = outcomes(SOURCE, call, response(200, results(rows)))
    assert kind(got[PONE.work_id]) == "found"


def test_duplicate_items_take_the_largest_count() -> None:
    """Two items with one DOI: the larger count (no double counting), linked to that item."""
    [call] = SOURCE.requests([PONE], SourceConfig())
    rows = [
        binding("10.1371/JOURNAL.PONE.0000308", "Q1", 2),
        binding("10.1371/JOURNAL.PONE.0000308", "Q21090025", 7),
    ]
    got, _ = outcomes(SOURCE, call, response(200, results(rows)))
    found = got[PONE.work_id]
    assert isinstance(found, Found) and found.metrics == {"citations": 7}
    assert found.events_url == "https://www.wikidata.org/wiki/Q21090025"


def test_malformed_rows_and_documents_fail_the_call() -> None:
    """Truncated JSON, non-SPARQL JSON, a row without an item URI, a non-count: all fail."""
    [call] = SOURCE.requests([PONE, UNKNOWN], SourceConfig())
    bad_row = binding("10.1371/JOURNAL.PONE.0000308", "Q1", 1)
    bad_row["item"]["value"] = "https://example.org/Q1"
    bad_count = binding("10.1371/JOURNAL.PONE.0000308", "Q1", 1)
    bad_count["citations"]["value"] = "many"
    bodies: list[Any] = [{"results": {}}, results([bad_row]), results([bad_count]), "[]"]
    for body in [*bodies, '{"head": {"vars": ["doi"]}, "results": {"bind']:
        got, _ = outcomes(SOURCE, call, response(200, body))
        assert {kind(o) for o in got.values()} == {"failed:parse"}, body


def test_html_page_and_timeout_text() -> None:
    """An HTML page as 200 is a parse failure; the 500 Java timeout text a retryable HTTP one."""
    [call] = SOURCE.requests([PONE], SourceConfig())
    got, _ = outcomes(SOURCE, call, response(200, "<html><body>busy</body></html>"))
    assert kind(got[PONE.work_id]) == "failed:parse"
    timeout = fixture("wikidata", "errors/timeout.txt")
    got, _ = outcomes(SOURCE, call, response(500, timeout, content_type="text/plain"))
    failed = got[PONE.work_id]
    assert isinstance(failed, Failed) and failed.error.kind == "http" and failed.error.retryable


def test_stub_composes_rows_from_values_and_needs_upper_case() -> None:
    """The stub answers the POSTed query with the recorded rows of the exact literals sent."""
    stub = WikidataStub(FIXTURES / "wikidata", synthetic=True)
    [call] = SOURCE.requests([PONE, PEERJ, UNKNOWN, work("10.5555/s.1")], SourceConfig())
    body = urlencode(list(call.form)).encode()
    answer = stub.answer(StubRequest("POST", "/sparql", {}, body))
    rows = json.loads(answer.body)["results"]["bindings"]
    assert [r["doi"]["value"] for r in rows] == [
        "10.1371/JOURNAL.PONE.0000308",
        "10.7717/PEERJ.4375",
        "10.5555/S.1",
    ]
    lower = 'SELECT * WHERE { VALUES ?doi { "10.1371/journal.pone.0000308" } }'
    answer = stub.answer(StubRequest("GET", "/sparql", {"query": [lower]}))
    assert answer.status == 200 and json.loads(answer.body)["results"]["bindings"] == []
