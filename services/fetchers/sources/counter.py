"""COUNTER Release 5 usage: the SUSHI Item Report (`/reports/ir`) of the work, by month.

A publisher's own SUSHI server is the upstream (base URL from settings; `customer_id`,
`requestor_id`, `platform`, `begin_date` and `end_date` (yyyy-mm) from `extra`, the API key from
`api_key`). Both JSON shapes are read: R5.0 (`Item_ID` list, `Performance[].Instance[]`) and
R5.1 (`Item_ID` object, `Attribute_Performance[].Performance{metric: {month: n}}`, items nested
under parents). SUSHI Exceptions decide the outcome: 3030 No Usage Available is zero usage.
Only Access_Method Regular usage counts (text and data mining, TDM, is not reading; COUNTER
reports it apart). A metric the report's Metric_Type filter leaves out is not reported (null);
one it includes but omits for the item is zero (R5 leaves out all-zero rows).
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterator, Sequence
from typing import Any

from services.core.events import FetchError, PeriodCount
from services.core.metrics import Group, MetricSpec
from services.core.sources import SourceConfig
from services.core.works import WorkRef
from services.fetchers.base import (
    ConfigError,
    Failed,
    Found,
    Limits,
    NotFound,
    Outcome,
    ParseResult,
    Source,
    UpstreamRequest,
    UpstreamResponse,
    as_count,
    as_list,
    as_object,
    json_payload,
)

METRICS = {  # our metric -> COUNTER R5 Metric_Type
    "investigations": "Total_Item_Investigations",
    "requests": "Total_Item_Requests",
    "unique_investigations": "Unique_Item_Investigations",
    "unique_requests": "Unique_Item_Requests",
}
RETRY_LATER = {1000, 1010, 1011}  # service not available, busy, report queued
CONFIG = {1030, 2000, 2010, 2011, 2020, 3000, 3020}  # request or credentials wrong


def last_full_month(config: SourceConfig) -> str:
    """`yyyy-mm` of the last complete month before the fetcher's date (SUSHI reports months)."""
    if config.today is None:
        raise ConfigError("COUNTER needs extra end_date (yyyy-mm) when no date is known")
    year, month = config.today.year, config.today.month - 1
    if month == 0:
        year, month = year - 1, 12
    return f"{year:04d}-{month:02d}"


class Counter(Source):
    """COUNTER R5: item investigations and requests from the publisher's SUSHI server."""

    name = "counter"
    display_name = "COUNTER"
    group = Group.VIEWED
    metrics = (
        MetricSpec("investigations", Group.VIEWED, description="Total_Item_Investigations"),
        MetricSpec(
            "requests", Group.VIEWED, in_total=False, description="Total_Item_Requests (subset)"
        ),
        MetricSpec("unique_investigations", Group.VIEWED, in_total=False),
        MetricSpec("unique_requests", Group.VIEWED, in_total=False),
    )
    base_url = "https://sushi.invalid/counter/r5"  # no default: set the platform's SUSHI URL
    batch_size = 1  # Item_ID takes one item (support for the filter is optional)
    limits = Limits(requests_per_second=1.0, concurrency=1)
    auth = "customer_id (+ requestor_id, api_key) in the query, from settings"
    description = "COUNTER R5 usage (investigations, requests) from a SUSHI server, by month."

    def missing_config(self, config: SourceConfig) -> str | None:
        """SUSHI needs a customer id (ALM_COUNTER__CUSTOMER_ID)."""
        if not config.extra.get("customer_id"):
            return "COUNTER needs extra customer_id (ALM_COUNTER__CUSTOMER_ID)"
        return None

    def requests(self, works: Sequence[WorkRef], config: SourceConfig) -> list[UpstreamRequest]:
        """`GET /reports/ir?customer_id=...&item_id=DOI&begin_date=...&end_date=...` per work."""
        problem = self.missing_config(config)
        if problem:
            raise ConfigError(problem)
        extra = config.extra
        common = [("customer_id", extra["customer_id"])]
        common += [(k, extra[k]) for k in ("requestor_id", "platform") if extra.get(k)]
        if config.api_key:
            common.append(("api_key", config.api_key))
        common += [
            ("begin_date", extra.get("begin_date", "2019-01")),
            ("end_date", extra.get("end_date") or last_full_month(config)),
            ("metric_type", "|".join(METRICS.values())),
        ]
        return [
            UpstreamRequest("/reports/ir", (w,), (*common, ("item_id", w.doi or ""))) for w in works
        ]

    def parse(self, request: UpstreamRequest, response: UpstreamResponse) -> ParseResult:
        """Monthly counts of the items with the work's DOI; Exceptions decide the rest."""
        work = request.works[0]
        if response.status == 404:  # an unknown path: this server has no Item Report
            err = FetchError("config", "SUSHI server has no /reports/ir", False, 404)
            return ParseResult({work.work_id: Failed(err)})
        payload = json_payload(response)
        if isinstance(payload, list) or (isinstance(payload, dict) and "Code" in payload):
            bare = payload if isinstance(payload, list) else [payload]  # Exceptions, no report
            exceptions = [as_object(e, "an exception") for e in bare]
            return ParseResult({work.work_id: _from_exceptions(exceptions) or _no_report()})
        report = as_object(payload, "response")
        header = as_object(report.get("Report_Header", {}), "Report_Header")
        listed = as_list(header.get("Exceptions") or [], "Report_Header Exceptions")
        exceptions = [as_object(e, "an exception") for e in listed]
        blocking = _from_exceptions(exceptions)
        if isinstance(blocking, Failed):
            return ParseResult({work.work_id: blocking})
        usage: Tally[tuple[str, str]] = Tally()
        for metric, month, count in _usage(
            as_list(report.get("Report_Items") or [], "items"), work
        ):
            usage[metric, month] += count
        if not usage and any(e.get("Code") == 3031 for e in exceptions):
            err = FetchError("http", "SUSHI exception 3031: Usage Not Ready for Requested Dates")
            return ParseResult({work.work_id: Failed(err)})
        if not usage:
            return ParseResult({work.work_id: NotFound("no usage reported for the item")})
        shown = _filtered_metrics(header)
        totals: dict[str, int | None] = {
            m: sum(n for (metric, _), n in usage.items() if metric == m)
            if shown is None or METRICS[m] in shown
            else None
            for m in METRICS
        }
        periods = tuple(PeriodCount(m, month, n) for (m, month), n in sorted(usage.items()))
        return ParseResult({work.work_id: Found(totals, periods)})


