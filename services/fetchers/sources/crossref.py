"""Crossref REST API: citation counts (`is-referenced-by-count`) for Crossref DOIs.

One work a call (`GET /works/{doi}`); 404 with a plain-text body means Crossref does not have
the DOI (another agency's DOI, or none), which counts as zero citations.

No citing-works list: Crossref's Cited-by matches are not public. Only the member that owns the
cited DOI may retrieve them (`doi.crossref.org/servlet/getForwardLinks`, member username and
password, XML), and the REST API has no public route for them; a member could add its own
credentialed plug-in. The public count (`is-referenced-by-count`) is all this source reports.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote

from services.core.metrics import Group, MetricSpec
from services.core.works import WorkRef
from services.fetchers.base import (
    Found,
    Limits,
    NotFound,
    ParseResult,
    Source,
    SourceConfig,
    UpstreamRequest,
    UpstreamResponse,
    as_count,
    encode_path,
    expect,
    for_all,
    json_payload,
    work_meta,
)
from services.fetchers.stub import StubAnswer, StubRequest, StubUpstream, synthetic_count


class CrossrefStub(StubUpstream):
    """Answers `/works/{doi}` like api.crossref.org."""

    def record_doi(self, record: Any) -> str | None:
        """`message.DOI` of a recorded response."""
        return str(record["message"]["DOI"])

    def synthesize(self, doi: str) -> Any:
        """A minimal real-shaped work response."""
        return {
            "status": "ok",
            "message-type": "work",
            "message-version": "1.0.0",
            "message": {
                "DOI": doi,
                "type": "journal-article",
                "title": [f"Synthetic work {doi}"],
                "is-referenced-by-count": synthetic_count(doi, "crossref"),
                "issued": {"date-parts": [[2020, 1, 1]]},
            },
        }

    def answer(self, request: StubRequest) -> StubAnswer:
        """The recorded response, an error recording, or Crossref's plain-text 404."""
        if not request.path.startswith("/works/"):
            return StubAnswer.text("Resource not found.", 404)
        doi = unquote(request.path[len("/works/") :])
        error = self.error_for(doi)
        if error is not None:
            return error
        record = self.lookup(doi)
        if record is None:
            return StubAnswer.text("Resource not found.", 404)
        return StubAnswer.json(record)


class Crossref(Source):
    """Crossref: citations deposited with Crossref."""

    name = "crossref"
    display_name = "Crossref"
    group = Group.CITED
    metrics = (MetricSpec("citations", Group.CITED, description="is-referenced-by-count"),)
    base_url = "https://api.crossref.org"
    batch_size = 1
    limits = Limits(requests_per_second=5.0, concurrency=1)
    auth = "none (mailto joins the polite pool; Crossref-Plus-API-Token for Plus)"
    description = "Citations counted by Crossref from deposited reference lists."
    stub = CrossrefStub

    def requests(self, works: Sequence[WorkRef], config: SourceConfig) -> list[UpstreamRequest]:
        """`GET /works/{doi}?mailto=...` per work."""
        headers: tuple[tuple[str, str], ...] = ()
        if config.api_key:
            headers = (("Crossref-Plus-API-Token", f"Bearer {config.api_key}"),)
        return [
            UpstreamRequest(
                path=f"/works/{encode_path(w.doi or '')}",
                works=(w,),
                params=(("mailto", config.contact_email),),
                headers=headers,
            )
            for w in works
        ]

    def parse(self, request: UpstreamRequest, response: UpstreamResponse) -> ParseResult:
        """`message.is-referenced-by-count`; 404 (plain text) is no record."""
        if response.status == 404:
            return ParseResult(for_all(request.works, NotFound(response.text()[:100])))
        payload = json_payload(response)
        expect(isinstance(payload, dict), "response is not a JSON object")
        expect(payload.get("status") == "ok", f"status is {payload.get('status')!r}, not 'ok'")
        message = payload.get("message")
        expect(isinstance(message, dict), "no 'message' object")
        count = as_count(message.get("is-referenced-by-count"), "is-referenced-by-count")
        work = request.works[0]
        meta = work_meta(
            title=message.get("title"),
            issued=message.get("issued"),
            publisher=message.get("publisher"),
            canonical_url=message.get("resource", {}).get("primary", {}).get("URL")
            if isinstance(message.get("resource"), dict)
            else None,
        )
        found = Found({"citations": count}, events_url=self.events_url(work), meta=meta)
        return ParseResult({work.work_id: found})
