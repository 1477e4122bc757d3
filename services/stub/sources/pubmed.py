"""PubMed Central (cited by)'s API as the stub upstream answers it, from
tests/fixtures/upstream/pubmed/ (the plug-in: services/fetchers/sources/pubmed.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from services.stub.upstream import (
    StubAnswer,
    StubRequest,
    StubUpstream,
    is_synthetic_pmid,
    recorded,
    synthetic_count,
    synthetic_pmid,
)


class PubMedStub(StubUpstream):
    """Answers the ID converter (`/<idconv host>/articles/`) and ELink (`/elink.fcgi`).

    `records/*.json` are ID converter records (keyed by DOI); `linksets/*.json` are ELink
    linksets (keyed by PMID).
    """

    def __init__(self, fixtures: Path, synthetic: bool = False) -> None:
        super().__init__(fixtures, synthetic)
        self.linksets: dict[str, Any] = {}
        for path in sorted((fixtures / "linksets").glob("*.json")):
            linkset = recorded(path)
            self.linksets[str(linkset["ids"][0])] = linkset

    def record_doi(self, record: Any) -> str | None:
        """The DOI of a recorded ID converter record."""
        return str(record["doi"])

    def synthesize(self, doi: str) -> Any:
        """An ID converter record with the synthetic PMID every stub gives the DOI."""
        pmid = int(synthetic_pmid(doi))
        return {"doi": doi, "pmcid": f"PMC{pmid}", "pmid": pmid, "requested-id": doi}

    def answer(self, request: StubRequest) -> StubAnswer:
        """Converter records, or one linkset per `id` parameter."""
        if request.path.endswith("/tools/idconv/api/v1/articles/"):
            return self._idconv(request)
        if request.path == "/elink.fcgi":
            return StubAnswer.json(
                {
                    "header": {"type": "elink", "version": "0.3"},
                    "linksets": [self._linkset(p) for p in request.query.get("id", [])],
                }
            )
        return StubAnswer.text("<html><body><h1>404 Not Found</h1></body></html>", 404, "text/html")

    def _idconv(self, request: StubRequest) -> StubAnswer:
        ids = [i for i in request.param("ids").split(",") if i]
        if request.param("idtype") != "doi" and any(not i.isdigit() for i in ids):
            body = (self.fixtures / "errors" / "idconv-missing-idtype.json").read_bytes()
            return StubAnswer(400, body, {"Content-Type": "application/json"})
        for doi in ids:
            error = self.error_for(doi)
            if error is not None:
                return error
        records = [
            self.lookup(i) or {"requested-id": i, "status": "error", "errmsg": "invalid article id"}
            for i in ids
        ]
        return StubAnswer.json({"status": "ok", "records": records})

    def _linkset(self, pmid: str) -> dict[str, Any]:
        if pmid in self.linksets:
            return dict(self.linksets[pmid])
        links = [str(40_000_000 + i) for i in range(synthetic_count(pmid, "citedin", 8))]
        linkset: dict[str, Any] = {"dbfrom": "pubmed", "ids": [pmid]}
        if self.synthetic and is_synthetic_pmid(pmid) and links:
            linkset["linksetdbs"] = [
                {"dbto": "pubmed", "linkname": "pubmed_pubmed_citedin", "links": links}
            ]
        return linkset
