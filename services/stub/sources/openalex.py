"""OpenAlex's API as the stub upstream answers it, from tests/fixtures/upstream/openalex/
(the plug-in: services/fetchers/sources/openalex.py)."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from services.stub.upstream import StubAnswer, StubRequest, StubUpstream, synthetic_count


class OpenAlexStub(StubUpstream):
    """Answers `/works/doi:{doi}` and `/works?filter=doi:a|b` like api.openalex.org."""

    def record_doi(self, record: Any) -> str | None:
        """The bare DOI of a recorded work object."""
        doi = record.get("doi")
        return doi.removeprefix("https://doi.org/") if doi else None

    def synthesize(self, doi: str) -> Any:
        """A work object with deterministic counts."""
        total = synthetic_count(doi, "openalex")
        return {
            "id": f"https://openalex.org/W{synthetic_count(doi, 'wid', 10**9)}",
            "doi": f"https://doi.org/{doi}",
            "title": f"Synthetic work {doi}",
            "publication_date": "2020-01-01",
            "cited_by_count": total,
            "counts_by_year": [{"year": 2025, "cited_by_count": total // 2}],
            "updated_date": "2026-01-01T00:00:00",
        }

    def answer(self, request: StubRequest) -> StubAnswer:
        """A singleton, a filtered list, or OpenAlex's 404 JSON."""
        if request.path.startswith("/works/doi:"):
            doi = unquote(request.path[len("/works/doi:") :])
            error = self.error_for(doi)
            if error is not None:
                return error
            record = self.lookup(doi)
            if record is None:
                return StubAnswer.json(_not_found(request.path), status=404)
            return StubAnswer.json(record)
        if request.path == "/works":
            return self._list(request)
        return StubAnswer.json(_not_found(request.path), status=404)

    def _list(self, request: StubRequest) -> StubAnswer:
        flt = request.param("filter")
        if not flt.startswith("doi:"):
            return StubAnswer.json(
                {
                    "error": "Invalid query parameters error.",
                    "message": f"{flt} is not a valid filter",
                },
                status=400,
            )
        dois = [d.removeprefix("https://doi.org/") for d in flt[4:].split("|")]
        for doi in dois:
            error = self.error_for(doi)
            if error is not None:
                return error
        results = [r for r in (self.lookup(d) for d in dois) if r is not None]
        meta = {
            "count": len(results),
            "db_response_time_ms": 12,
            "page": 1,
            "per_page": int(request.param("per-page", "25")),
            "groups_count": None,
        }
        return StubAnswer.json({"meta": meta, "results": results, "group_by": []})


def _not_found(path: str) -> dict[str, str]:
    return {"error": "404 Not Found", "message": f"The requested URL {path} was not found."}
