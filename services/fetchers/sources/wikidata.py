"""Wikidata: how many Wikidata items cite the work (P2860 "cites work" statements).

Three steps, batched where the API allows: (1) find the items of several works at once with
CirrusSearch `haswbstatement:P356=A|P356=B` (DOIs upper-case, query kept under 300 characters);
(2) tell which item has which DOI with one `wbgetentities` call (up to 50 items); (3) per item,
count citing items as the total hits of `haswbstatement:P2860=Q...`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from services.core.metrics import Group, MetricSpec
from services.core.works import WorkRef
from services.fetchers.base import (
    Found,
    Limits,
    NotFound,
    Outcome,
    ParseResult,
    Source,
    SourceConfig,
    UpstreamRequest,
    UpstreamResponse,
    as_count,
    as_list,
    as_object,
    for_all,
    json_payload,
)
from services.fetchers.sources.wikipedia import mediawiki_error
from services.fetchers.stub import StubAnswer, StubRequest, StubUpstream, synthetic_count

MAX_QUERY = 300  # CirrusSearch's full-text query length limit on Wikimedia wikis
FIND = "haswbstatement:P356="


def doi_claims(entity: dict[str, Any]) -> list[str]:
    """The DOIs (P356 values) of a `wbgetentities` entity."""
    claims = entity.get("claims") if isinstance(entity.get("claims"), dict) else {}
    out = []
    for claim in (claims or {}).get("P356") or []:
        value = claim.get("mainsnak", {}).get("datavalue", {}).get("value")
        if isinstance(value, str):
            out.append(value)
    return out


class WikidataStub(StubUpstream):
    """Answers `/api.php` search and `wbgetentities` like www.wikidata.org.

    `records/*.json` are entity objects (keyed by their P356 DOI); `citedby/Q*.json` are recorded
    answers of the `haswbstatement:P2860=Q*` search.
    """

    def __init__(self, fixtures: Path, synthetic: bool = False) -> None:
        super().__init__(fixtures, synthetic)
        self.cited_by = {p.stem: p.read_bytes() for p in (fixtures / "citedby").glob("Q*.json")}
        self.by_qid = {str(r["id"]): r for r in self.records.values()}

    def record_doi(self, record: Any) -> str | None:
        """The P356 value of a recorded entity."""
        dois = doi_claims(record)
        return dois[0] if dois else None

    def synthesize(self, doi: str) -> Any:
        """An item for the DOI (a fake QID above Q9000000000)."""
        qid = f"Q{9_000_000_000 + synthetic_count(doi, 'qid', 10**8)}"
        snak = {"snaktype": "value", "property": "P356", "datavalue": {"value": doi.upper()}}
        entity = {"type": "item", "id": qid, "claims": {"P356": [{"mainsnak": snak}]}}
        self.by_qid[qid] = entity
        return entity

    def answer(self, request: StubRequest) -> StubAnswer:
        """Search hits for P356/P2860 statements, or entities."""
        if request.param("action") == "wbgetentities":
            ids = request.param("ids").split("|")
            missing = {"missing": ""}
            entities = {q: self.by_qid.get(q, {"id": q, **missing}) for q in ids}
            return StubAnswer.json({"entities": entities, "success": 1})
        query = request.param("srsearch")
        if query.startswith("haswbstatement:P2860="):
            qid = query.split("=", 1)[1]
            if qid in self.cited_by:
                return StubAnswer(200, self.cited_by[qid], {"Content-Type": "application/json"})
            n = synthetic_count(qid, "citedby", 30) if qid.startswith("Q9") else 0
            return StubAnswer.json(_search([], n))
        if not query.startswith(FIND):
            return StubAnswer.json({"error": {"code": "badvalue", "info": "unexpected query"}})
        hits: list[dict[str, Any]] = []
        for value in query.removeprefix("haswbstatement:").split("|"):
            doi = value.removeprefix("P356=")
            error = self.error_for(doi)
            if error is not None:
                return error
            entity = self.lookup(doi)
            if entity is not None:
                hits.append({"ns": 0, "title": entity["id"], "pageid": len(hits) + 1})
        return StubAnswer.json(_search(hits, len(hits)))


def _search(hits: list[dict[str, Any]], total: int) -> dict[str, Any]:
    return {"batchcomplete": True, "query": {"searchinfo": {"totalhits": total}, "search": hits}}


class Wikidata(Source):
    """Wikidata: items whose "cites work" (P2860) statements point at the work."""

    name = "wikidata"
    display_name = "Wikidata"
    group = Group.CITED  # P2860 records bibliographic citations, not attention
    metrics = (MetricSpec("citations", Group.CITED, description="items with P2860 to the item"),)
    base_url = "https://www.wikidata.org/w"
    batch_size = 50  # one wbgetentities call; searches are split under MAX_QUERY characters
    limits = Limits(requests_per_second=5.0, concurrency=1)  # serial calls, per API:Etiquette
    auth = "none; descriptive User-Agent with contact address (mandatory)"
    description = "Wikidata items citing the work (P2860)."
    stub = WikidataStub

    def requests(self, works: Sequence[WorkRef], config: SourceConfig) -> list[UpstreamRequest]:
        """ORed P356 searches, each under the query length limit."""
        calls: list[UpstreamRequest] = []
        group: list[WorkRef] = []
        query = ""
        for work in works:
            term = f"P356={(work.doi or '').upper()}"
            longer = f"{query}|{term}" if query else f"{FIND}{(work.doi or '').upper()}"
            if group and len(longer) > MAX_QUERY:
                calls.append(_query(query, group, "find", "50"))
                group, longer = [], f"{FIND}{(work.doi or '').upper()}"
            group.append(work)
            query = longer
        if group:
            calls.append(_query(query, group, "find", "50"))
        return calls

    def parse(self, request: UpstreamRequest, response: UpstreamResponse) -> ParseResult:
        """Items found -> which item is which DOI -> citing-item counts."""
        payload = as_object(json_payload(response), "response")
        failed = mediawiki_error(payload, "Wikidata")
        if failed is not None:
            return ParseResult(for_all(request.works, failed))
        if request.step == "match":
            return _match(request, as_object(payload.get("entities"), "entities"))
        query = as_object(payload.get("query"), "query")
        hits = as_list(query.get("search"), "query.search")
        if request.step == "cited":
            info = as_object(query.get("searchinfo"), "searchinfo")
            total = as_count(info.get("totalhits"), "totalhits")
            url = f"https://www.wikidata.org/wiki/Special:WhatLinksHere/{request.context['qid']}"
            found = Found({"citations": total}, events_url=url)
            return ParseResult({request.works[0].work_id: found})
        qids = [str(as_object(h, "a hit").get("title")) for h in hits]
        if not qids:
            return ParseResult(for_all(request.works, NotFound("no Wikidata item")))
        if len(request.works) == 1 and len(qids) == 1:
            return ParseResult({}, (_cited(request.works[0], qids[0]),))
        params = (
            ("action", "wbgetentities"),
            ("ids", "|".join(qids[:50])),
            ("props", "claims"),
            ("format", "json"),
        )
        return ParseResult({}, (UpstreamRequest("/api.php", request.works, params, step="match"),))


def _query(search: str, works: Sequence[WorkRef], step: str, limit: str) -> UpstreamRequest:
    params = (
        ("action", "query"),
        ("list", "search"),
        ("srsearch", search),
        ("srnamespace", "0"),
        ("srlimit", limit),
        ("srinfo", "totalhits"),
        ("srprop", ""),
        ("maxlag", "5"),
        ("format", "json"),
        ("formatversion", "2"),
    )
    return UpstreamRequest("/api.php", tuple(works), params, step=step)


def _cited(work: WorkRef, qid: str) -> UpstreamRequest:
    call = _query(f"haswbstatement:P2860={qid}", [work], "cited", "1")
    return UpstreamRequest(call.path, call.works, call.params, step="cited", context={"qid": qid})


def _match(request: UpstreamRequest, entities: dict[str, Any]) -> ParseResult:
    qid_of: dict[str, str] = {}
    for qid, entity in entities.items():
        for doi in doi_claims(as_object(entity, "an entity")):
            qid_of.setdefault(doi.lower(), qid)
    outcomes: dict[str, Outcome] = {}
    more = []
    for work in request.works:
        item = qid_of.get((work.doi or "").lower())
        if item is None:
            outcomes[work.work_id] = NotFound("no Wikidata item")
        else:
            more.append(_cited(work, item))
    return ParseResult(outcomes, tuple(more))
