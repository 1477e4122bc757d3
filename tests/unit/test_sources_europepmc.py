"""Europe PMC plug-in: errors inside HTTP 200, the text/plain 503, and the citing-articles step."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from services.core.events import Status
from services.core.sources import SourceConfig
from services.fetchers.base import Failed, Found, UpstreamRequest, UpstreamResponse
from services.fetchers.engine import fetch_batch
from services.fetchers.sources.europepmc import PAGE, EuropePmc
from tests.unit.sources_kit import fixture, kind, outcomes, record, response, work

SOURCE = EuropePmc()
PEERJ = work("10.7717/peerj.4375")


def search_call() -> UpstreamRequest:
    """The search call for PeerJ's DOI."""
    return SOURCE.requests([PEERJ], SourceConfig())[0]


def citations_page(n: int, hit_count: int) -> dict[str, object]:
    """A /citations answer with `n` citing articles out of `hit_count`."""
    rows = [
        {
            "id": str(100 + i),
            "source": "MED",
            "title": f"T{i}",
            "authorString": "Doe J, Roe R.",
            "journalAbbreviation": "J X",
            "pubYear": 2020 + i % 2,
        }
        for i in range(n)
    ]
    return {"version": "6.9", "hitCount": hit_count, "citationList": {"citation": rows}}


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (response(200, fixture("europepmc", "errors/errcode-in-200.json")), "failed:http"),
        (response(200, {"errCode": 500, "errMsg": "Internal error"}), "failed:http"),
        (
            response(
                503, fixture("europepmc", "errors/maintenance-503.txt"), content_type="text/plain"
            ),
            "failed:http",
        ),
        (
            response(200, {"version": "6.9", "hitCount": 0, "resultList": {"result": []}}),
            "not_found",
        ),
        (response(200, {"version": "6.9", "hitCount": 1}), "failed:parse"),
    ],
)
def test_error_shapes(reply: UpstreamResponse, expected: str) -> None:
    """errCode inside a 200 and the maintenance 503 fail (retryably); no hit is not found."""
    got, more = outcomes(SOURCE, search_call(), reply)
    assert kind(got[PEERJ.work_id]) == expected
    assert more == ()
    if expected.startswith("failed"):
        failure = got[PEERJ.work_id]
        assert isinstance(failure, Failed) and failure.error.retryable


def test_hit_with_citations_asks_for_the_citing_articles() -> None:
    """A hit with citedByCount > 0 gives the count and an optional /MED/{id}/citations call."""
    got, more = outcomes(SOURCE, search_call(), response(200, record("europepmc", PEERJ.doi or "")))
    found = got[PEERJ.work_id]
    assert isinstance(found, Found) and found.metrics == {"citations": 612}
    [call] = more
    assert call.path == "/MED/29456894/citations" and call.optional
    assert dict(call.params) == {"page": "1", "pageSize": str(PAGE), "format": "json"}


def test_citation_page_becomes_events_with_csl() -> None:
    """Citing articles become events with CSL authors, container and year; years are counted."""
    call = outcomes(SOURCE, search_call(), response(200, record("europepmc", PEERJ.doi or "")))[1][
        0
    ]
    body = json.loads(fixture("europepmc", "citations/MED_29456894.json"))
    got, more = outcomes(SOURCE, call, response(200, body))
    found = got[PEERJ.work_id]
    assert isinstance(found, Found) and found.metrics == {}
    assert more == ()
    first = found.events[0]
    assert first.event_id == "MED:41201234"
    assert first.url == "https://europepmc.org/article/MED/41201234"
    assert first.csl["author"][0] == {"literal": "Kim J"}
    assert first.csl["container-title"] == "PeerJ"
    assert first.csl["issued"] == {"date-parts": [[2020]]}
    assert {p.period: p.count for p in found.periods} == {"2020": 2, "2021": 1, "2022": 1}


def test_long_citation_lists_are_paged() -> None:
    """With more citing articles than a page holds, the next page is asked for."""
    call = outcomes(SOURCE, search_call(), response(200, record("europepmc", PEERJ.doi or "")))[1][
        0
    ]
    _, more = outcomes(SOURCE, call, response(200, citations_page(PAGE, 2500)))
    assert [dict(m.params)["page"] for m in more] == ["2"]


class OneReply:
    """A fake upstream: the search is recorded, the citations endpoint is down."""

    async def call(self, source: object, request: UpstreamRequest) -> UpstreamResponse:
        if request.step == "citations":
            body = fixture("europepmc", "errors/maintenance-503.txt")
            return response(503, body, content_type="text/plain")
        return response(200, record("europepmc", PEERJ.doi or ""))


async def test_citations_endpoint_down_keeps_the_count() -> None:
    """Europe PMC endpoints fail independently: a 503 citation list leaves the count standing."""
    result = await fetch_batch(
        SOURCE, [PEERJ], SourceConfig(), OneReply(), lambda: datetime.now(UTC)
    )
    [obs] = result.observations
    assert obs.status is Status.OK and obs.metrics == {"citations": 612} and obs.events == ()
    assert result.calls == 2
