"""DataCite's API as the stub upstream answers it, from tests/fixtures/upstream/datacite/
(the plug-in: services/fetchers/sources/datacite.py)."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from services.stub.upstream import StubAnswer, StubRequest, StubUpstream, synthetic_count

_NOT_FOUND = {
    "errors": [{"status": "404", "title": "The resource you are looking for doesn't exist."}]
}


class DataCiteStub(StubUpstream):
    """Answers `/dois/{doi}` like api.datacite.org (JSON:API, 404 for other agencies' DOIs)."""

    def record_doi(self, record: Any) -> str | None:
        """`data.attributes.doi` of a recorded response."""
        return str(record["data"]["attributes"]["doi"])

    def synthesize(self, doi: str) -> Any:
        """A findable dataset with deterministic usage."""
        views, downloads = synthetic_count(doi, "dc-views"), synthetic_count(doi, "dc-dl", 100)
        citations = synthetic_count(doi, "dc-cites", 20)
        attributes = {
            "doi": doi,
            "state": "findable",
            "titles": [{"title": f"Synthetic dataset {doi}"}],
            "publicationYear": 2020,
            "viewCount": views,
            "viewsOverTime": [{"yearMonth": "2025-01", "total": views}] if views else [],
            "downloadCount": downloads,
            "downloadsOverTime": [{"yearMonth": "2025-01", "total": downloads}]
            if downloads
            else [],
            "citationCount": citations,
            "citationsOverTime": [{"year": "2025", "total": citations}] if citations else [],
        }
        return {"data": {"id": doi, "type": "dois", "attributes": attributes}}

    def answer(self, request: StubRequest) -> StubAnswer:
        """The recorded DOI, an error recording, or the JSON:API 404."""
        if not request.path.startswith("/dois/"):
            return StubAnswer.json(_NOT_FOUND, status=404)
        doi = unquote(request.path[len("/dois/") :])
        error = self.error_for(doi)
        if error is not None:
            return error
        record = self.lookup(doi)
        if record is None:
            return StubAnswer.json(_NOT_FOUND, status=404)
        return StubAnswer.json(record)
