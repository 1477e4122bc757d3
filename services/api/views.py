"""Thin handlers: parse the request, call the store or the registration, respond."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.api import publishers, search
from services.api.errors import BadParameter, NotFound
from services.api.lookup import find
from services.api.params import choice_param, cursor_param, int_param, read_json
from services.api.present import present_history, present_work
from services.api.source_figures import source_figures
from services.api.state import BUS, CATALOG, CLOCK, SCHEDULING, STORE, STORE_TIMEOUT, TOTALS
from services.api.work_json import batch, one_work
from services.core.catalog import Catalog
from services.core.control import describe_source, set_paused
from services.core.history import PERIODS
from services.core.identifiers import MAX_INPUT_LENGTH
from services.core.text import NAME_LIMIT
from services.registration import register

MAX_PER_PAGE = 1000
MAX_REGISTER = 1000  # identifiers one POST registers
MAX_REASON = NAME_LIMIT  # characters of a pause reason


async def healthz(request: web.Request) -> web.Response:
    """Liveness: the process answers."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: the store answers within the store timeout (a one-row-per-source read:
    probes come every few seconds, so nothing here grows with the works); a JSON 503 as soon
    as it does not, and ready again by itself once it does."""
    async with asyncio.timeout(request.app[STORE_TIMEOUT]):
        await request.app[STORE].source_statuses()
    return web.json_response({"status": "ready"})


async def metrics(request: web.Request) -> web.Response:
    """Prometheus metrics of this process."""
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def list_sources(request: web.Request) -> web.Response:
    """Every installed source with its metrics, groups, limits and collection status."""
    store = request.app[STORE]
    summary = await request.app[TOTALS].source_summary(request.app[STORE])
    statuses = await store.source_statuses()
    figures = await source_figures(request.app)
    data = [
        {
            **describe_source(s, statuses.get(name)),
            "status": summary.get(name, {"works": 0, "errors": 0}),
            "activity": figures[name].json(),
        }
        for name, s in sorted(request.app[CATALOG].items())
    ]
    return web.json_response({"data": data, "total": len(data)})


async def control_source(request: web.Request) -> web.Response:
    """`POST /api/v1/sources/{name}/pause|resume` (pause takes an optional {"reason": ...})."""
    name, action = request.match_info["name"], request.match_info["action"]
    catalog = request.app[CATALOG]
    if name not in catalog:
        raise NotFound(f"no source named {name!r}")
    reason = await _pause_reason(request) if request.body_exists else None
    status = set_paused(name, action == "pause", reason, request.app[CLOCK]())
    await request.app[STORE].set_source_status(status)
    return web.json_response(describe_source(catalog[name], status))


async def _pause_reason(request: web.Request) -> str | None:
    """The body of a pause or resume: a JSON object with at most a string `reason`."""
    body: Any = await read_json(request)
    if not isinstance(body, dict):
        raise BadParameter('body must be a JSON object, {"reason": "..."}')
    unknown = sorted(set(body) - {"reason"})
    if unknown:
        raise BadParameter(f"body has unknown fields: {', '.join(map(repr, unknown[:5]))}")
    reason = body.get("reason")
    if "reason" in body and not isinstance(reason, str):
        raise BadParameter("'reason' must be a string")
    if reason is not None and len(reason) > MAX_REASON:
        raise BadParameter(f"'reason' takes at most {MAX_REASON} characters, got {len(reason)}")
    return reason


async def list_works(request: web.Request) -> web.Response:
    """A page of works (or the works named by `ids=a,b`) with their totals."""
    store, catalog = request.app[STORE], request.app[CATALOG]
    page = int_param(request, "page", 1, 1, 10**9)
    per_page = int_param(request, "per_page", 50, 1, MAX_PER_PAGE)
    search.check_params(request)  # `source`, `sort`: checked always, applied with `q`
    if "ids" in request.query:
        return await _batch(request)
    if "q" in request.query:
        return await search.search_works(request, per_page)
    if "cursor" in request.query:
        return await _keyset(request, per_page)
    if (member_id := publishers.publisher_id(request)) is not None:
        return await publishers.list_works(request, member_id, page, per_page)
    works = await store.list_works((page - 1) * per_page, per_page)
    states = await store.states_for([w.work_id for w in works])
    total = await request.app[TOTALS].works_total(request.app[STORE])
    return web.json_response(
        {
            "total": total,
            "page": page,
            "per_page": per_page,
            "total_pages": (total + per_page - 1) // per_page,
            "data": [present_work(catalog, w, states[w.work_id]) for w in works],
        }
    )


async def _keyset(request: web.Request, per_page: int) -> web.Response:
    """`cursor=`: the works after the cursor (all, or one publisher's) and the next cursor; each
    page costs the same however deep (no offset scanned), so a client can walk millions."""
    store, catalog = request.app[STORE], request.app[CATALOG]
    after = cursor_param(request)
    if (member_id := publishers.publisher_id(request)) is not None:
        works, next_cursor, total = await publishers.works_after(
            request, member_id, after, per_page
        )
    else:
        works = await store.works_after(after, per_page)
        next_cursor = works[-1].work_id if len(works) == per_page else None
        total = await request.app[TOTALS].works_total(request.app[STORE])
    states = await store.states_for([w.work_id for w in works])
    return web.json_response(
        {
            "total": total,
            "per_page": per_page,
            "next_cursor": next_cursor,
            "data": [present_work(catalog, w, states[w.work_id]) for w in works],
        }
    )


async def _batch(request: web.Request) -> web.Response:
    return await batch(request)


async def get_work(request: web.Request) -> web.Response:
    """One work's totals per source and per group (kept as bytes: services/api/work_json.py)."""
    return await one_work(request)


async def work_history(request: web.Request) -> web.Response:
    """A work's counts per day, month or year, per source."""
    period = PERIODS[PERIODS.index(choice_param(request, "period", PERIODS) or "month")]
    catalog: Catalog = request.app[CATALOG]
    source = choice_param(request, "source", catalog)
    work = await find(request, request.match_info["id"])
    store = request.app[STORE]
    points = await store.history(work.work_id, source)
    states = [
        s
        for s in (await store.states_for([work.work_id]))[work.work_id]
        if source in (None, s.source)
    ]
    today = request.app[CLOCK]().date()
    data = present_history(request.app[CATALOG], points, states, period, today)
    return web.json_response({"work_id": work.work_id, "period": period, "data": data})


async def register_works(request: web.Request) -> web.Response:
    """Register identifiers from a JSON list (or {"ids": [...]}); a result per id. The body is
    checked whole first (a malformed one writes nothing); then every valid id is registered and
    each invalid one gets its reason, in a 200."""
    body: Any = await read_json(request)
    ids = body.get("ids") if isinstance(body, dict) and set(body) == {"ids"} else body
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise BadParameter('body must be a JSON list of identifier strings, or {"ids": [...]}')
    if not ids or len(ids) > MAX_REGISTER:
        raise BadParameter(f"body takes 1 to {MAX_REGISTER} identifiers, got {len(ids)}")
    too_long = next((n for n, i in enumerate(ids) if len(i) > MAX_INPUT_LENGTH), None)
    if too_long is not None:
        raise BadParameter(
            f"identifier {too_long} has {len(ids[too_long])} characters; "
            f"at most {MAX_INPUT_LENGTH} are read"
        )
    app = request.app
    results = await register(ids, app[STORE], app[BUS], app[CLOCK](), app[SCHEDULING])
    return web.json_response({"data": [r.to_dict() for r in results]})
