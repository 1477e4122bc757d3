"""ALM API v5 compatibility (`/api/v5/articles`, `/api/v5/sources`): the shapes that journal
pages, the R `alm`/`rplos` packages and `pyalm` were written against (docs/clients.md)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from services.api import publishers
from services.api.errors import NotFound
from services.api.lookup import find_named, source_views
from services.api.params import ids_param, int_param, lenient_choice, lenient_int, query_of
from services.api.state import CATALOG, STORE, TOTALS
from services.api.v5_present import envelope, v5_article
from services.core.aggregation import SourceState
from services.core.identifiers import IdType
from services.core.works import Work

MAX_PER_PAGE = 50
PARAMETERS = (  # of /api/v5/articles, also as form fields of its POST
    *("ids", "type", "info", "source_id", "source", "order", "page", "per_page"),
    *("publisher_id", "publisher", "api_key", "callback"),
)
SELECTED_MAX = 100_000  # works listed by `source_id` without `ids` (those with a count > 0)
RANKED = 1000  # `order` with a publisher filter: that publisher's works among this many top ones


async def articles(request: web.Request) -> web.Response:
    """`GET /api/v5/articles?ids=&type=&info=&source_id=&order=&page=&per_page=`, lenient as
    Lagotto was where clients rely on it (docs/clients.md): an unknown `type` reads ids as
    DOIs, an unknown `info` is the default, `per_page` outside 1-50 is 50, an unknown `order`
    is the default order, and an unknown `source_id` selects as if absent but lists no
    sources."""
    query = query_of(request)
    info = query.get("info", "")
    catalog = request.app[CATALOG]
    named = query.get("source_id") or query.get("source")  # `source` until Lagotto 3.9
    only = named if named in catalog else None
    id_type = lenient_choice(query.get("type"), [t.value for t in IdType], "doi") or "doi"
    order = lenient_choice(query.get("order"), catalog, None)
    page = int_param(request, "page", 1, 1, 10**9)
    per_page = lenient_int(query.get("per_page"), MAX_PER_PAGE, 1, MAX_PER_PAGE)
    member_id = await publishers.publisher_of(request)
    store = request.app[STORE]
    if "ids" in query:
        works, total = await _by_ids(request, IdType(id_type), order, member_id, page, per_page)
    elif only:
        works, total = await _with_counts(request, only, member_id, page, per_page)
    elif member_id is not None and order:
        works, total = await _ranked_of(request, order, member_id, page, per_page)
    elif member_id is not None:
        works, total = await publishers.works_of(request, member_id, page, per_page)
    else:
        works, total = await _listed(request, order, page, per_page)
    states = await store.states_for([w.work_id for w in works])
    listed = (only,) if only else () if named else tuple(catalog)
    data = []
    for work in works:
        mine = states.get(work.work_id, [])
        views = (
            None
            if info == "summary"
            else await source_views(request, work, mine, listed, info == "detail")
        )
        data.append(v5_article(catalog, work, mine, views, info == "detail"))
    return web.json_response(envelope(data, total, page, per_page))


async def _by_ids(
    request: web.Request,
    id_type: IdType,
    order: str | None,
    member_id: str | None,
    page: int,
    per_page: int,
) -> tuple[list[Work], int]:
    """The known works among `ids` (the publisher's, with a publisher filter), newest first
    (or by `order`'s count, highest first)."""
    store = request.app[STORE]
    named = await find_named(
        request.app[STORE], [ident for _, ident in ids_param(request, id_type)]
    )
    works = sorted((w for w in named if member_id in (None, w.publisher_id)), key=_newest_first)
    if order:
        states = await store.states_for([w.work_id for w in works])
        metric = request.app[CATALOG][order].counting_metric
        works.sort(key=lambda w: -_count(states.get(w.work_id, []), order, metric))
    return works[(page - 1) * per_page : page * per_page], len(works)


def _newest_first(work: Work) -> tuple[bool, int, str]:
    """Publication date descending, undated works last, then by work id."""
    return (work.issued is None, -(work.issued.toordinal() if work.issued else 0), work.work_id)


def _count(states: list[SourceState], source: str, metric: str) -> int:
    return next((s.metrics.get(metric, 0) for s in states if s.source == source), 0)


async def _with_counts(
    request: web.Request, source: str, member_id: str | None, page: int, per_page: int
) -> tuple[list[Work], int]:
    """`source_id` without `ids`: the works whose count from it is above zero (the
    publisher's, with a publisher filter), highest first (the selection is kept
    ALM_STATUS_CACHE_SECONDS, as the other whole-table counts)."""
    store = request.app[STORE]
    metric = request.app[CATALOG][source].counting_metric

    async def positive() -> list[str]:
        counted = [w for w, n in await store.top_works(source, metric, SELECTED_MAX) if n > 0]
        if member_id is None:
            return counted
        works = await store.get_works(counted)
        return [w for w in counted if w in works and works[w].publisher_id == member_id]

    key = f"v5-selected:{source}:{member_id or ''}"
    selected: list[str] = await request.app[TOTALS].get(key, positive)
    wanted = selected[(page - 1) * per_page : page * per_page]
    picked = await store.get_works(wanted)
    return [picked[w] for w in wanted if w in picked], len(selected)


async def _listed(
    request: web.Request, order: str | None, page: int, per_page: int
) -> tuple[list[Work], int]:
    """Every work: by `order`'s count, highest first, else newest first (as Lagotto: by
    publication date, undated works last, then by work id)."""
    store = request.app[STORE]
    if order:
        top = await store.top_works(
            order, request.app[CATALOG][order].counting_metric, page * per_page
        )
        wanted = [w for w, _ in top[(page - 1) * per_page :]]
        picked = await store.get_works(wanted)
        return [picked[w] for w in wanted if w in picked], await request.app[TOTALS].works_total(
            request.app[STORE]
        )
    works = await store.works_newest((page - 1) * per_page, per_page)
    return works, await request.app[TOTALS].works_total(request.app[STORE])


async def _ranked_of(
    request: web.Request, order: str, member_id: str, page: int, per_page: int
) -> tuple[list[Work], int]:
    """`order` with a publisher filter: the publisher's works among the source's RANKED top
    works, in their order (a bounded read of the leaderboard, whatever the publisher's size)."""
    store = request.app[STORE]
    top = await store.top_works(order, request.app[CATALOG][order].counting_metric, RANKED)
    picked = await store.get_works([w for w, _ in top])
    mine = [picked[w] for w, _ in top if w in picked and picked[w].publisher_id == member_id]
    return mine[(page - 1) * per_page : page * per_page], len(mine)


async def sources(request: web.Request) -> web.Response:
    """`GET /api/v5/sources`: every source with its group, state and collection status."""
    rows = await _source_rows(request)
    data = [rows[name] for name in sorted(rows)]
    return web.json_response({"total": len(data), "error": None, "data": data})


async def source(request: web.Request) -> web.Response:
    """`GET /api/v5/sources/{name}`."""
    name = request.match_info["name"]
    if name not in request.app[CATALOG]:
        raise NotFound(f"no source named {name!r}")
    return web.json_response({"error": None, "data": (await _source_rows(request))[name]})


async def _source_rows(request: web.Request) -> dict[str, dict[str, Any]]:
    store = request.app[STORE]
    summary = await request.app[TOTALS].source_summary(request.app[STORE])
    statuses = await store.source_statuses()
    rows = {}
    for name, plugin in request.app[CATALOG].items():
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
