"""OpenCitations Index API v2: open citation counts, and the citing works as events.

Two calls a work: `/citation-count/doi:{doi}` (`[{"count": "34"}]`, the count a string), then,
when it is not zero, `/citations/doi:{doi}` (the full list; `citing` holds space-separated
prefixed ids `omid:... doi:... pmid:...`, `creation` the citing work's publication date), which
gives events and citations per year. Ids must carry their prefix: a bare DOI answers `[]`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.core.events import FetchError, SourceEvent
from services.core.metrics import Group, MetricSpec
from services.core.sources import SourceConfig
from services.core.works import WorkRef
from services.fetchers.base import (
    Failed,
    Found,
    Limits,
    NotFound,
    ParseResult,
    Source,
    UpstreamRequest,
    UpstreamResponse,
    as_count,
    encode_path,
    expect,
    json_payload,
)
from services.fetchers.csl import csl_item, year_periods

MAX_LISTED = 10_000  # above this many citations the list (one unpaged response) is not fetched


def pids(text: Any) -> dict[str, str]:
    """`{"omid": "br/061...", "doi": "10...", "pmid": "338..."}` from a space-separated PID list.

    Index v1 answers carried a bare DOI (`10.3390/molecules25092135`): it is read as the DOI.
    """
    out: dict[str, str] = {}
    for token in str(text or "").split():
        if token.startswith("10.") and "/" in token:
            out.setdefault("doi", token)
            continue
        prefix, sep, value = token.partition(":")
        if sep and value and prefix not in out:
            out[prefix.lower()] = value
    return out


class OpenCitations(Source):
    """OpenCitations: open DOI-to-DOI citations (COCI and the other indexes)."""

    name = "opencitations"
    display_name = "OpenCitations"
    group = Group.CITED
    metrics = (MetricSpec("citations", Group.CITED, description="citation-count (Index v2)"),)
    base_url = "https://opencitations.net/index/api/v2"
    batch_size = 1  # the API takes one id per call
    limits = Limits(requests_per_second=3.0, concurrency=2)  # no published limit
    auth = "optional OpenCitations access token in the `authorization` header (api_key)"
    description = "Open citations from the OpenCitations Index, with the citing works."

    def requests(self, works: Sequence[WorkRef], config: SourceConfig) -> list[UpstreamRequest]:
        """`GET /citation-count/doi:{doi}` per work (the prefix is required)."""
        return [
            UpstreamRequest(
                f"/citation-count/doi:{encode_path(w.doi or '')}",
                (w,),
                headers=_headers(config),
                step="count",
            )
            for w in works
        ]

    def parse(self, request: UpstreamRequest, response: UpstreamResponse) -> ParseResult:
        """The count (a digit string); a non-zero count asks for the citation list."""
        work = request.works[0]
        if response.status == 404:  # unknown DOIs count "0"; a 404 is a wrong route
            err = FetchError("http", "OpenCitations route answered 404", False, 404)
            return ParseResult({work.work_id: Failed(err)})
        payload = json_payload(response)
        expect(isinstance(payload, list), "response is not a JSON array")
        if request.step == "citations":
            return ParseResult({work.work_id: _citations(payload)})
        if not payload:
            return ParseResult({work.work_id: NotFound("empty answer")})
        expect(isinstance(payload[0], dict), "count row is not an object")
        count = as_count(payload[0].get("count"), "count")
        found = Found({"citations": count})
        more: tuple[UpstreamRequest, ...] = ()
        if 0 < count <= MAX_LISTED:
            path = request.path.replace("/citation-count/", "/citations/", 1)
            more = (
                UpstreamRequest(
                    path, request.works, headers=request.headers, step="citations", optional=True
                ),
            )
        return ParseResult({work.work_id: found}, more)


def _headers(config: SourceConfig) -> tuple[tuple[str, str], ...]:
    return (("authorization", config.api_key),) if config.api_key else ()


def _citations(rows: list[Any]) -> Found:
    events: dict[str, SourceEvent] = {}
    for row in rows:
        expect(isinstance(row, dict) and "oci" in row, "citation row without oci")
        citing = pids(row.get("citing"))
        doi = citing.get("doi")
        url = f"https://doi.org/{doi}" if doi else None
        creation = row.get("creation") if isinstance(row.get("creation"), str) else None
        creation = creation or None
        csl = csl_item(issued=creation, url=url, doi=doi)
        if "pmid" in citing:
            csl["PMID"] = citing["pmid"]
        events[str(row["oci"])] = SourceEvent(str(row["oci"]), creation, url, csl)
    periods = year_periods("citations", (e.event_time for e in events.values()))
    return Found({}, periods=periods, events=tuple(events.values()))
