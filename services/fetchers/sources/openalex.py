"""OpenAlex: citation counts with per-year counts, up to 50 works a call (DOI OR filter).

A batch of one uses the free singleton route `/works/doi:{doi}` (404 = unknown); larger
batches use `/works?filter=doi:A|B` and a DOI absent from the results is unknown to OpenAlex.
`counts_by_year` omits zero years (history zero-fills them) and covers recent years only, so
its counts can add up to less than `cited_by_count`: history shows the difference as not dated.
`ids.pmcid` comes as a URL ending in the number without its PMC prefix.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.core.events import PeriodCount
from services.core.metrics import Group, MetricSpec
from services.core.sources import SourceConfig
from services.core.works import WorkRef
from services.fetchers.base import (
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
    encode_path,
    expect,
    for_all,
    index_by_doi,
    json_payload,
    work_meta,
)

# `ids` carries the PMID and PMCID the plug-in reads (without it they never arrive).
SELECT = "id,doi,ids,title,publication_date,cited_by_count,counts_by_year,updated_date"


class OpenAlex(Source):
    """OpenAlex: citations and citations per year."""

    name = "openalex"
    display_name = "OpenAlex"
    group = Group.CITED
    metrics = (MetricSpec("citations", Group.CITED, description="cited_by_count"),)
    base_url = "https://api.openalex.org"
    batch_size = 50
    limits = Limits(requests_per_second=10.0, concurrency=2)
    auth = "api_key parameter (ALM_OPENALEX_API_KEY); keyless works on a small daily budget"
    description = "Citations and citations by year from the OpenAlex catalogue."

    def requests(self, works: Sequence[WorkRef], config: SourceConfig) -> list[UpstreamRequest]:
        """One singleton call for one work, else one OR-filter call for the batch."""
        params: list[tuple[str, str]] = [("select", SELECT), ("mailto", config.contact_email)]
        if config.api_key:
            params.append(("api_key", config.api_key))
        if len(works) == 1:
            doi = works[0].doi or ""
            return [UpstreamRequest(f"/works/doi:{encode_path(doi)}", tuple(works), tuple(params))]
        dois = "|".join(f"https://doi.org/{w.doi}" for w in works)
        params += [("filter", f"doi:{dois}"), ("per-page", str(len(works)))]
        return [UpstreamRequest("/works", tuple(works), tuple(params))]

    def refused_call(self, request: UpstreamRequest, response: UpstreamResponse) -> str | None:
        """OpenAlex's 400 "Invalid query parameters error." naming a `select` field: the call
        asks for a field OpenAlex no longer has (ours to fix), not a refused DOI."""
        message = _error_message(response)
        if message is not None and "select" in message.lower():
            return message
        return None

    def parse(self, request: UpstreamRequest, response: UpstreamResponse) -> ParseResult:
        """`cited_by_count` and `counts_by_year` per work; missing DOIs are unknown works."""
        if response.status == 404:
            return ParseResult(for_all(request.works, NotFound("not in OpenAlex")))
        payload = json_payload(response)
        expect(isinstance(payload, dict), "response is not a JSON object")
        if "results" not in payload:
            expect(len(request.works) == 1, "list response without 'results'")
            return ParseResult({request.works[0].work_id: _found(payload)})
        by_doi = index_by_doi(payload["results"], "doi", "'results'")
        outcomes: dict[str, Outcome] = {}
        for work in request.works:
            item = by_doi.get(work.doi or "")
            outcomes[work.work_id] = _found(item) if item else NotFound("not in OpenAlex")
        return ParseResult(outcomes)


def _found(item: dict[str, Any]) -> Found:
    total = as_count(item.get("cited_by_count"), "cited_by_count")
    periods = []
    by_year = item.get("counts_by_year") or []
    if not isinstance(by_year, list):
        raise PayloadError("counts_by_year is not a list")
    for row in by_year:
        expect(isinstance(row, dict) and "year" in row, "counts_by_year row without year")
        year = as_count(row["year"], "counts_by_year.year")
        periods.append(
            PeriodCount(
                "citations",
                f"{year:04d}",
                as_count(row.get("cited_by_count", 0), "counts_by_year.cited_by_count"),
            )
        )
    oa_id = str(item.get("id") or "").rsplit("/", 1)[-1]
    events_url = f"https://openalex.org/works?filter=cites:{oa_id}" if oa_id else None
    raw_ids = item.get("ids")
    ids: dict[str, Any] = raw_ids if isinstance(raw_ids, dict) else {}
    meta = work_meta(
        title=item.get("title"),
        issued=item.get("publication_date"),
        pmid=ids.get("pmid"),
        pmcid=_pmcid(ids.get("pmcid")),
    )
    return Found(
        {"citations": total},
        meta=meta,
        periods=tuple(sorted(periods, key=lambda p: p.period)),
        events_url=events_url,
    )


def _pmcid(value: Any) -> str | None:
    """`PMC5815332` from `https://www.ncbi.nlm.nih.gov/pmc/articles/5815332` (or PMC-prefixed)."""
    tail = str(value or "").rstrip("/").rsplit("/", 1)[-1].upper()
    number = tail.removeprefix("PMC")
    return f"PMC{number}" if number.isdigit() else None


def _error_message(response: UpstreamResponse) -> str | None:
    """The `message` of an OpenAlex JSON error body (`{"error": ..., "message": ...}`)."""
    try:
        payload = json_payload(response)
    except PayloadError:
        return None
    if isinstance(payload, dict) and isinstance(payload.get("message"), str):
        return str(payload["message"])
    return None
