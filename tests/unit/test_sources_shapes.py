"""Every registered source against the odd shapes upstreams send: truncated JSON, HTML error
pages, and each source's recorded error bodies (tests/fixtures/upstream/<source>/errors.json)."""

from __future__ import annotations

from typing import Any

import pytest

from services.fetchers.base import Failed
from services.fetchers.registry import SOURCES
from tests.unit.sources_kit import (
    error_entries,
    first_request,
    kind,
    outcomes,
    recorded_error,
    response,
    work,
)

NAMES = sorted(SOURCES)
WORKS = [work("10.1234/first.one"), work("10.1234/second.two")]
HTML_PAGE = "<!DOCTYPE html><html><head><title>Error</title></head><body>Oops</body></html>"


def _works(name: str) -> list[Any]:
    return WORKS[: SOURCES[name].batch_size]


@pytest.mark.parametrize("name", NAMES)
def test_truncated_json_fails_every_work_of_the_call(name: str) -> None:
    """A 200 whose JSON is cut off is a retryable parse failure for every work, never a zero."""
    source = SOURCES[name]
    request = first_request(source, _works(name))
    got, more = outcomes(source, request, response(200, '{"data": [{"count": "3'))
    assert {w.work_id: kind(got.get(w.work_id)) for w in request.works} == {
        w.work_id: "failed:parse" for w in request.works
    }
    assert more == ()
    assert all(isinstance(o, Failed) and o.error.retryable for o in got.values())


@pytest.mark.parametrize("name", NAMES)
def test_html_page_with_status_200_is_a_parse_failure(name: str) -> None:
    """An HTML error page served as 200 fails the call and says it was HTML."""
    source = SOURCES[name]
    request = first_request(source, _works(name))
    got, _ = outcomes(source, request, response(200, HTML_PAGE, content_type="text/html"))
    assert [kind(got.get(w.work_id)) for w in request.works] == ["failed:parse"] * len(
        request.works
    )
    failure = got[request.works[0].work_id]
    assert isinstance(failure, Failed) and "HTML page" in failure.error.message


@pytest.mark.parametrize("name", NAMES)
def test_html_gateway_error_is_a_retryable_http_failure(name: str) -> None:
    """A 502 HTML page from a proxy is a retryable HTTP failure, not parsed at all."""
    source = SOURCES[name]
    request = first_request(source, _works(name))
    got, _ = outcomes(source, request, response(502, HTML_PAGE, content_type="text/html"))
    failure = got[request.works[0].work_id]
    assert kind(failure) == "failed:http"
    assert isinstance(failure, Failed) and failure.error.retryable


RECORDED = [(name, e) for name in NAMES for e in error_entries(name)]


@pytest.mark.parametrize(("name", "entry"), RECORDED, ids=[f"{n}:{e['doi']}" for n, e in RECORDED])
def test_recorded_error_shape_gives_the_documented_outcome(name: str, entry: Any) -> None:
    """Each recorded odd shape (errors in 200, text/plain 503, HTML 429...) maps to its outcome."""
    source = SOURCES[name]
    target = work(entry["doi"])
    request = first_request(source, [target])
    got, more = outcomes(source, request, recorded_error(name, entry))
    assert kind(got.get(target.work_id)) == entry["expect"]
    assert more == ()


def test_every_source_records_at_least_one_error_shape() -> None:
    """No source ships without a recorded error body to test its parser against."""
    assert [n for n in NAMES if not error_entries(n)] == []


NOT_FOUND_404 = {  # a 404 means "no record" only where the upstream documents it so
    "crossref": "not_found",  # plain-text `Resource not found.`: another agency's DOI
    "openalex": "not_found",  # singleton route
    "datacite": "not_found",  # JSON:API 404 for Crossref DOIs
    "europepmc": "not_found",
    "mendeley": "not_found",  # unverified: an unknown DOI may also answer []
    "opencitations": "failed:http",  # unknown DOIs count "0"
    "semanticscholar": "failed:http",  # the batch answers null for unknown ids
    "pubmed": "failed:http",  # unknown ids come back as records/linksets
    "counter": "failed:config",  # SUSHI: a wrong path or a report the server lacks
    "wikipedia": "failed:parse",
    "wikidata": "failed:parse",
    "reddit": "failed:parse",
    "hypothesis": "failed:parse",
}


@pytest.mark.parametrize("name", NAMES)
def test_404_is_not_found_only_where_documented(name: str) -> None:
    """A 404 on a route that answers unknown works otherwise (null, "0", records) is a
    failure, so a misrouted call can never zero every work."""
    source = SOURCES[name]
    request = first_request(source, _works(name))
    got, _ = outcomes(source, request, response(404, {"message": "Not Found"}))
    assert {kind(o) for o in got.values()} == {NOT_FOUND_404[name]}
    assert set(NOT_FOUND_404) == set(SOURCES)
