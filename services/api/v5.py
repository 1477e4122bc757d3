"""ALM API v5 compatibility (`/api/v5/articles`, `/api/v5/sources`): the shapes that journal
pages, the R `alm`/`rplos` packages and `pyalm` were written against."""

from __future__ import annotations

from datetime import date
from typing import Any

from aiohttp import web

from services.api import publishers, totals
from services.api.errors import NotFound
from services.api.params import choice_param, ids_param, int_param
from services.api.present import counting_total, source_history, specs_of
from services.api.state import CLOCK, STORE
from services.core.aggregation import HistoryPoint, SourceState
from services.core.history import Bucket, Period
from services.core.identifiers import IdType
from services.core.metrics import group_figures, slot_values
from services.core.timeutil import to_iso
from services.core.works import Work
from services.fetchers.registry import SOURCES

MAX_PER_PAGE = 50
RANKED = 1000  # `order` with a publisher filter: that publisher's works among this many top ones


def _v5_rows(
    state: SourceState, points: list[HistoryPoint], period: Period, today: date
) -> list[dict[str, object]]:
    """v5 `by_day`/`by_month`/`by_year`: one row per period with its ALM total, under the
    same history rule as /api/v1/works/{id}/history; an `undated` row (period fields null)
    holds what upstream per-period counts leave undated, so the rows add up to the total."""
    hist = source_history(state, state.source, points, period, today)
    return [_v5_row(state.source, b, period) for b in hist.buckets]


def _v5_row(source: str, bucket: Bucket, period: Period) -> dict[str, object]:
    total = counting_total(source, bucket.counts)
    if bucket.key is None:
        fields = ("year", "month", "day")[: {"year": 1, "month": 2, "day": 3}[period]]
        return {**dict.fromkeys(fields), "undated": True, "total": total}
    return {**bucket.label(), "total": total}


def _source(
    state: SourceState,
    points: list[HistoryPoint],
    today: date,
    detail: bool,
    events: list[dict[str, Any]],
) -> dict[str, Any]:
    plugin = SOURCES.get(state.source)
    out: dict[str, Any] = {
        "name": state.source,
        "display_name": plugin.display_name if plugin else state.source,
        "group_name": plugin.group.value if plugin else None,
        "events_url": state.events_url,
        "metrics": slot_values(specs_of(state.source), state.metrics),
        "by_day": _v5_rows(state, points, "day", today),
        "by_month": _v5_rows(state, points, "month", today),
        "by_year": _v5_rows(state, points, "year", today),
        "update_date": to_iso(state.retrieved_at) if state.retrieved_at else None,
    }
    if detail:
        out["events"] = events
        out["events_csl"] = [e["csl"] for e in events if e.get("csl")]
    return out


async def _article(
    request: web.Request, work: Work, states: list[SourceState], info: str, only: str | None
) -> dict[str, Any]:
    store = request.app[STORE]
    reported = [s for s in states if s.retrieved_at is not None]
    updated = max((s.retrieved_at for s in reported if s.retrieved_at), default=None)
    issued = work.issued
    article: dict[str, Any] = {
        "doi": work.doi,
        "title": work.title,
        "canonical_url": work.canonical_url,
        "pmid": work.pmid,
        "pmcid": work.pmcid.removeprefix("PMC") if work.pmcid else None,
        "issued": {"date-parts": [[issued.year, issued.month, issued.day]]} if issued else None,
        "publisher_id": int(work.publisher_id) if work.publisher_id else None,
        **group_figures((specs_of(s.source), s.metrics) for s in reported),
        "update_date": to_iso(updated) if updated else None,
    }
    if info == "summary":
        return article
    today = request.app[CLOCK]().date()
    history = await store.history(work.work_id, only)
    sources = []
    for state in reported:
        if only and state.source != only:
            continue
        points = [p for p in history if p.source == state.source]
        events = (
            [e.to_dict() for e in await store.events(work.work_id, state.source)]
            if info == "detail"
            else []
        )
        sources.append(_source(state, points, today, info == "detail", events))
    article["sources"] = sources
    return article