def _no_report() -> Failed:
    return Failed(FetchError("parse", "SUSHI answered an Exception without a report"))


def _from_exceptions(exceptions: list[dict[str, Any]]) -> Outcome | None:
    """The outcome Exceptions force: Failed, NotFound (3030), or None (warnings only)."""
    for exc in exceptions:
        code = as_count(exc.get("Code") or 0, "an exception's Code")
        text = f"SUSHI exception {code}: {exc.get('Message', '')} {exc.get('Data', '')}".strip()
        if code in RETRY_LATER:
            return Failed(FetchError("http", text[:300], retryable=True))
        if code == 1020:
            return Failed(FetchError("rate_limited", text[:300], retryable=True))
        if code in CONFIG:
            return Failed(FetchError("config", text[:300], retryable=False))
        if code == 3030:
            return NotFound(text[:300])
    return None


def _filtered_metrics(header: dict[str, Any]) -> set[str] | None:
    """The Metric_Types the report was limited to (R5.1 object or R5.0 list filters), or None."""
    filters = header.get("Report_Filters")
    value: Any = None
    if isinstance(filters, dict):  # R5.1
        value = filters.get("Metric_Type")
    elif isinstance(filters, list):  # R5.0: [{"Name": "Metric_Type", "Value": "A|B"}]
        value = next(
            (
                f.get("Value")
                for f in filters
                if isinstance(f, dict) and f.get("Name") == "Metric_Type"
            ),
            None,
        )
    if isinstance(value, str):
        value = value.split("|")
    if not isinstance(value, list) or not value:
        return None
    return {str(v).strip() for v in value}


def _regular(access_method: Any) -> bool:
    """Whether usage with this Access_Method is reading (Regular, or not stated), not TDM."""
    return access_method is None or str(access_method) == "Regular"


def _usage(items: list[Any], work: WorkRef) -> Iterator[tuple[str, str, int]]:
    """Monthly counts of every item (or nested item) carrying the work's DOI."""
    wanted = {v: k for k, v in METRICS.items()}
    for raw in items:
        item = as_object(raw, "a report item")
        if isinstance(item.get("Items"), list):  # R5.1 with parent details
            yield from _usage(item["Items"], work)
        mine = item_doi(item.get("Item_ID")) == (work.doi or "")
        if not mine or not _regular(item.get("Access_Method")):
            continue
        yield from _r50_usage(item, wanted)
        for group in item.get("Attribute_Performance") or []:  # R5.1
            attributes = as_object(group, "Attribute_Performance")
            if not _regular(attributes.get("Access_Method")):
                continue
            performance = as_object(attributes.get("Performance"), "Performance")
            for name, months in performance.items():
                metric = wanted.get(name)
                for month, count in (as_object(months, name) if metric else {}).items():
                    yield metric or "", str(month)[:7], as_count(count, name)


def _r50_usage(item: dict[str, Any], wanted: dict[str, str]) -> Iterator[tuple[str, str, int]]:
    """Monthly counts of an R5.0 item (`Performance[].Period/Instance[]`)."""
    for perf in item.get("Performance") or []:
        month = str(as_object(perf, "Performance").get("Period", {}).get("Begin_Date", ""))[:7]
        for inst in perf.get("Instance") or []:
            metric = wanted.get(str(inst.get("Metric_Type")))
            if metric and len(month) == 7:
                yield metric, month, as_count(inst.get("Count"), "Count")


def item_doi(item_id: Any) -> str:
    """The DOI of a report item's Item_ID (R5.1 object or R5.0 list), lower-case; "" if none."""
    if isinstance(item_id, dict):  # R5.1
        return str(item_id.get("DOI") or "").lower()
    for entry in item_id if isinstance(item_id, list) else []:  # R5.0
        if isinstance(entry, dict) and entry.get("Type") == "DOI":
            return str(entry.get("Value") or "").lower()
    return ""
