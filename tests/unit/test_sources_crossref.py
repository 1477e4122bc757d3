"""Crossref plug-in: recorded works, the plain-text 404 and the HTML 429."""

from __future__ import annotations

import pytest

from services.core.sources import SourceConfig
from services.fetchers.base import Failed, Found
from services.fetchers.sources.crossref import Crossref
from tests.unit.sources_kit import fixture, kind, outcomes, record, response, work

SOURCE = Crossref()
SOURCE_CONFIG = SourceConfig()


@pytest.mark.parametrize(
    ("doi", "count"), [("10.7717/peerj.4375", 1015), ("10.1108/jd-12-2013-0166", 41)]
)
def test_recorded_work_gives_is_referenced_by_count(doi: str, count: int) -> None:
    """A recorded /works/{doi} answer yields its is-referenced-by-count."""
    target = work(doi)
    [request] = SOURCE.requests([target], SOURCE_CONFIG)
    got, _ = outcomes(SOURCE, request, response(200, record("crossref", doi)))
    found = got[target.work_id]
    assert isinstance(found, Found) and found.metrics == {"citations": count}


def test_plain_text_404_is_not_found() -> None:
    """Crossref's `Resource not found.` (text/plain 404) means another agency's DOI: zero."""
    target = work("10.5281/zenodo.1234567")
    [request] = SOURCE.requests([target], SOURCE_CONFIG)
    reply = response(404, "Resource not found.", content_type="text/plain")
    got, _ = outcomes(SOURCE, request, reply)
    assert kind(got[target.work_id]) == "not_found"


def test_html_429_is_a_retryable_rate_limit_failure() -> None:
    """The HTML 429 page is a rate-limit failure that is retried later, not a parse error."""
    target = work("10.7717/peerj.4375")
    [request] = SOURCE.requests([target], SOURCE_CONFIG)
    reply = response(429, fixture("crossref", "errors/429.html"), content_type="text/html")
    got, _ = outcomes(SOURCE, request, reply)
    failure = got[target.work_id]
    assert isinstance(failure, Failed)
    assert (failure.error.kind, failure.error.retryable, failure.error.http_status) == (
        "rate_limited",
        True,
        429,
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"status": "failed", "message": []}, "failed:parse"),
        ({"status": "ok", "message": {"is-referenced-by-count": "many"}}, "failed:parse"),
        ({"status": "ok", "message": {"is-referenced-by-count": 0}}, "found"),
    ],
)
def test_envelope_checks(body: object, expected: str) -> None:
    """A non-ok status or a non-numeric count fails; zero is a real zero."""
    target = work("10.7717/peerj.4375")
    [request] = SOURCE.requests([target], SOURCE_CONFIG)
    got, _ = outcomes(SOURCE, request, response(200, body))
    assert kind(got[target.work_id]) == expected


def test_batch_is_one_list_call_and_absent_dois_are_not_found() -> None:
    """Several works go in one `filter=doi:A,doi:B` call; a DOI missing from the items (another
    agency's) is not found; DOIs match whatever their case in Crossref's answer."""
    known, other = work("10.1371/journal.pcbi.1000204"), work("10.5281/zenodo.1234567")
    [request] = SOURCE.requests([known, other], SOURCE_CONFIG)
    assert request.path == "/works"
    params = dict(request.params)
    assert params["filter"] == "doi:10.1371/journal.pcbi.1000204,doi:10.5281/zenodo.1234567"
    assert params["rows"] == "2"
    item = record("crossref", known.doi or "")["message"]
    assert item["DOI"] != known.doi  # recorded upper-case, as Crossref has PLOS DOIs
    body = {"status": "ok", "message-type": "work-list", "message": {"items": [item]}}
    got, _ = outcomes(SOURCE, request, response(200, body))
    found = got[known.work_id]
    assert isinstance(found, Found)
    assert found.metrics == {"citations": item["is-referenced-by-count"]}
    assert kind(got[other.work_id]) == "not_found"


def test_list_without_items_is_a_parse_failure() -> None:
    """A work-list whose items are missing fails every work of the batch (never zeroes them)."""
    works = [work("10.7717/peerj.4375"), work("10.1108/jd-12-2013-0166")]
    [request] = SOURCE.requests(works, SOURCE_CONFIG)
    body = {"status": "ok", "message-type": "work-list", "message": {"total-results": 2}}
    got, _ = outcomes(SOURCE, request, response(200, body))
    assert {kind(o) for o in got.values()} == {"failed:parse"}
