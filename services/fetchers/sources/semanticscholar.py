"""Semantic Scholar Academic Graph: citation and influential-citation counts, 500 works a call.

`POST /paper/batch?fields=...` with `{"ids": ["DOI:...", ...]}`; the answer is a list aligned
with the ids, `null` where Semantic Scholar does not know the paper. An entry that is not a
readable paper (no citationCount) is that work's error, never its batch's. An absent
influentialCitationCount is not reported (null), not zero. A 429 comes without Retry-After (the
HTTP layer backs off exponentially). `x-api-key` carries the key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.core.events import FetchError
from services.core.metrics import Group, MetricSpec
from services.core.sources import SourceConfig
from services.core.works import WorkRef
from services.fetchers.base import (
    Failed,
    Found,
    Limits,
    NotFound,
    Outcome,
    ParseResult,
    PayloadError,
    Source,
    UpstreamRequest,
    UpstreamResponse,
    as_count,
    expect,
    for_all,
    json_payload,
    work_meta,
)

FIELDS = "externalIds,title,publicationDate,citationCount,influentialCitationCount"
MAX_IDS = 500


class SemanticScholar(Source):
    """Semantic Scholar: citations and highly influential citations."""

    name = "semanticscholar"
    display_name = "Semantic Scholar"
    group = Group.CITED
    metrics = (
        MetricSpec("citations", Group.CITED, description="citationCount"),
        MetricSpec(
            "influential_citations",
            Group.CITED,
            in_total=False,  # a subset of citationCount
            description="influentialCitationCount (subset of citations)",
        ),
    )
    base_url = "https://api.semanticscholar.org/graph/v1"
    batch_size = MAX_IDS
    limits = Limits(requests_per_second=1.0, concurrency=1)  # keys get 1 rps
    auth = "x-api-key header (api_key); anonymous calls share a pool and often get 429"
    description = "Citations and influential citations from Semantic Scholar."

    def requests(self, works: Sequence[WorkRef], config: SourceConfig) -> list[UpstreamRequest]:
        """One `POST /paper/batch` for up to 500 works."""
        headers = (("x-api-key", config.api_key),) if config.api_key else ()
        return [
            UpstreamRequest(
                "/paper/batch",
                tuple(works),
                params=(("fields", FIELDS),),
                method="POST",
                json_body={"ids": [f"DOI:{w.doi}" for w in works]},
                headers=headers,
            )
        ]

    def parse(self, request: UpstreamRequest, response: UpstreamResponse) -> ParseResult:
        """Counts per position; `null` entries are works Semantic Scholar does not know."""
        if response.status == 404:  # the batch route answers unknown ids with null, not 404
            err = FetchError("http", "Semantic Scholar batch route answered 404", False, 404)
            return ParseResult(for_all(request.works, Failed(err)))
        payload = json_payload(response)
        expect(isinstance(payload, list), "batch response is not a JSON array")
        expect(
            len(payload) == len(request.works),
            f"{len(payload)} results for {len(request.works)} ids",
        )
        return ParseResult(
            {w.work_id: _outcome(w, paper) for w, paper in zip(request.works, payload, strict=True)}
        )


def _outcome(work: WorkRef, paper: Any) -> Outcome:
    """One entry's outcome: null is an unknown paper, an unreadable entry that work's error."""
    if paper is None:
        return NotFound("not in Semantic Scholar")
    try:
        expect(isinstance(paper, dict), "the entry is neither an object nor null")
        return _found(paper)
    except PayloadError as exc:
        message = f"malformed semanticscholar entry for {work.doi}: {exc}"
        return Failed(FetchError("parse", message[:300], retryable=True))


def _found(paper: dict[str, Any]) -> Found:
    influential = paper.get("influentialCitationCount")
    metrics = {
        "citations": as_count(paper.get("citationCount"), "citationCount"),
        "influential_citations": None
        if influential is None
        else as_count(influential, "influentialCitationCount"),
    }
    ids = paper.get("externalIds") if isinstance(paper.get("externalIds"), dict) else None
    pmcid = (ids or {}).get("PubMedCentral")
    meta = work_meta(
        title=paper.get("title"),
        issued=paper.get("publicationDate"),
        pmid=(ids or {}).get("PubMed"),
        pmcid=f"PMC{pmcid}" if pmcid else None,
    )
    paper_id = paper.get("paperId")
    url = f"https://www.semanticscholar.org/paper/{paper_id}" if paper_id else None
    return Found(metrics, events_url=url, meta=meta)
