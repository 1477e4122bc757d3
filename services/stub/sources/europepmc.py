"""Europe PMC's API as the stub upstream answers it, from tests/fixtures/upstream/europepmc/
(the plug-in: services/fetchers/sources/europepmc.py)."""

from __future__ import annotations

import json
from typing import Any

from services.fetchers.sources.europepmc import PAGE
from services.stub.upstream import (
    StubAnswer,
    StubRequest,
    StubUpstream,
    is_synthetic_pmid,
    synthetic_count,
    synthetic_pmid,
)


class EuropePmcStub(StubUpstream):
    """Answers `/search?query=DOI:"..."` and `/{src}/{id}/citations` like Europe PMC REST."""

    def record_doi(self, record: Any) -> str | None:
        """The DOI of the first hit of a recorded search response."""
        hits = record["resultList"]["result"]
        return str(hits[0]["doi"]) if hits else None

    def synthesize(self, doi: str) -> Any:
        """A one-hit search response."""
        pmid = synthetic_pmid(doi)  # the PMID every stub gives it
        hit = {
            "id": pmid,
            "source": "MED",
            "pmid": pmid,
            "doi": doi,
            "title": f"Synthetic {doi}",
            "pubYear": "2020",
            "citedByCount": synthetic_count(doi, "europepmc"),
            "firstPublicationDate": "2020-01-01",
        }
        return _envelope(f'DOI:"{doi}"', [hit])

    def answer(self, request: StubRequest) -> StubAnswer:
        """The recorded search, an error recording, or an empty result list."""
        if request.path.endswith("/citations"):
            return self._citations(request)
        if request.path != "/search":
            return StubAnswer.text("Not Found", 404, "text/html")
        query = request.param("query")
        if not (query.startswith('DOI:"') and query.endswith('"')):
            return StubAnswer.json({"errCode": 400, "errMsg": f"Invalid query: {query}"})
        doi = query[5:-1]
        error = self.error_for(doi)
        if error is not None:
            return error
        record = self.lookup(doi)
        return StubAnswer.json(record if record is not None else _envelope(query, []))

    def _citations(self, request: StubRequest) -> StubAnswer:
        """A page of `citations/<SRC>_<id>.json` (or synthetic citers); errors keyed SRC:id."""
        src, _, ident = request.path.strip("/").removesuffix("/citations").partition("/")
        error = self.error_for(f"{src}:{ident}")
        if error is not None:
            return error
        size = int(request.param("pageSize", "25"))
        if not 1 <= size <= PAGE:
            msg = "Invalid page size provided. Valid size is between 1 and 1000"
            return StubAnswer.json({"errCode": 404, "errMsg": msg})
        recorded = self.fixtures / "citations" / f"{src}_{ident}.json"
        if recorded.exists():
            rows = json.loads(recorded.read_text())["citationList"]["citation"]
        elif self.synthetic and is_synthetic_pmid(ident):
            rows = [_synthetic_citer(i) for i in range(synthetic_count(ident, "epmc-cites", 30))]
        else:
            rows = []
        start = (int(request.param("page", "1")) - 1) * size
        page = {"citation": rows[start : start + size]}
        request_echo = {"id": ident, "source": src, "offSet": start, "pageSize": size}
        return StubAnswer.json(
            {"version": "6.9", "hitCount": len(rows), "request": request_echo, "citationList": page}
        )


def _synthetic_citer(i: int) -> dict[str, Any]:
    return dict(id=str(40_000_000 + i), source="MED", title=f"Citer {i}", pubYear=2020 + i % 6)


def _envelope(query: str, hits: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "version": "6.9",
        "hitCount": len(hits),
        "request": {
            "queryString": query,
            "resultType": "lite",
            "cursorMark": "*",
            "pageSize": 25,
            "synonym": False,
        },
        "resultList": {"result": hits},
    }
