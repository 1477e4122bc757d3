"""Wikidata: how many Wikidata items cite the work (P2860 "cites work" statements).

One SPARQL query per batch of up to 50 works, sent to the scholarly Wikidata Query Service
(`POST /sparql`, form `query=`; W3C SPARQL 1.1 JSON results). `VALUES ?doi` lists the batch's
DOIs upper-cased (Wikidata stores P356 that way); each result row is one item with that DOI and
its count of distinct citing items. A DOI without a row has no item: NotFound. Several items for
one DOI (duplicates): the largest count is taken (no double counting), events link to that item.

Since the WDQS graph split (9 May 2025) scholarly articles and most P2860 statements are only on
query-scholarly.wikidata.org; query.wikidata.org holds the rest (books, datasets, ...), which this
source does not query.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from services.core.metrics import Group, MetricSpec
from services.core.sources import SourceConfig
from services.core.works import WorkRef
from services.fetchers.base import (
    Found,
    Limits,
    NotFound,
    Outcome,
    ParseResult,
    PayloadError,
    Source,
    UpstreamRequest,
    UpstreamResponse,
    as_count,
    as_list,
    as_object,
    expect,
    json_payload,
)

ENTITY = "http://www.wikidata.org/entity/"
SPARQL_JSON = "application/sparql-results+json"
QUERY = """PREFIX wdt: <http://www.wikidata.org/prop/direct/>
SELECT ?doi ?item (COUNT(DISTINCT ?citing) AS ?citations) WHERE {{
  VALUES ?doi {{ {values} }}
  ?item wdt:P356 ?doi .
  OPTIONAL {{ ?citing wdt:P2860 ?item . }}
}}
GROUP BY ?doi ?item"""
_QID = re.compile(r"Q[1-9][0-9]*")


def sparql_literal(doi: str) -> str | None:
    """`doi` upper-cased as a SPARQL string literal; None if it holds characters no DOI in
    Wikidata can have (control characters, line breaks), which are not escaped but refused."""
    if not doi or any(ord(c) < 0x20 or ord(c) == 0x7F for c in doi):
        return None
    escaped = doi.upper().replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


class Wikidata(Source):
    """Wikidata: items whose "cites work" (P2860) statements point at the work."""

    name = "wikidata"
    display_name = "Wikidata"
    group = Group.CITED  # P2860 records bibliographic citations, not attention
    metrics = (MetricSpec("citations", Group.CITED, description="items with P2860 to the item"),)
    base_url = "https://query-scholarly.wikidata.org"
    batch_size = 50  # one SPARQL query (VALUES of 50 DOIs) per batch
    limits = Limits(requests_per_second=1.0, concurrency=1)  # WDQS asks for one query at a time
    auth = "none; descriptive User-Agent with contact address (mandatory)"
    description = "Wikidata items citing the work (P2860), via the scholarly Query Service."

    def requests(self, works: Sequence[WorkRef], config: SourceConfig) -> list[UpstreamRequest]:
        """One POST of the batch's query (form body: 50 DOIs may exceed GET URL limits)."""
        literals = dict.fromkeys(filter(None, (sparql_literal(w.doi or "") for w in works)))
        form = (("query", QUERY.format(values=" ".join(literals))), ("format", "json"))
        headers = (("Accept", SPARQL_JSON),)
        return [UpstreamRequest("/sparql", tuple(works), method="POST", headers=headers, form=form)]

    def parse(self, request: UpstreamRequest, response: UpstreamResponse) -> ParseResult:
        """Rows by DOI (case-insensitive); the largest count of a DOI's items; no row: NotFound."""
        payload = as_object(json_payload(response), "response")
        head = as_object(payload.get("head"), "head")
        expect("doi" in as_list(head.get("vars"), "head.vars"), "head.vars lacks doi")
        rows = as_list(as_object(payload.get("results"), "results").get("bindings"), "bindings")
        best: dict[str, tuple[int, str]] = {}
        for row in rows:
            doi, qid, count = _row(as_object(row, "a binding"))
            known = best.get(doi)
            if known is None or (count, -int(qid[1:])) > (known[0], -int(known[1][1:])):
                best[doi] = (count, qid)
        outcomes: dict[str, Outcome] = {}
        for work in request.works:
            if sparql_literal(work.doi or "") is None:
                outcomes[work.work_id] = NotFound("DOI has characters Wikidata DOIs cannot have")
            elif (work.doi or "").upper() in best:
                count, qid = best[(work.doi or "").upper()]
                url = f"https://www.wikidata.org/wiki/{qid}"
                outcomes[work.work_id] = Found({"citations": count}, events_url=url)
            else:
                outcomes[work.work_id] = NotFound("no Wikidata item with this DOI")
        return ParseResult(outcomes)


def _row(row: dict[str, Any]) -> tuple[str, str, int]:
    """(upper-case DOI, QID, citing items) of one result row."""
    doi = as_object(row.get("doi"), "binding doi").get("value")
    item = as_object(row.get("item"), "binding item").get("value")
    cited = as_object(row.get("citations"), "binding citations").get("value")
    if not isinstance(doi, str) or not isinstance(item, str) or not item.startswith(ENTITY):
        raise PayloadError(f"binding without a DOI literal and an item URI: {row!r:.120}")
    qid = item.removeprefix(ENTITY)
    expect(_QID.fullmatch(qid) is not None, f"item is not a QID: {item!r}")
    return doi.upper(), qid, as_count(cited, "citations")
