"""Hypothes.is: public annotations on the work (matched by its DOI URL).

`GET /search?uri=https://doi.org/{doi}&limit=200` answers `{"total": N, "rows": [...]}`; the
service also matches URIs it knows to be equivalent (landing page, PDF fingerprint). `total`
is the count. Rows are listed 200 a page asked, but paged by the rows each answer served (the
next `offset` is this one plus the rows received, so a server that serves fewer rows than asked
is never skipped past); at most MAX_PAGES pages are listed, and a page after the first is an
optional call (when it fails, the count stands). Errors come as
`{"status": "failure", "reason": ...}`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from services.core.events import FetchError, SourceEvent
from services.core.metrics import Group, MetricSpec, Slot
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
    json_payload,
)
from services.fetchers.csl import csl_item

LIMIT = 200
MAX_OFFSET = 9_800  # the search API refuses larger offsets
MAX_PAGES = 10  # more annotations than these pages hold are counted, not listed


class Hypothesis(Source):
    """Hypothes.is: public web annotations of the work."""

    name = "hypothesis"
    display_name = "Hypothes.is"
    group = Group.DISCUSSED
    metrics = (
        MetricSpec("annotations", Group.DISCUSSED, Slot.COMMENTS, description="search total"),
    )
    base_url = "https://api.hypothes.is/api"
    batch_size = 1
    limits = Limits(requests_per_second=2.0, concurrency=2)  # limits not documented
    auth = "none for public annotations; api_key (Bearer) to include private groups"
    description = "Public Hypothes.is annotations on the work's DOI URL."

    def requests(self, works: Sequence[WorkRef], config: SourceConfig) -> list[UpstreamRequest]:
        """`GET /search?uri=https://doi.org/{doi}&limit=200` per work."""
        headers = (("Authorization", f"Bearer {config.api_key}"),) if config.api_key else ()
        return [_search(w, 0, headers, 1) for w in works]

    def parse(self, request: UpstreamRequest, response: UpstreamResponse) -> ParseResult:
        """`total` and an event per row; rows left after those served ask for the next page."""
        work = request.works[0]
        payload = as_object(json_payload(response), "response")
        if payload.get("status") == "failure":
            err = FetchError("http", f"Hypothesis failure: {payload.get('reason')}"[:300])
            return ParseResult({work.work_id: Failed(err)})
        total = as_count(payload.get("total"), "total")
        rows = as_list(payload.get("rows"), "rows")
        if total == 0:
            return ParseResult({work.work_id: NotFound("no annotations")})
        events = tuple(_event(as_object(row, "a row")) for row in rows)
        offset = int(dict(request.params).get("offset", "0")) + len(rows)  # what was served
        page = int(request.context.get("page", "1"))
        more: tuple[UpstreamRequest, ...] = ()
        if rows and offset < total and offset <= MAX_OFFSET and page < MAX_PAGES:
            more = (_search(work, offset, request.headers, page + 1),)
        uri = quote(f"https://doi.org/{work.doi}", safe="")
        url = f"https://hyp.is/go?url={uri}"  # opens the work with its annotations
        return ParseResult({work.work_id: Found({"annotations": total}, (), events, url)}, more)


def _search(
    work: WorkRef, offset: int, headers: tuple[tuple[str, str], ...], page: int
) -> UpstreamRequest:
    """Page `page` of the work's annotations, from `offset`; a later page is optional."""
    params = (
        ("uri", f"https://doi.org/{work.doi}"),
        ("limit", str(LIMIT)),
        ("offset", str(offset)),
        ("sort", "created"),
        ("order", "asc"),
    )
    return UpstreamRequest(
        "/search",
        (work,),
        params,
        headers=headers,
        optional=page > 1,
        context={"page": str(page)},
    )


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def _event(row: dict[str, Any]) -> SourceEvent:
    expect("id" in row, "an annotation without id")
    links = row.get("links") if isinstance(row.get("links"), dict) else {}
    url = next((u for u in ((links or {}).get(k) for k in ("html", "incontext")) if _text(u)), None)
    info = row.get("user_info") if isinstance(row.get("user_info"), dict) else {}
    name, account = (info or {}).get("display_name"), row.get("user")
    user = name if _text(name) else str(account).removeprefix("acct:") if _text(account) else ""
    when = row.get("created") if _text(row.get("created")) else None
    text = str(row.get("text") or "")
    csl = csl_item(
        title=text[:120] or None,
        authors=[user] if user else [],
        container="Hypothes.is",
        issued=when,
        url=url,
        kind="post",
    )
    return SourceEvent(f"hypothesis:{row['id']}", str(when) if when else None, url, csl)
