"""Hypothes.is's API as the stub upstream answers it, from tests/fixtures/upstream/hypothesis/
(the plug-in: services/fetchers/sources/hypothesis.py)."""

from __future__ import annotations

from typing import Any

from services.fetchers.sources.hypothesis import LIMIT
from services.stub.upstream import StubAnswer, StubRequest, StubUpstream, synthetic_count


class HypothesisStub(StubUpstream):
    """Answers `/search?uri=...` like api.hypothes.is; records are full search answers."""

    def record_doi(self, record: Any) -> str | None:
        """The DOI of the annotated URI of the first row (else the file name)."""
        rows = record.get("rows") or []
        uri = str(rows[0].get("uri", "")) if rows else ""
        return uri.split("doi.org/", 1)[1] if "doi.org/" in uri else None

    def synthesize(self, doi: str) -> Any:
        """Zero to two synthetic annotations for a fifth of the works."""
        n = synthetic_count(doi, "hypothesis", 10)
        rows = [
            {
                "id": f"syn{n}{i}",
                "created": "2025-01-01T00:00:00.000Z",
                "user": "acct:a@hyp.is",
                "uri": f"https://doi.org/{doi}",
                "text": "",
                "tags": [],
                "group": "__world__",
                "links": {"html": f"https://hypothes.is/a/syn{n}{i}"},
            }
            for i in range(n if n < 3 else 0)
        ]
        return {"total": len(rows), "rows": rows}

    def answer(self, request: StubRequest) -> StubAnswer:
        """A page of the recorded rows for the DOI URL."""
        if request.path != "/search":
            return StubAnswer.json({"status": "failure", "reason": "not found"}, status=404)
        limit = int(request.param("limit", "20"))
        if not 0 <= limit <= LIMIT:
            reason = f"limit: {limit} is greater than the maximum of {LIMIT}"
            return StubAnswer.json({"status": "failure", "reason": reason}, status=400)
        doi = request.param("uri").removeprefix("https://doi.org/")
        error = self.error_for(doi)
        if error is not None:
            return error
        rows = (self.lookup(doi) or {}).get("rows", [])
        offset = int(request.param("offset", "0"))
        return StubAnswer.json({"total": len(rows), "rows": rows[offset : offset + limit]})
