"""Crossref's API as the stub upstream answers it, from tests/fixtures/upstream/crossref/
(the plug-in: services/fetchers/sources/crossref.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote

from services.stub.crossref_catalogue import CatalogueStub
from services.stub.upstream import StubAnswer, StubRequest, StubUpstream, synthetic_count


class CrossrefStub(StubUpstream):
    """Answers `/works/{doi}` like api.crossref.org, and the catalogue routes (`/members/...`,
    `/prefixes/...`) as services/stub/crossref_catalogue.py does."""

    def __init__(self, fixtures: Path, synthetic: bool = False) -> None:
        super().__init__(fixtures, synthetic)
        self.catalogue = CatalogueStub(fixtures)

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
        if request.path.startswith(("/members/", "/prefixes/")):
            return self.catalogue.answer(request)
        if request.path == "/works":
            return self._list(request)
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

    def _list(self, request: StubRequest) -> StubAnswer:
        filters = [f for f in request.param("filter").split(",") if f]
        if not filters or not all(f.startswith("doi:") for f in filters):
            return StubAnswer.json(
                {
                    "status": "failed",
                    "message-type": "validation-failure",
                    "message": [
                        {
                            "type": "filter-not-available",
                            "value": request.param("filter"),
                            "message": "Filter not available",
                        }
                    ],
                },
                status=400,
            )
        dois = [f[4:] for f in filters]
        for doi in dois:
            error = self.error_for(doi)
            if error is not None:
                return error
        items = [r["message"] for r in (self.lookup(d) for d in dois) if r is not None]
        message = {
            "facets": {},
            "total-results": len(items),
            "items": items,
            "items-per-page": int(request.param("rows", "20")),
            "query": {"start-index": 0, "search-terms": None},
        }
        return StubAnswer.json(
            {
                "status": "ok",
                "message-type": "work-list",
                "message-version": "1.0.0",
                "message": message,
            }
        )
