"""DataCite REST API: usage (views, downloads) and citations of DataCite DOIs, with their
monthly/yearly histories.

`GET /dois/{doi}` (JSON:API). Crossref and other agencies' DOIs answer 404 here, which means the
work has no DataCite record. `citationsOverTime[].year` is a string; `viewsOverTime` and
`downloadsOverTime` are per `yearMonth`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from services.core.events import PeriodCount
from services.core.metrics import Group, MetricSpec, Slot
from services.core.sources import SourceConfig
from services.core.works import WorkRef
from services.fetchers.base import (
    Found,
    Limits,
    NotFound,
    ParseResult,
    Source,
    UpstreamRequest,
    UpstreamResponse,
    as_count,
    encode_path,
    expect,
    json_payload,
    work_meta,
)

# metric -> (total attribute, history attribute, period key)
_FIELDS = {
    "views": ("viewCount", "viewsOverTime", "yearMonth"),
    "downloads": ("downloadCount", "downloadsOverTime", "yearMonth"),
    "citations": ("citationCount", "citationsOverTime", "year"),
}


class DataCite(Source):
    """DataCite: views, downloads and citations of datasets, software and other outputs."""

    name = "datacite"
    display_name = "DataCite"
    group = Group.VIEWED  # its own figures are usage; its citations count in `cited`
    metrics = (
        MetricSpec("views", Group.VIEWED, Slot.HTML, description="viewCount (landing page)"),
        MetricSpec("downloads", Group.VIEWED, Slot.PDF, description="downloadCount"),
        MetricSpec("citations", Group.CITED, description="citationCount"),
    )
    base_url = "https://api.datacite.org"
    batch_size = 1
    limits = Limits(requests_per_second=3.0, concurrency=2)  # ~1,000 calls / 5 min identified
    auth = "none (a mailto in the User-Agent raises the rate tier)"
    events_url_template = "https://commons.datacite.org/doi.org/{doi}"
    description = "Usage (COUNTER for research data) and citations of DataCite DOIs."

    def requests(self, works: Sequence[WorkRef], config: SourceConfig) -> list[UpstreamRequest]:
        """`GET /dois/{doi}` per work."""
        return [UpstreamRequest(f"/dois/{encode_path(w.doi or '')}", (w,)) for w in works]

    def parse(self, request: UpstreamRequest, response: UpstreamResponse) -> ParseResult:
        """Counts and histories from `data.attributes`; 404 is not a DataCite DOI."""
        work = request.works[0]
        if response.status == 404:
            return ParseResult({work.work_id: NotFound("not a DataCite DOI")})
        payload = json_payload(response)
        expect(isinstance(payload, dict), "response is not a JSON object")
        data = payload.get("data")
        expect(isinstance(data, dict), "no 'data' object")
        attributes = data.get("attributes")
        expect(isinstance(attributes, dict), "no 'data.attributes' object")
        metrics = {m: as_count(attributes.get(f[0], 0), f[0]) for m, f in _FIELDS.items()}
        periods = tuple(p for m, f in _FIELDS.items() for p in _history(m, attributes, *f[1:]))
        titles = attributes.get("titles")
        title = titles[0].get("title") if isinstance(titles, list) and titles else None
        meta = work_meta(
            title=title,
            issued=attributes.get("published") or attributes.get("publicationYear"),
            publisher=attributes.get("publisher")
            if isinstance(attributes.get("publisher"), str)
            else None,
            canonical_url=attributes.get("url"),
        )
        found = Found(metrics, periods, events_url=self.events_url(work), meta=meta)
        return ParseResult({work.work_id: found})


def _history(metric: str, attributes: dict[str, Any], field: str, key: str) -> list[PeriodCount]:
    rows = attributes.get(field) or []
    expect(isinstance(rows, list), f"{field} is not a list")
    out = []
    for row in rows:
        expect(isinstance(row, dict), f"{field} row is not an object")
        period = str(row.get(key) or "")
        shape_ok = period[:4].isdigit() and len(period) in (4, 7)
        expect(shape_ok, f"{field} row has no usable {key}: {row!r}")
        out.append(PeriodCount(metric, period, as_count(row.get("total"), f"{field}.total")))
    return out
