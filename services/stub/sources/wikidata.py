"""Wikidata's API as the stub upstream answers it, from tests/fixtures/upstream/wikidata/
(the plug-in: services/fetchers/sources/wikidata.py)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs

from services.fetchers.sources.wikidata import ENTITY, SPARQL_JSON
from services.stub.upstream import StubAnswer, StubRequest, StubUpstream, synthetic_count

_VALUES = re.compile(r'VALUES\s*\?doi\s*\{((?:\s*"(?:[^"\\]|\\.)*")*)\s*\}')
_LITERAL = re.compile(r'"((?:[^"\\]|\\.)*)"')


def values_dois(query: str) -> list[str] | None:
    """The DOI literals of a query's `VALUES ?doi { ... }` (unescaped); None without one."""
    block = _VALUES.search(query)
    if block is None:
        return None
    return [re.sub(r"\\(.)", r"\1", v) for v in _LITERAL.findall(block.group(1))]


def binding(doi: str, qid: str, citations: int) -> dict[str, Any]:
    """One result row, as WDQS writes it."""
    return {
        "doi": {"type": "literal", "value": doi},
        "item": {"type": "uri", "value": f"{ENTITY}{qid}"},
        "citations": {
            "datatype": "http://www.w3.org/2001/XMLSchema#integer",
            "type": "literal",
            "value": str(citations),
        },
    }


def results(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A SPARQL 1.1 JSON results document of this query."""
    return {"head": {"vars": ["doi", "item", "citations"]}, "results": {"bindings": rows}}


class WikidataStub(StubUpstream):
    """Answers `/sparql` like the Wikidata Query Service: GET `?query=` or POST form `query=`.

    `records/*.json` are recorded one-DOI answers (their rows are composed into the batch's
    answer); a row matches only a VALUES literal spelled exactly as the stored DOI (upper-case).
    """

    def record_doi(self, record: Any) -> str | None:
        """The DOI of a recorded answer's first row."""
        rows = record.get("results", {}).get("bindings", [])
        return str(rows[0]["doi"]["value"]) if rows else None

    def synthesize(self, doi: str) -> Any:
        """One item (a fake QID above Q9000000000) with a deterministic citing count."""
        qid = f"Q{9_000_000_000 + synthetic_count(doi, 'qid', 10**8)}"
        return results([binding(doi.upper(), qid, synthetic_count(doi, "citedby", 30))])

    def answer(self, request: StubRequest) -> StubAnswer:
        """The rows of the VALUES DOIs, or a recorded error of one of them."""
        if request.path != "/sparql":
            return StubAnswer.text("Not Found", 404, "text/html")
        form = parse_qs(request.body.decode()) if request.method == "POST" else {}
        query = (form.get("query") or [request.param("query")])[0]
        dois = values_dois(query)
        if dois is None:
            return StubAnswer.text(
                "SPARQL-QUERY: queryStr=" + query + "\njava.util.concurrent.ExecutionException: "
                "org.openrdf.query.MalformedQueryException: no VALUES ?doi clause",
                400,
            )
        rows: list[dict[str, Any]] = []
        for doi in dois:
            error = self.error_for(doi)
            if error is not None:
                return error
            record = self.lookup(doi)
            if record is not None:
                rows += [r for r in record["results"]["bindings"] if r["doi"]["value"] == doi]
        return StubAnswer.json(
            results(rows), headers={"Content-Type": f"{SPARQL_JSON};charset=utf-8"}
        )