async def articles(request: web.Request) -> web.Response:
    """`GET /api/v5/articles?ids=&type=&info=&source_id=&order=&page=&per_page=`."""
    info = choice_param(request, "info", ("", "summary", "detail")) or ""
    only = choice_param(request, "source_id", SOURCES)
    id_type = choice_param(request, "type", [t.value for t in IdType])
    page = int_param(request, "page", 1, 1, 10**9)
    per_page = int_param(request, "per_page", MAX_PER_PAGE, 1, MAX_PER_PAGE)
    store = request.app[STORE]
    works, total = await _select(request, IdType(id_type) if id_type else None, page, per_page)
    states = await store.states_for([w.work_id for w in works])
    data = [await _article(request, w, states[w.work_id], info, only) for w in works]
    return web.json_response(
        {
            "total": total,
            "total_pages": max(1, -(-total // per_page)),
            "page": page,
            "error": None,
            "data": data,
        }
    )


async def _select(
    request: web.Request, id_type: IdType | None, page: int, per_page: int
) -> tuple[list[Work], int]:
    store = request.app[STORE]
    order = choice_param(request, "order", SOURCES)
    member_id = await publishers.publisher_of(request)
    if "ids" in request.query:
        found = []
        for _, ident in ids_param(request, id_type):
            work = await store.find_work(ident)
            if work is not None and member_id in (None, work.publisher_id):
                found.append(work)
        return found[(page - 1) * per_page : page * per_page], len(found)
    if order and member_id is not None:
        return await _ranked_of(request, order, member_id, page, per_page)
    if member_id is not None:
        return await publishers.works_of(request, member_id, page, per_page)
    if order:
        metric = next(s.name for s in SOURCES[order].metrics if s.in_total)
        top = await store.top_works(order, metric, page * per_page)
        picked = await store.get_works([w for w, _ in top[(page - 1) * per_page :]])
        return [
            picked[w] for w, _ in top[(page - 1) * per_page :] if w in picked
        ], await totals.works_total(request)
    works = await store.list_works((page - 1) * per_page, per_page)
    return works, await totals.works_total(request)


async def _ranked_of(
    request: web.Request, order: str, member_id: str, page: int, per_page: int
) -> tuple[list[Work], int]:
    """`order` with a publisher filter: the publisher's works among the source's RANKED top
    works, in their order (a bounded read of the leaderboard, whatever the publisher's size)."""
    store = request.app[STORE]
    metric = next(s.name for s in SOURCES[order].metrics if s.in_total)
    top = await store.top_works(order, metric, RANKED)
    picked = await store.get_works([w for w, _ in top])
    mine = [picked[w] for w, _ in top if w in picked and picked[w].publisher_id == member_id]
    return mine[(page - 1) * per_page : page * per_page], len(mine)


async def sources(request: web.Request) -> web.Response:
    """`GET /api/v5/sources`: every source with its group, state and collection status."""
    rows = await _source_rows(request)
    data = [rows[name] for name in sorted(SOURCES)]
    return web.json_response({"total": len(data), "error": None, "data": data})


async def source(request: web.Request) -> web.Response:
    """`GET /api/v5/sources/{name}`."""
    name = request.match_info["name"]
    if name not in SOURCES:
        raise NotFound(f"no source named {name!r}")
    return web.json_response({"error": None, "data": (await _source_rows(request))[name]})


async def _source_rows(request: web.Request) -> dict[str, dict[str, Any]]:
    store = request.app[STORE]
    summary = await totals.source_summary(request)
    statuses = await store.source_statuses()
    rows = {}
    for name, plugin in SOURCES.items():
        counts = summary.get(name, {"works": 0, "errors": 0})
        status = statuses.get(name)
        paused = status is not None and status.paused
        rows[name] = {
            "name": name,
            "display_name": plugin.display_name,
            "group": plugin.group.value,
            "description": plugin.description,
            "state": "paused" if paused else "active",
            "pause_reason": status.reason if paused and status else None,
            "article_count": counts["works"],
            "error_count": counts["errors"],
        }
    return rows
