"""How works look in ALM's API v3 (ALM 2.x to Lagotto 3.8, `/api/v3/articles`): what the OJS
ALM plugin's page script and almviz's embed read (docs/clients.md). Pure functions over the
v5 presenters' pieces, so both versions follow the same history rule.

v3 differs from v5: an article is `{doi, title, url, mendeley, pmid, pmcid, publication_date,
update_date, views, shares, bookmarks, citations}`; a source's `metrics` carries v3's eight keys
(`pdf, html, shares, groups, comments, likes, citations, total`), and so does every history
entry (null where the source reports nothing), because the charts plot `entry[category]`;
`by_day`/`by_month`/`by_year` are null, not empty, when there is nothing to chart, and
`by_day` covers the first 30 days after publication only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from typing import Any, cast

from services.api.present import figures
from services.api.v5_events import v5_event
from services.api.v5_present import SlotRow, SourceView, histories, updated_at
from services.core.aggregation import SourceState
from services.core.catalog import Catalog
from services.core.metrics import Group, slot_values
from services.core.timeutil import to_alm_time
from services.core.works import Work

V3_KEYS = ("pdf", "html", "shares", "groups", "comments", "likes", "citations", "total")
DAYS_OF_BY_DAY = 30  # ALM 2.x charted days for the first month after publication only
INFOS = ("summary", "detail", "event", "history")


def v3_counts(group: Group | None, slots: Mapping[str, Any]) -> dict[str, Any]:
    """v3's eight keys from v5's slots (of a source of `group`): `shares` are Mendeley-style
    readers, `citations` the total of a citing source, `groups` unknown here (null)."""
    cited = group is Group.CITED
    return {
        "pdf": slots.get("pdf"),
        "html": slots.get("html"),
        "shares": slots.get("readers"),
        "groups": None,
        "comments": slots.get("comments"),
        "likes": slots.get("likes"),
        "citations": slots.get("total") if cited else None,
        "total": slots.get("total"),
    }


def _entries(group: Group | None, rows: Sequence[SlotRow]) -> list[dict[str, Any]] | None:
    if not rows:
        return None
    return [{**r.period, **v3_counts(group, {**r.slots, "total": r.total})} for r in rows]


def _first_days(rows: list[SlotRow], issued: date | None) -> list[SlotRow]:
    if issued is None:
        return rows
    last = issued + timedelta(days=DAYS_OF_BY_DAY)
    return [r for r in rows if issued <= _day(r) <= last]


def _day(row: SlotRow) -> date:
    year, month, day = (cast(int, row.period[k]) for k in ("year", "month", "day"))
    return date(year, month, day)


def v3_source(
    catalog: Catalog,
    view: SourceView,
    info: str,
    issued: date | None,
    retrievals: Sequence[Mapping[str, Any]] = (),
) -> dict[str, Any]:
    """One source as `info` asks: `history` the charts and `histories` (`retrievals`,
    v3_histories.py) only, `event` the events only, `detail` all of them, anything else the
    totals."""
    state = view.state
    out: dict[str, Any] = {
        "name": view.name,
        "display_name": catalog.display_name(view.name),
        "events_url": state.events_url if state else None,
        "update_date": to_alm_time(state.retrieved_at) if state and state.retrieved_at else None,
    }
    group = catalog.group(view.name)
    fetched = state is not None and state.retrieved_at is not None
    slots = slot_values(catalog.specs(view.name), state.metrics) if state and fetched else {}
    out["metrics"] = v3_counts(group, slots)
    if info in ("detail", "event"):
        out["events"] = [v5_event(view.name, group, e) for e in view.events or ()]
    if info in ("detail", "history"):
        rows = histories(catalog, view)
        out["histories"] = [dict(r) for r in retrievals]
        out["by_day"] = _entries(group, _first_days(rows["by_day"], issued))
        out["by_month"] = _entries(group, rows["by_month"])
        out["by_year"] = _entries(group, rows["by_year"])
    return out


def v3_article(
    catalog: Catalog,
    work: Work,
    states: Sequence[SourceState],
    views: Sequence[SourceView] | None,
    info: str,
    retrievals: Mapping[str, Sequence[Mapping[str, Any]]] | None = None,
) -> dict[str, Any]:
    """One work as ALM 2.x wrote it; `views` None leaves out `sources` (`info=summary`);
    `retrievals` are each source's `histories`."""
    groups = figures(catalog, states)
    article: dict[str, Any] = {
        "doi": work.doi,
        "title": work.title,
        "url": work.canonical_url,
        "mendeley": None,
        "pmid": work.pmid,
        "pmcid": work.pmcid.removeprefix("PMC") if work.pmcid else None,
        "publication_date": f"{work.issued.isoformat()}T00:00:00Z" if work.issued else None,
        "update_date": updated_at(states),
        "views": groups["viewed"],
        "shares": groups["discussed"],
        "bookmarks": groups["saved"],
        "citations": groups["cited"],
    }
    if views is not None:
        article["sources"] = [
            v3_source(catalog, v, info, work.issued, (retrievals or {}).get(v.name, ()))
            for v in views
        ]
    return article
