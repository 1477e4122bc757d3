"""OpenAlex plug-in: counts_by_year without zero years, singleton and OR-filter batches."""

from __future__ import annotations

from services.core.events import PeriodCount
from services.core.history import year_counts
from services.fetchers.base import Found, SourceConfig
from services.fetchers.sources.openalex import OpenAlex
from tests.unit.sources_kit import kind, outcomes, record, response, work

SOURCE = OpenAlex()


def test_zero_years_missing_from_counts_by_year_are_not_invented() -> None:
    """counts_by_year omits years with no citations: periods are the reported years only, and
    history zero-fills the gap (2021 here) instead of carrying a hole."""
    target = work("10.1234/gappy")
    [request] = SOURCE.requests([target], SourceConfig())
    body = {
        "id": "https://openalex.org/W1",
        "doi": "https://doi.org/10.1234/gappy",
        "cited_by_count": 7,
        "counts_by_year": [
            {"year": 2022, "cited_by_count": 4},
            {"year": 2020, "cited_by_count": 3},
        ],
    }
    got, _ = outcomes(SOURCE, request, response(200, body))
    found = got[target.work_id]
    assert isinstance(found, Found)
    assert found.periods == (
        PeriodCount("citations", "2020", 3),
        PeriodCount("citations", "2022", 4),
    )
    assert [r["metrics"] for r in year_counts(found.periods, 2020, 2022)] == [
        {"citations": 3},
        {"citations": 0},
        {"citations": 4},
    ]


def test_batch_answer_without_a_doi_means_not_found() -> None:
    """In an OR-filter batch, a DOI missing from `results` is unknown to OpenAlex."""
    known, unknown = work("10.7717/peerj.4375"), work("10.9999/unknown")
    [request] = SOURCE.requests([known, unknown], SourceConfig())
    assert dict(request.params)["filter"].startswith("doi:https://doi.org/10.7717/peerj.4375|")
    body = {"meta": {"count": 1}, "results": [record("openalex", "10.7717/peerj.4375")]}
    got, _ = outcomes(SOURCE, request, response(200, body))
    assert (kind(got[known.work_id]), kind(got[unknown.work_id])) == ("found", "not_found")


def test_singleton_404_is_not_found() -> None:
    """A batch of one uses /works/doi:{doi}; its JSON 404 is not found."""
    target = work("10.9999/unknown")
    [request] = SOURCE.requests([target], SourceConfig())
    assert request.path == "/works/doi:10.9999/unknown"
    got, _ = outcomes(SOURCE, request, response(404, {"error": "404 Not Found"}))
    assert kind(got[target.work_id]) == "not_found"
