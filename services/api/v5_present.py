"""How works look in ALM's API v5 (`/api/v5/articles`, Lagotto 3.x-4.x): pure functions from
stored state to the JSON that pyalm, rOpenSci `alm` and almviz read (docs/clients.md).

History rows follow the one history rule (services/core/history.py) through `source_history`,
with two constraints of these clients: `by_year` is the per-year sum of `by_month` whenever
months exist (Lagotto's rule, which the issue asks for: an upstream's yearly counts show in
`by_year` only where no month is known; /api/v1/works/{id}/history keeps them), and the
`undated` remainder a v1 history shows is left out, because every v5/v3 client turns
`year`/`month`/`day` of each row into a date and fails on nulls.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from services.api.present import counting_total, figures, updated
from services.api.v5_events import v5_event
from services.core.aggregation import HistoryPoint, SourceState
from services.core.catalog import Catalog
from services.core.events import SourceEvent
from services.core.history import Bucket, History, Period
from services.core.metrics import SLOT_NAMES, MetricSpec, slot_values
from services.core.timeutil import to_alm_time
from services.core.works import Work

WORK_IDS = ("mendeley_uuid", "scp", "wos", "ark")  # identifiers ALM had and this store has not
_UNFETCHED = (*SLOT_NAMES, "total")  # the metrics of a source not fetched yet: all null


@dataclass(frozen=True, slots=True)
class SourceView:
    """What one source knows of one work: its state (None: never fetched), its history by
    period, its events (None unless `info=detail`) and the daily snapshots its history was
    built from (v3's `histories` list them)."""

    name: str
    state: SourceState | None
    history: Mapping[Period, History]
    events: Sequence[SourceEvent] | None = None
    snapshots: Sequence[HistoryPoint] = ()


def work_pid(work: Work) -> str:
    """ALM's `id`: the work's persistent identifier as a URL (Lagotto 4), never null."""
    if work.doi:
        return f"https://doi.org/{work.doi}"
    if work.pmid:
        return f"https://pubmed.ncbi.nlm.nih.gov/{work.pmid}"
    if work.pmcid:
        return f"https://www.ncbi.nlm.nih.gov/pmc/articles/{work.pmcid}"
    return work.work_id


def issued_parts(work: Work) -> dict[str, list[list[int]]] | None:
    """CSL `issued`: `{"date-parts": [[year, month, day]]}`, None when the date is unknown."""
    if work.issued is None:
        return None
    return {"date-parts": [[work.issued.year, work.issued.month, work.issued.day]]}


def updated_at(states: Sequence[SourceState]) -> str | None:
    """The latest retrieval over a work's sources, in ALM's timestamp form."""
    latest = updated(states)
    return to_alm_time(latest) if latest else None


@dataclass(frozen=True, slots=True)
class SlotRow:
    """A v5 `by_day`/`by_month`/`by_year` row (Lagotto 4 form): the period, the ALM slots the
    source reports in it (in the order they first appear), and `total`."""

    period: Mapping[str, object]
    slots: Mapping[str, int]
    total: int

    def to_dict(self) -> dict[str, Any]:
        """The row as the clients read it."""
        return {**self.period, **self.slots, "total": self.total}


def slot_row(specs: Sequence[MetricSpec], bucket: Bucket) -> SlotRow:
    """The v5 row of one dated history bucket of a source with `specs`: its slots and ALM
    total (present.counted's)."""
    slots = slot_values(specs, bucket.counts)
    shown = {k: v for k, v in slots.items() if k != "total" and v is not None}
    return SlotRow(bucket.label(), shown, counting_total(specs, bucket.counts))


def v5_source(catalog: Catalog, view: SourceView, detail: bool) -> dict[str, Any]:
    """One source of one work; a source not fetched yet has every slot null and no history."""
    state = view.state
    group = catalog.group(view.name)
    fetched = state is not None and state.retrieved_at is not None
    out: dict[str, Any] = {
        "name": view.name,
        "display_name": catalog.display_name(view.name),
        "group_name": group.value if group else None,
        "events_url": state.events_url if state else None,
        "metrics": (
            slot_values(catalog.specs(view.name), state.metrics)
            if state is not None and fetched
            else dict.fromkeys(_UNFETCHED)
        ),
        **{k: [r.to_dict() for r in rows] for k, rows in histories(catalog, view).items()},
        "update_date": (
            to_alm_time(state.retrieved_at) if state is not None and state.retrieved_at else None
        ),
    }
    if detail:
        events = [v5_event(view.name, group, e) for e in view.events or ()]
        out["events"] = events
        out["events_csl"] = [e["event_csl"] for e in events if e["event_csl"]]
    return out


def histories(catalog: Catalog, view: SourceView) -> dict[str, list[SlotRow]]:
    """`by_day`, `by_month` and `by_year`, years summed from the months where months exist."""
    months = _rows(catalog, view, "month")
    return {
        "by_day": _rows(catalog, view, "day"),
        "by_month": months,
        "by_year": years_of(months) if months else _rows(catalog, view, "year"),
    }


def years_of(months: Sequence[SlotRow]) -> list[SlotRow]:
    """Per-year sums of month rows (each slot and the total)."""
    slots: dict[int, dict[str, int]] = {}
    totals: dict[int, int] = {}
    for row in months:
        year = cast(int, row.period["year"])
        summed = slots.setdefault(year, {})
        for key, value in row.slots.items():
            summed[key] = summed.get(key, 0) + value
        totals[year] = totals.get(year, 0) + row.total
    return [SlotRow({"year": y}, slots[y], totals[y]) for y in sorted(slots)]


def _rows(catalog: Catalog, view: SourceView, period: Period) -> list[SlotRow]:
    hist = view.history.get(period)
    if hist is None:
        return []
    specs = catalog.specs(view.name)
    return [slot_row(specs, b) for b in hist.buckets if b.key is not None]


def v5_article(
    catalog: Catalog,
    work: Work,
    states: Sequence[SourceState],
    views: Sequence[SourceView] | None,
    detail: bool,
) -> dict[str, Any]:
    """One work in Lagotto's key order; `views` None (`info=summary`) leaves out `sources`."""
    article: dict[str, Any] = {
        "id": work_pid(work),
        "title": work.title,
        "issued": issued_parts(work),
        "publisher_id": int(work.publisher_id) if work.publisher_id else None,
        "doi": work.doi,
        "canonical_url": work.canonical_url,
        "pmid": work.pmid,
        "pmcid": work.pmcid.removeprefix("PMC") if work.pmcid else None,
        **dict.fromkeys(WORK_IDS),
        **figures(catalog, states),
        "update_date": updated_at(states),
    }
    if views is not None:
        article["sources"] = [v5_source(catalog, v, detail) for v in views]
    return article


def envelope(data: list[dict[str, Any]], total: int, page: int, per_page: int) -> dict[str, Any]:
    """ALM's v5 envelope: an empty result is page 0 of 0 pages, as Lagotto answered."""
    if total == 0:
        return {"total": 0, "total_pages": 0, "page": 0, "error": None, "data": data}
    pages = -(-total // per_page)
    return {"total": total, "total_pages": pages, "page": page, "error": None, "data": data}
