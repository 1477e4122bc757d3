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
from typing import Any

from services.api.present import specs_of
from services.api.v5_events import v5_event
from services.api.v5_present import SourceView, figures, histories, updated_at
from services.core.aggregation import SourceState
from services.core.metrics import Group, slot_values
from services.core.timeutil import to_alm_time
from services.core.works import Work
from services.fetchers.registry import SOURCES

V3_KEYS = ("pdf", "html", "shares", "groups", "comments", "likes", "citations", "total")
DAYS_OF_BY_DAY = 30  # ALM 2.x charted days for the first month after publication only
INFOS = ("summary", "detail", "event", "history")


def v3_counts(source: str, slots: Mapping[str, Any]) -> dict[str, Any]:
    """v3's eight keys from v5's slots: `shares` are Mendeley-style readers, `citations` the
    total of a citing source, `groups` unknown here (null)."""
    plugin = SOURCES.get(source)
    cited = plugin is not None and plugin.group is Group.CITED
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


def _entries(source: str, rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]] | None:
    if not rows:
        return None
    period = ("year", "month", "day")
    return [{**{k: r[k] for k in period if k in r}, **v3_counts(source, r)} for r in rows]


def _first_days(rows: list[dict[str, Any]], issued: date | None) -> list[dict[str, Any]]:
    if issued is None:
        return rows
    last = issued + timedelta(days=DAYS_OF_BY_DAY)
    return [r for r in rows if issued <= date(r["year"], r["month"], r["day"]) <= last]


def v3_source(view: SourceView, info: str, issued: date | None) -> dict[str, Any]:
    """One source as `info` asks: `history` the charts only, `event` the events only,
    `detail` both, anything else the totals."""
    state = view.state
    out: dict[str, Any] = {
        "name": view.name,
        "display_name": SOURCES[view.name].display_name if view.name in SOURCES else view.name,
        "events_url": state.events_url if state else None,
        "update_date": to_alm_time(state.retrieved_at) if state and state.retrieved_at else None,
    }
    fetched = state is not None and state.retrieved_at is not None
    slots = slot_values(specs_of(view.name), state.metrics) if state and fetched else {}
    out["metrics"] = v3_counts(view.name, slots)
    if info in ("detail", "event"):
        out["events"] = [v5_event(view.name, e) for e in view.events or ()]
    if info in ("detail", "history"):
        rows = histories(view)
        out["by_day"] = _entries(view.name, _first_days(rows["by_day"], issued))
        out["by_month"] = _entries(view.name, rows["by_month"])
        out["by_year"] = _entries(view.name, rows["by_year"])
    return out


def v3_article(
    work: Work, states: Sequence[SourceState], views: Sequence[SourceView] | None, info: str
) -> dict[str, Any]:
    """One work as ALM 2.x wrote it; `views` None leaves out `sources` (`info=summary`)."""
    groups = figures(states)
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
        article["sources"] = [v3_source(v, info, work.issued) for v in views]
    return article
