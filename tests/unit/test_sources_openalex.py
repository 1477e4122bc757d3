"""OpenAlex plug-in: counts_by_year without zero years, singleton and OR-filter batches."""

from __future__ import annotations

import json
from datetime import date

from services.core.events import PeriodCount
from services.core.history import history
from services.core.sources import SourceConfig
from services.fetchers.base import Found
from services.fetchers.sources.openalex import OpenAlex
from tests.unit.real_corpus import body_bytes
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
    years = history("year", [], found.periods, {"citations": 7}, date(2022, 6, 1))
    assert [(b.key, b.counts) for b in years.buckets] == [
        ((2020,), {"citations": 3}),
        ((2021,), {"citations": 0}),
        ((2022,), {"citations": 4}),
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


def test_select_asks_for_ids_and_only_fields_openalex_knows() -> None:
    """`select` includes `ids` (PMID/PMCID arrive only then), and every selected field is one
    that OpenAlex lists as valid in its real 400 answer to an unknown select field."""
    [request] = SOURCE.requests([work("10.7717/peerj.4375")], SourceConfig())
    selected = dict(request.params)["select"].split(",")
    assert "ids" in selected
    answer = json.loads(body_bytes("openalex", "400-invalid-select.json"))["message"]
    listed = answer.split("Valid fields for select are:")[1]
    valid = {f.strip().rstrip(".") for f in listed.split(",")}
    assert set(selected) <= valid


def test_pmcid_url_without_prefix_becomes_a_pmcid() -> None:
    """OpenAlex's `ids.pmcid` is `https://www.ncbi.nlm.nih.gov/pmc/articles/5815332`: the
    work's PMCID is PMC5815332 (recorded work object W2741809807)."""
    target = work("10.7717/peerj.4375")
    [request] = SOURCE.requests([target], SourceConfig())
    body = body_bytes("openalex", "W2741809807.json")
    got, _ = outcomes(SOURCE, request, response(200, body))
    found = got[target.work_id]
    assert isinstance(found, Found)
    assert (found.meta["pmid"], found.meta["pmcid"]) == ("29456894", "PMC5815332")
