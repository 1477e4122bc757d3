"""Europe PMC REST: citation counts (`citedByCount`) found by searching for the DOI, and the
citing articles as events (`/{source}/{id}/citations`, a follow-up step). The list is asked for
1,000 a page, but paged by what each answer says it served (`request.pageSize`, else the rows
received): a server that serves fewer rows a page (the old route served 25) is asked for its next
page at that size, never skipped past. At most MAX_PAGES pages are listed; the count stands for
the rest (the history shows them as not dated).

Europe PMC reports some errors inside HTTP 200 (`errCode`/`errMsg`) and answers maintenance
with a text/plain 503; a search with no hit means Europe PMC does not know the work. Its
endpoints fail independently: a failed citation list leaves the count standing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from services.core.events import FetchError, PeriodCount, SourceEvent
from services.core.metrics import Group, MetricSpec
from services.core.sources import SourceConfig
from services.core.works import WorkRef
from services.fetchers.base import (
    Failed,
    Found,
    Limits,
    NotFound,
    ParseResult,
    Source,
    UpstreamRequest,
    UpstreamResponse,
    as_count,
    as_list,
    as_object,
    expect,
    for_all,
    json_payload,
    work_meta,
)
from services.fetchers.csl import csl_item, year_periods

PAGE = 1000  # the citations endpoint's largest pageSize
MAX_PAGES = 10  # more citing articles than this are counted, not listed


class EuropePmc(Source):
    """Europe PMC: citations from the Europe PMC literature database."""

    name = "europepmc"
    display_name = "Europe PMC"
    group = Group.CITED
    metrics = (MetricSpec("citations", Group.CITED, description="citedByCount"),)
    base_url = "https://www.ebi.ac.uk/europepmc/webservices/rest"
    batch_size = 1
    limits = Limits(requests_per_second=10.0, concurrency=2)
    auth = "none (email parameter recommended)"
    description = "Citations counted by Europe PMC (life-science literature)."

    def requests(self, works: Sequence[WorkRef], config: SourceConfig) -> list[UpstreamRequest]:
        """`GET /search?query=DOI:"..."&format=json&resultType=lite` per work."""
        return [
            UpstreamRequest(
                "/search",
                (w,),
                (
                    ("query", f'DOI:"{w.doi}"'),
                    ("format", "json"),
                    ("resultType", "lite"),
                    ("pageSize", "25"),
                    ("email", config.contact_email),
                ),
            )
            for w in works
        ]

    def parse(self, request: UpstreamRequest, response: UpstreamResponse) -> ParseResult:
        """`citedByCount` of the hit whose DOI matches; errors inside 200 are failures."""
        work = request.works[0]
        if response.status == 404:
            return ParseResult({work.work_id: NotFound("no such resource")})
        payload = json_payload(response)
        expect(isinstance(payload, dict), "response is not a JSON object")
        if "errCode" in payload:  # an error inside HTTP 200
            err = FetchError(
                "http",
                f"Europe PMC error {payload['errCode']}: {payload.get('errMsg')}",
                retryable=True,
                http_status=int(payload["errCode"]),
            )
            return ParseResult(for_all(request.works, Failed(err)))
        if request.step == "citations":
            return _citation_page(request, payload)
        result_list = payload.get("resultList")
        expect(isinstance(result_list, dict), "no 'resultList' object")
        hits = result_list.get("result")
        expect(isinstance(hits, list), "'resultList.result' is not a list")
        match = next(
            (h for h in hits if isinstance(h, dict) and str(h.get("doi", "")).lower() == work.doi),
            None,
        )
        if match is None:
            return ParseResult({work.work_id: NotFound("no hit for the DOI")})
        count = as_count(match.get("citedByCount", 0), "citedByCount")
        url = _events_url(match)
        meta = work_meta(
            title=match.get("title"),
            issued=match.get("firstPublicationDate"),
            pmid=match.get("pmid"),
            pmcid=match.get("pmcid"),
        )
        found = Found({"citations": count}, events_url=url, meta=meta)
        more: tuple[UpstreamRequest, ...] = ()
        if count and match.get("source") and match.get("id"):
            more = (_citations_call(work, str(match["source"]), str(match["id"]), 1),)
        return ParseResult({work.work_id: found}, more)

    def complete(self, found: Found) -> Found:
        """Citations per year summed over the pages of the citation list."""
        years: dict[str, int] = {}
        for p in found.periods:
            years[p.period] = years.get(p.period, 0) + p.count
        periods = tuple(PeriodCount("citations", y, n) for y, n in sorted(years.items()))
        return replace(found, periods=periods)


def _citations_call(
    work: WorkRef, src: str, ident: str, page: int, size: int = PAGE
) -> UpstreamRequest:
    params = (("page", str(page)), ("pageSize", str(size)), ("format", "json"))
    return UpstreamRequest(
        f"/{src}/{ident}/citations",
        (work,),
        params,
        step="citations",
        optional=True,
        context={"source": src, "id": ident, "page": str(page)},
    )


def _citation_page(request: UpstreamRequest, payload: dict[str, Any]) -> ParseResult:
    work = request.works[0]
    rows = as_list(
        as_object(payload.get("citationList"), "citationList").get("citation") or [],
        "citationList.citation",
    )
    events = tuple(_citer(as_object(r, "a citation")) for r in rows)
    periods = year_periods("citations", (e.event_time for e in events))
    page = int(request.context["page"])
    size, offset = _served(request, payload, len(rows))
    more: tuple[UpstreamRequest, ...] = ()
    hit_count = as_count(payload.get("hitCount", 0), "hitCount")
    if rows and offset + len(rows) < hit_count and page < MAX_PAGES:
        src, ident = request.context["source"], request.context["id"]
        more = (_citations_call(work, src, ident, page + 1, size),)
    return ParseResult({work.work_id: Found({}, periods, events)}, more)


def _served(request: UpstreamRequest, payload: dict[str, Any], received: int) -> tuple[int, int]:
    """The page size this answer used and the offset of its first row.

    The answer's `request` echo says what the server did (`pageSize`, and `offSet` on the
    current route); without an echo, the rows received are the page size. What was asked does
    not count: the old route ignored pageSize and served 25 rows a page.
    """
    raw_echo = payload.get("request")
    echo: dict[str, Any] = raw_echo if isinstance(raw_echo, dict) else {}
    size, offset = echo.get("pageSize"), echo.get("offSet")
    served = size if isinstance(size, int) and size >= received and size > 0 else received
    page = int(request.context["page"])
    start = offset if isinstance(offset, int) and offset >= 0 else (page - 1) * served
    return max(served, 1), start


def _citer(row: dict[str, Any]) -> SourceEvent:
    src, ident = row.get("source"), row.get("id")
    expect(bool(src and ident), "a citation without source and id")
    url = f"https://europepmc.org/article/{src}/{ident}"
    authors = [a.strip().rstrip(".") for a in str(row.get("authorString") or "").split(",")]
    year = str(row.get("pubYear") or "") or None
    csl = csl_item(
        title=row.get("title"),
        authors=authors,
        issued=year,
        url=url,
        container=row.get("journalAbbreviation") or row.get("journalTitle"),
    )
    return SourceEvent(f"{src}:{ident}", year, url, csl)


def _events_url(hit: dict[str, Any]) -> str | None:
    if hit.get("source") and hit.get("id"):
        return f"https://europepmc.org/search?query=CITES%3A{hit['id']}_{hit['source']}"
    return None
