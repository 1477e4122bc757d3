"""OpenCitations's API as the stub upstream answers it, from tests/fixtures/upstream/opencitations/
(the plug-in: services/fetchers/sources/opencitations.py)."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from services.fetchers.sources.opencitations import pids
from services.stub.upstream import StubAnswer, StubRequest, StubUpstream, synthetic_count


class OpenCitationsStub(StubUpstream):
    """Answers `/citation-count/{id}` and `/citations/{id}` like the Index API v2.

    Records are recorded `/citations` responses; the count is their length.
    """

    def record_doi(self, record: Any) -> str | None:
        """The cited DOI of a recorded citation list."""
        return pids(record[0]["cited"]).get("doi") if record else None

    def synthesize(self, doi: str) -> Any:
        """`n` citations from synthetic citing works."""
        return [
            {
                "oci": f"0610{i}-0618{synthetic_count(doi, 'omid', 10**6)}",
                "citing": f"omid:br/0610{i} doi:10.5555/citing.{i}",
                "cited": f"omid:br/0618 doi:{doi}",
                "creation": f"{2015 + i % 10}-03-01",
                "timespan": "P1Y",
                "journal_sc": "no",
                "author_sc": "no",
            }
            for i in range(synthetic_count(doi, "opencitations", 12))
        ]

    def answer(self, request: StubRequest) -> StubAnswer:
        """The count or the list; a bare (unprefixed) id gets `[]`, as upstream."""
        op, _, ident = request.path.lstrip("/").partition("/")
        if op not in ("citation-count", "citations"):
            return StubAnswer.text("<h1>Not Found</h1>", 404, "text/html")
        ident = unquote(ident)
        if not ident.lower().startswith("doi:"):
            return StubAnswer.json([])
        doi = ident[4:]
        error = self.error_for(doi)
        if error is not None:
            return error
        rows = self.lookup(doi) or []
        if op == "citation-count":
            return StubAnswer.json([{"count": str(len(rows))}])
        return StubAnswer.json(rows)
