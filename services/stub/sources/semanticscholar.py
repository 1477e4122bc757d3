"""Semantic Scholar's API as the stub upstream answers it, from
tests/fixtures/upstream/semanticscholar/ (the plug-in:
services/fetchers/sources/semanticscholar.py)."""

from __future__ import annotations

import json
from typing import Any

from services.fetchers.sources.semanticscholar import MAX_IDS
from services.stub.upstream import StubAnswer, StubRequest, StubUpstream, synthetic_count


class SemanticScholarStub(StubUpstream):
    """Answers `POST /paper/batch` like api.semanticscholar.org; records are paper objects."""

    def record_doi(self, record: Any) -> str | None:
        """`externalIds.DOI` of a recorded paper object."""
        return str(record["externalIds"]["DOI"])

    def synthesize(self, doi: str) -> Any:
        """A paper object with deterministic counts."""
        cites = synthetic_count(doi, "s2")
        return {
            "paperId": f"{synthetic_count(doi, 's2id', 10**9):040x}",
            "externalIds": {"DOI": doi},
            "title": f"Synthetic work {doi}",
            "publicationDate": "2020-01-01",
            "citationCount": cites,
            "influentialCitationCount": cites // 10,
        }

    def answer(self, request: StubRequest) -> StubAnswer:
        """Aligned results with nulls; 400 for a bad body or too many ids."""
        if request.method != "POST" or request.path != "/paper/batch":
            return StubAnswer.json({"error": "Not found"}, status=404)
        try:
            ids = json.loads(request.body)["ids"]
        except (ValueError, KeyError, TypeError):
            return StubAnswer.json({"error": "Unacceptable request body"}, status=400)
        if len(ids) > MAX_IDS:
            return StubAnswer.json({"error": f"-- ids: at most {MAX_IDS} ids"}, status=400)
        dois = [str(i)[4:] if str(i).upper().startswith("DOI:") else "" for i in ids]
        for doi in dois:
            error = self.error_for(doi)
            if error is not None:
                return error
        return StubAnswer.json([self.lookup(d) if d else None for d in dois])
