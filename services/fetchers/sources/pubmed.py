"""NCBI: citations from PubMed Central articles (`pubmed_pubmed_citedin`), 200 works a batch.

Works with a known PMID go straight to ELink; the others are first mapped DOI -> PMID with the
PMC ID converter (`idtype=doi`, up to 200 ids a call; it only knows articles in PMC). ELink gets
one `id=` parameter per PMID, so it answers one linkset per PMID ("by id" mode).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.core.events import FetchError, SourceEvent
from services.core.metrics import Group, MetricSpec
from services.core.sources import SourceConfig
from services.core.works import WorkRef
from services.fetchers.base import (
    Failed,
    Found,
    Limits,
    NotFound,
    Outcome,
    ParseResult,
    PayloadError,
    Source,
    UpstreamRequest,
    UpstreamResponse,
    expect,
    for_all,
    json_payload,
    work_meta,
)
from services.fetchers.csl import csl_item

IDCONV = "https://pmc.ncbi.nlm.nih.gov/tools/idconv/api/v1"
BATCH = 200  # the ID converter's limit


class PubMed(Source):
    """PubMed Central citations: PMC articles whose reference lists cite the work."""

    name = "pubmed"
    display_name = "PubMed Central (cited by)"
    group = Group.CITED
    metrics = (MetricSpec("citations", Group.CITED, description="pubmed_pubmed_citedin links"),)
    base_url = "https://eutils.ncbi.nlm.nih.gov/entrez/eutils"
    batch_size = BATCH
    limits = Limits(requests_per_second=3.0, concurrency=1)  # 10 rps with an api_key
    auth = "optional api_key (10 rps instead of 3); tool and email parameters always sent"
    needs = ("doi", "pmid", "pmcid")
    description = "Citations from PubMed Central full texts (PMC-derived; undercounts)."

    def requests(self, works: Sequence[WorkRef], config: SourceConfig) -> list[UpstreamRequest]:
        """ELink for works with a PMID; the ID converter (by DOI, else PMCID) for the rest."""
        calls = []
        with_pmid = [w for w in works if w.pmid]
        if with_pmid:
            pmids = {w.pmid or "": w.work_id for w in with_pmid}
            calls.append(_elink(pmids, with_pmid, _etiquette(config)))
        by_doi = tuple(w for w in works if not w.pmid and w.doi)
        by_pmcid = tuple(w for w in works if not w.pmid and not w.doi and w.pmcid)
        for idtype, group in (("doi", by_doi), ("pmcid", by_pmcid)):
            if group:
                ids = ",".join(str(getattr(w, idtype)) for w in group)
                params = (("ids", ids), ("idtype", idtype), ("format", "json"))
                calls.append(
                    UpstreamRequest(
                        "/articles/",
                        group,
                        params + _etiquette(config),
                        host=IDCONV,
                        step="idconv",
                        context={"idtype": idtype},
                    )
                )
        return calls

    def refused_call(self, request: UpstreamRequest, response: UpstreamResponse) -> str | None:
        """The ID converter's 400 with error code `invalid_pmids` while the call names its
        `idtype`: the converter no longer reads the call as sent (ours to fix), not a refused
        identifier (the converter answers those with a per-record error)."""
        if request.step != "idconv" or not any(k == "idtype" for k, _ in request.params):
            return None
        try:
            payload = json_payload(response)
        except PayloadError:
            return None
        errors = payload.get("errors") if isinstance(payload, dict) else None
        for error in errors if isinstance(errors, list) else []:
            if isinstance(error, dict) and error.get("code") == "invalid_pmids":
                return str(error.get("message") or "invalid_pmids")
        return None

    def parse(self, request: UpstreamRequest, response: UpstreamResponse) -> ParseResult:
        """ID converter records -> an ELink call; ELink linksets -> citation counts."""
        if response.status == 404:  # unknown ids are records/linksets, never a 404
            err = FetchError("http", f"NCBI {request.step} route answered 404", False, 404)
            return ParseResult(for_all(request.works, Failed(err)))
        payload = json_payload(response)
        expect(isinstance(payload, dict), "response is not a JSON object")
        if request.step == "idconv":
            return _after_idconv(request, payload)
        return ParseResult(_citations(request, payload))


def _etiquette(config: SourceConfig) -> tuple[tuple[str, str], ...]:
    params = (("tool", "alm"), ("email", config.contact_email))
    return params + ((("api_key", config.api_key),) if config.api_key else ())


def _elink(
    pmids: dict[str, str], works: Sequence[WorkRef], etiquette: tuple[tuple[str, str], ...]
) -> UpstreamRequest:
    params = [("dbfrom", "pubmed"), ("db", "pubmed"), ("linkname", "pubmed_pubmed_citedin")]
    params += [("id", pmid) for pmid in pmids]
    params += [("retmode", "json"), *etiquette]
    return UpstreamRequest("/elink.fcgi", tuple(works), tuple(params), step="elink", context=pmids)


def _after_idconv(request: UpstreamRequest, payload: dict[str, Any]) -> ParseResult:
    if payload.get("status") != "ok":
        return ParseResult(for_all(request.works, Failed(_error("ID converter", payload))))
    records = payload.get("records")
    if not isinstance(records, list):
        raise PayloadError("ID converter answer without 'records' list")
    idtype = request.context.get("idtype", "doi")
    pmid_of: dict[str, str] = {}
    for record in records:
        expect(isinstance(record, dict), "an ID converter record is not an object")
        requested = str(record.get("requested-id") or record.get(idtype) or "").lower()
        pmid = str(record.get("pmid") or "")
        if requested and pmid.isdigit():
            pmid_of[requested] = pmid
    outcomes: dict[str, Outcome] = {}
    mapped: dict[str, str] = {}
    found: list[WorkRef] = []
    for work in request.works:
        known = pmid_of.get(str(getattr(work, idtype) or "").lower())
        if known is None:
            outcomes[work.work_id] = NotFound("no PMID (the ID converter knows PMC articles)")
        else:
            mapped[known] = work.work_id
            found.append(work)
    if not found:
        return ParseResult(outcomes)
    etiquette = tuple((k, v) for k, v in request.params if k in ("tool", "email", "api_key"))
    return ParseResult(outcomes, (_elink(mapped, found, etiquette),))


def _citations(request: UpstreamRequest, payload: dict[str, Any]) -> dict[str, Outcome]:
    if "ERROR" in payload or "error" in payload:
        return for_all(request.works, Failed(_error("ELink", payload)))
    linksets = payload.get("linksets")
    if not isinstance(linksets, list):
        raise PayloadError("ELink answer without 'linksets' list")
    outcomes: dict[str, Outcome] = {}
    for linkset in linksets:
        expect(isinstance(linkset, dict), "a linkset is not an object")
        ids = linkset.get("ids") or []
        pmid = str(ids[0]) if isinstance(ids, list) and ids else ""
        work_id = request.context.get(pmid)
        if work_id is None:
            continue
        if "ERROR" in linkset:
            outcomes[work_id] = NotFound(str(linkset["ERROR"]))
            continue
        citing = _links(linkset)
        events = tuple(
            SourceEvent(f"pmid:{p}", None, _url(p), csl_item(url=_url(p)) | {"PMID": p})
            for p in citing
        )
        url = f"https://pubmed.ncbi.nlm.nih.gov/?linkname=pubmed_pubmed_citedin&from_uid={pmid}"
        outcomes[work_id] = Found(
            {"citations": len(citing)}, events=events, events_url=url, meta=work_meta(pmid=pmid)
        )
    return outcomes


def _links(linkset: dict[str, Any]) -> list[str]:
    out: list[str] = []
    dbs = linkset.get("linksetdbs") or []
    expect(isinstance(dbs, list), "linksetdbs is not a list")
    for db in dbs:
        expect(isinstance(db, dict), "a linksetdb is not an object")
        if db.get("linkname") != "pubmed_pubmed_citedin":
            continue
        for link in db.get("links") or []:
            value = link.get("id") if isinstance(link, dict) else link
            if str(value).isdigit() and str(value) not in out:
                out.append(str(value))
    return out


def _url(pmid: str) -> str:
    return f"https://pubmed.ncbi.nlm.nih.gov/{pmid}/"


def _error(what: str, payload: dict[str, Any]) -> FetchError:
    detail = payload.get("ERROR") or payload.get("error") or payload.get("errors") or payload
    return FetchError("http", f"NCBI {what} error: {detail}"[:300], retryable=True)
