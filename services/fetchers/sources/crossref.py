"""Crossref REST API: citation counts (`is-referenced-by-count`) for Crossref DOIs.

Batches of up to 50 works in one list call, `GET /works?filter=doi:A,doi:B&select=...` (repeated
`doi` filters are ORed); a DOI absent from the items is not a Crossref DOI (another agency's, or
none) and counts as zero citations. A batch of one uses `GET /works/{doi}`, where a plain-text
404 means the same. List calls have their own, lower rate limit (`x-rate-limit-*` headers).

No citing-works list: Crossref's Cited-by matches are not public. Only the member that owns the
cited DOI may retrieve them (`doi.crossref.org/servlet/getForwardLinks`, member username and
password, XML), and the REST API has no public route for them; a member could add its own
credentialed plug-in. The public count (`is-referenced-by-count`) is all this source reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.core.metrics import Group, MetricSpec
from services.core.sources import SourceConfig
from services.core.works import WorkRef
from services.fetchers.base import (
    Found,
    Limits,
    NotFound,
    Outcome,
    ParseResult,
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

SELECT = "DOI,is-referenced-by-count,title,issued,publisher,resource"


class Crossref(Source):
    """Crossref: citations deposited with Crossref."""

    name = "crossref"
    display_name = "Crossref"
    group = Group.CITED
    metrics = (MetricSpec("citations", Group.CITED, description="is-referenced-by-count"),)
    base_url = "https://api.crossref.org"
    batch_size = 50
    limits = Limits(requests_per_second=3.0, concurrency=1)  # polite pool, list queries
    auth = "none (mailto joins the polite pool; Crossref-Plus-API-Token for Plus)"
    description = "Citations counted by Crossref from deposited reference lists."

    def requests(self, works: Sequence[WorkRef], config: SourceConfig) -> list[UpstreamRequest]:
        """`GET /works/{doi}` for one work, else one `filter=doi:A,doi:B` list call."""
        headers: tuple[tuple[str, str], ...] = ()
        if config.api_key:
            headers = (("Crossref-Plus-API-Token", f"Bearer {config.api_key}"),)
        params: tuple[tuple[str, str], ...] = (("mailto", config.contact_email),)
        if len(works) == 1:
            path = f"/works/{encode_path(works[0].doi or '')}"
            return [UpstreamRequest(path, tuple(works), params, headers=headers)]
        dois = ",".join(f"doi:{w.doi}" for w in works)
        params += (("filter", dois), ("rows", str(len(works))), ("select", SELECT))
        return [UpstreamRequest("/works", tuple(works), params, headers=headers)]

    def parse(self, request: UpstreamRequest, response: UpstreamResponse) -> ParseResult:
        """`is-referenced-by-count` per work; a 404 or a DOI missing from a list is no record."""
        if response.status == 404:
            return ParseResult(for_all(request.works, NotFound(response.text()[:100])))
        payload = json_payload(response)
        expect(isinstance(payload, dict), "response is not a JSON object")
        expect(payload.get("status") == "ok", f"status is {payload.get('status')!r}, not 'ok'")
        message = payload.get("message")
        expect(isinstance(message, dict), "no 'message' object")
        if payload.get("message-type") != "work-list":
            work = request.works[0]
            return ParseResult({work.work_id: self._found(work, message)})
        by_doi = index_by_doi(message.get("items"), "DOI", "work-list 'items'")
        outcomes: dict[str, Outcome] = {}
        for work in request.works:
            item = by_doi.get(work.doi or "")
            outcomes[work.work_id] = (
                self._found(work, item) if item else NotFound("not in Crossref")
            )
        return ParseResult(outcomes)

    def _found(self, work: WorkRef, message: dict[str, Any]) -> Found:
        count = as_count(message.get("is-referenced-by-count"), "is-referenced-by-count")
        resource = message.get("resource")
        primary = resource.get("primary") if isinstance(resource, dict) else None
        meta = work_meta(
            title=message.get("title"),
            issued=message.get("issued"),
            publisher=message.get("publisher"),
            canonical_url=primary.get("URL") if isinstance(primary, dict) else None,
        )
        return Found({"citations": count}, events_url=self.events_url(work), meta=meta)
