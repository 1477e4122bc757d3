"""OpenCitations plug-in: counts as strings, prefixed ids, citations as events and years."""

from __future__ import annotations

import pytest

from services.core.sources import SourceConfig
from services.fetchers.base import Found
from services.fetchers.sources.opencitations import MAX_LISTED, OpenCitations, pids
from tests.unit.sources_kit import kind, outcomes, record, response, work

SOURCE = OpenCitations()
JD = work("10.1108/jd-12-2013-0166")


def test_requests_always_carry_the_doi_prefix() -> None:
    """A bare DOI answers `[]` (looks like zero), so every call names `doi:`."""
    [request] = SOURCE.requests([JD], SourceConfig(api_key="tok"))
    assert request.path == "/citation-count/doi:10.1108/jd-12-2013-0166"
    assert dict(request.headers) == {"authorization": "tok"}


@pytest.mark.parametrize(
    ("body", "expected", "count", "follow"),
    [
        ([{"count": "34"}], "found", 34, True),
        ([{"count": " 7 "}], "found", 7, True),
        ([{"count": "0"}], "found", 0, False),
        ([{"count": 5}], "found", 5, True),
        ([], "not_found", None, False),
        ([{"count": "-1"}], "failed:parse", None, False),
        ([{"count": "34.0"}], "failed:parse", None, False),
        ({"count": "34"}, "failed:parse", None, False),
        ([{"count": str(MAX_LISTED + 1)}], "found", MAX_LISTED + 1, False),
    ],
)
def test_count_is_a_digit_string(
    body: object, expected: str, count: int | None, follow: bool
) -> None:
    """`[{"count": "34"}]` is 34; a non-zero count (up to MAX_LISTED) asks for the list."""
    [request] = SOURCE.requests([JD], SourceConfig())
    got, more = outcomes(SOURCE, request, response(200, body))
    assert kind(got[JD.work_id]) == expected
    if count is not None:
        found = got[JD.work_id]
        assert isinstance(found, Found) and found.metrics == {"citations": count}
    assert [m.path for m in more] == (["/citations/doi:10.1108/jd-12-2013-0166"] if follow else [])
    assert all(m.optional for m in more)


@pytest.mark.parametrize(
    ("text", "ids"),
    [
        (
            "omid:br/06101801781 doi:10.7717/peerj-cs.421 pmid:33817056",
            {"omid": "br/06101801781", "doi": "10.7717/peerj-cs.421", "pmid": "33817056"},
        ),
        ("omid:br/0610654321", {"omid": "br/0610654321"}),
        ("doi:10.1000/a:b", {"doi": "10.1000/a:b"}),
        ("", {}),
    ],
)
def test_prefixed_id_lists(text: str, ids: dict[str, str]) -> None:
    """`citing` is a space-separated list of prefix:value ids; DOIs may contain colons."""
    assert pids(text) == ids


def test_citation_list_becomes_events_and_years() -> None:
    """Each citation is an event keyed by its OCI with the citing DOI; creation dates give years."""
    [count_call] = SOURCE.requests([JD], SourceConfig())
    _, (list_call,) = outcomes(SOURCE, count_call, response(200, [{"count": "5"}]))
    got, more = outcomes(SOURCE, list_call, response(200, record("opencitations", JD.doi or "")))
    found = got[JD.work_id]
    assert isinstance(found, Found) and more == ()
    first = found.events[0]
    assert first.event_id == "06101801781-06180334099"
    assert first.url == "https://doi.org/10.7717/peerj-cs.421"
    assert first.csl["DOI"] == "10.7717/peerj-cs.421" and first.csl["PMID"] == "33817056"
    assert first.csl["issued"] == {"date-parts": [[2021, 3, 10]]}
    no_doi = next(e for e in found.events if e.event_id.startswith("0610654321"))
    assert no_doi.url is None and "DOI" not in no_doi.csl
    assert {p.period: p.count for p in found.periods} == {"2017": 1, "2019": 3, "2021": 1}
