"""Wikipedia's API as the stub upstream answers it, from tests/fixtures/upstream/wikipedia/
(the plug-in: services/fetchers/sources/wikipedia.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from services.stub.upstream import (
    SYNTHETIC_PREFIX,
    StubAnswer,
    StubRequest,
    StubUpstream,
    recorded,
    synthetic_count,
)


class WikipediaStub(StubUpstream):
    """Answers `/<lang>.wikipedia.org/w/api.php` search like MediaWiki (formatversion=2).

    Records are `records/<lang>/<doi with / as _>.json`: a search response holding every hit;
    the stub pages through it `page_size` hits at a time with a `continue` object.
    """

    page_size = 500

    def __init__(self, fixtures: Path, synthetic: bool = False) -> None:
        super().__init__(fixtures, synthetic)
        for path in sorted((fixtures / "records").glob("*/*.json")):
            doi = path.stem.replace("_", "/", 1).lower()
            self.records[f"{path.parent.name}:{doi}"] = recorded(path)

    def record_doi(self, record: Any) -> str | None:
        """Records are keyed by their path instead (search answers do not name the DOI)."""
        return None

    def synthesize(self, doi: str) -> Any:
        """Zero to two synthetic pages for about a third of the works (`doi` is `lang:doi`)."""
        n = synthetic_count(doi, "wikipedia", 9)
        hits = [
            {
                "ns": 0,
                "title": f"Synthetic {i}",
                "pageid": 1000 + i,
                "timestamp": "2025-01-01T00:00:00Z",
            }
            for i in range(n if n < 3 else 0)
        ]
        return {
            "batchcomplete": True,
            "query": {"searchinfo": {"totalhits": len(hits)}, "search": hits},
        }

    def answer(self, request: StubRequest) -> StubAnswer:
        """A page of hits for `insource:"DOI"`, with `continue` while more remain."""
        lang = request.path.split(".", 1)[0].lstrip("/")
        query = request.param("srsearch")
        if not request.path.endswith("/w/api.php") or not query.startswith('insource:"'):
            return StubAnswer.json({"error": {"code": "badvalue", "info": "Unrecognized value"}})
        doi = query[len('insource:"') : -1]
        error = self.error_for(doi)
        if error is not None:
            return error
        key = f"{lang}:{doi.lower()}"
        record = self.records.get(key)
        if record is None and self.synthetic and doi.lower().startswith(SYNTHETIC_PREFIX):
            record = self.synthesize(key)
        hits = list((record or {}).get("query", {}).get("search", []))
        offset = int(request.param("sroffset", "0"))
        size = min(int(request.param("srlimit", "10")), self.page_size)
        page: dict[str, Any] = {"batchcomplete": True}
        if offset + size < len(hits):
            page["continue"] = {"sroffset": offset + size, "continue": "-||"}
        page["query"] = {
            "searchinfo": {"totalhits": len(hits)},
            "search": hits[offset : offset + size],
        }
        return StubAnswer.json(page)
