"""Hypothes.is plug-in: `total` and rows as annotation events, paging by offset."""

from __future__ import annotations

from services.fetchers.base import Found, SourceConfig
from services.fetchers.sources.hypothesis import LIMIT, Hypothesis
from tests.unit.sources_kit import fixture, kind, outcomes, record, response, work

SOURCE = Hypothesis()
CHI = work("10.1145/3290605.3300526")


def test_search_by_doi_url_with_the_largest_page() -> None:
    """The search asks for annotations of https://doi.org/DOI, 200 at a time."""
    [call] = SOURCE.requests([CHI], SourceConfig(api_key="tok"))
    params = dict(call.params)
    assert (params["uri"], params["limit"], params["offset"]) == (
        "https://doi.org/10.1145/3290605.3300526",
        "200",
        "0",
    )
    assert dict(call.headers) == {"Authorization": "Bearer tok"}


def test_rows_become_events_and_total_is_the_count() -> None:
    """`total` is the count; each row an event with its html link, author and date."""
    [call] = SOURCE.requests([CHI], SourceConfig())
    got, more = outcomes(SOURCE, call, response(200, record("hypothesis", CHI.doi or "")))
    found = got[CHI.work_id]
    assert isinstance(found, Found) and found.metrics == {"annotations": 2} and more == ()
    first, second = found.events
    assert first.event_id == "hypothesis:hK3nYg9sEem1a2bC"
    assert first.url == "https://hypothes.is/a/hK3nYg9sEem1a2bC"
    assert first.csl["author"] == [{"literal": "Reader One"}]
    assert second.csl["author"] == [{"literal": "reader2@hypothes.is"}]


def test_more_than_a_page_asks_for_the_next_offset() -> None:
    """A total beyond the page asks for offset 200 (up to Hypothesis's 9,800 cap)."""
    [call] = SOURCE.requests([CHI], SourceConfig())
    body = record("hypothesis", CHI.doi or "")
    body["total"] = 450
    _, more = outcomes(SOURCE, call, response(200, body))
    assert [dict(m.params)["offset"] for m in more] == [str(LIMIT)]


def test_zero_total_and_failure_body() -> None:
    """total 0 is not found; {"status": "failure"} fails; a missing total is a parse failure."""
    [call] = SOURCE.requests([CHI], SourceConfig())
    assert (
        kind(outcomes(SOURCE, call, response(200, {"total": 0, "rows": []}))[0][CHI.work_id])
        == "not_found"
    )
    failure = {"status": "failure", "reason": "the service is busy"}
    assert kind(outcomes(SOURCE, call, response(200, failure))[0][CHI.work_id]) == "failed:http"
    no_total = response(200, fixture("hypothesis", "errors/total-missing.json"))
    assert kind(outcomes(SOURCE, call, no_total)[0][CHI.work_id]) == "failed:parse"
