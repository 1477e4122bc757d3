"""Europe PMC REST: citation counts (`citedByCount`) found by searching for the DOI.

Europe PMC reports some errors inside HTTP 200 (`errCode`/`errMsg`) and answers maintenance
with a text/plain 503; a search with no hit means Europe PMC does not know the work.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.core.events import FetchError
from services.core.metrics import Group, MetricSpec
from services.core.works import WorkRef
from services.fetchers.base import (
    Failed,
    Found,
    Limits,
    NotFound,
    ParseResult,
    Source,
    SourceConfig,
    UpstreamRequest,
    UpstreamResponse,
    as_count,
    expect,
    for_all,
    json_payload,
    work_meta,
)
from services.fetchers.stub import StubAnswer, StubRequest, StubUpstream, synthetic_count


class EuropePmcStub(StubUpstream):
    """Answers `/search?query=DOI:"..."` like www.ebi.ac.uk/europepmc/webservices/rest."""

    def record_doi(self, record: Any) -> str | None:
        """The DOI of the first hit of a recorded search response."""
        hits = record["resultList"]["result"]
        return str(hits[0]["doi"]) if hits else None

    def synthesize(self, doi: str) -> Any:
        """A one-hit search response."""
        pmid = str(10_000_000 + synthetic_count(doi, "pmid", 9_000_000))
        hit = {
            "id": pmid,
            "source": "MED",
            "pmid": pmid,
            "doi": doi,
            "title": f"Synthetic {doi}",
            "pubYear": "2020",
            "citedByCount": synthetic_count(doi, "europepmc"),
            "firstPublicationDate": "2020-01-01",
        }
        return _envelope(f'DOI:"{doi}"', [hit])

    def answer(self, request: StubRequest) -> StubAnswer:
        """The recorded search, an error recording, or an empty result list."""
        if request.path != "/search":
            return StubAnswer.text("Not Found", 404, "text/html")
        query = request.param("query")
        if not (query.startswith('DOI:"') and query.endswith('"')):
            return StubAnswer.json({"errCode": 400, "errMsg": f"Invalid query: {query}"})
        doi = query[5:-1]
        error = self.error_for(doi)
        if error is not None:
            return error
        record = self.lookup(doi)
        return StubAnswer.json(record if record is not None else _envelope(query, []))


def _envelope(query: str, hits: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "version": "6.9",
        "hitCount": len(hits),
        "request": {
            "queryString": query,
            "resultType": "lite",
            "cursorMark": "*",
            "pageSize": 25,
            "synonym": False,
        },
        "resultList": {"result": hits},
    }


class EuropePmc(Source):
    """Europe PMC: citations from the Europe PMC literature database."""

    name = "europepmc"
    display_name = "Europe PMC"
    group = Group.CITED
    metrics = (MetricSpec("citations", Group.CITED, description="citedByCount"),)
    base_url = "https://www.ebi.ac.uk/europepmc/webservices/rest"
    batch_size = 1
    limits = Limits(requests_per_second=10.0, concurrency=2)
    auth = "none (email parameter recommended)"
    description = "Citations counted by Europe PMC (life-science literature)."
    stub = EuropePmcStub

    def requests(self, works: Sequence[WorkRef], config: SourceConfig) -> list[UpstreamRequest]:
        """`GET /search?query=DOI:"..."&format=json&resultType=lite` per work."""
        return [
            UpstreamRequest(
                "/search",
                (w,),
                (
                    ("query", f'DOI:"{w.doi}"'),
                    ("format", "json"),
                    ("resultType", "lite"),
                    ("pageSize", "25"),
                    ("email", config.contact_email),
                ),
            )
            for w in works
        ]

    def parse(self, request: UpstreamRequest, response: UpstreamResponse) -> ParseResult:
        """`citedByCount` of the hit whose DOI matches; errors inside 200 are failures."""
        work = request.works[0]
        if response.status == 404:
            return ParseResult({work.work_id: NotFound("no such resource")})
        payload = json_payload(response)
        expect(isinstance(payload, dict), "response is not a JSON object")
        if "errCode" in payload:
            err = FetchError(
                "http",
                f"Europe PMC error {payload['errCode']}: {payload.get('errMsg')}",
                retryable=True,
                http_status=int(payload["errCode"]),
            )
            return ParseResult(for_all(request.works, Failed(err)))
        result_list = payload.get("resultList")
        expect(isinstance(result_list, dict), "no 'resultList' object")
        hits = result_list.get("result")
        expect(isinstance(hits, list), "'resultList.result' is not a list")
        match = next(
            (h for h in hits if isinstance(h, dict) and str(h.get("doi", "")).lower() == work.doi),
            None,
        )
        if match is None:
            return ParseResult({work.work_id: NotFound("no hit for the DOI")})
        count = as_count(match.get("citedByCount", 0), "citedByCount")
        url = _events_url(match)
        meta = work_meta(
            title=match.get("title"),
            issued=match.get("firstPublicationDate"),
            pmid=match.get("pmid"),
            pmcid=match.get("pmcid"),
        )
        return ParseResult({work.work_id: Found({"citations": count}, events_url=url, meta=meta)})


def _events_url(hit: dict[str, Any]) -> str | None:
    if hit.get("source") and hit.get("id"):
        return f"https://europepmc.org/search?query=CITES%3A{hit['id']}_{hit['source']}"
    return None
