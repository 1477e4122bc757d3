"""Thin handlers: parse the request, call the store or the registration, respond."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from services.api import totals
from services.api.errors import BadParameter, NotFound
from services.api.present import present_history, present_work
from services.api.state import BUS, CLOCK, STORE, STORE_TIMEOUT
from services.core.history import PERIODS
from services.core.identifiers import parse_identifier
from services.core.works import Work
from services.fetchers.control import describe_source, set_paused
from services.fetchers.registry import SOURCES
from services.registration import register

MAX_PER_PAGE = 1000
MAX_BATCH = 100


def int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter within [low, high], or BadParameter naming it."""
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.strip().lstrip("-").isdigit() or not low <= int(raw) <= high:
        raise BadParameter(
            f"parameter {name!r} must be an integer from {low} to {high}, got {raw!r}"
        )
    return int(raw)


async def find(request: web.Request, raw_id: str) -> Work:
    """The work any accepted form of `raw_id` names, or NotFound."""
    ident = parse_identifier(raw_id)
    work = await request.app[STORE].find_work(ident)
    if work is None:
        raise NotFound(f"no work registered with {ident.type.value} {ident.value}")
    return work


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
    summary = await totals.source_summary(request)
    statuses = await store.source_statuses()
    data = [
        {
            **describe_source(s, statuses.get(name)),
            "status": summary.get(name, {"works": 0, "errors": 0}),
        }
        for name, s in sorted(SOURCES.items())
    ]
    return web.json_response({"data": data, "total": len(data)})


async def control_source(request: web.Request) -> web.Response:
    """`POST /api/v1/sources/{name}/pause|resume` (pause takes an optional {"reason": ...})."""
    name, action = request.match_info["name"], request.match_info["action"]
    if name not in SOURCES:
        raise NotFound(f"no source named {name!r}")
    reason = None
    if action == "pause" and request.can_read_body:
        body: Any = await request.json()
        reason = body.get("reason") if isinstance(body, dict) else None
        if reason is not None and not isinstance(reason, str):
            raise BadParameter("'reason' must be a string")
    status = set_paused(name, action == "pause", reason, request.app[CLOCK]())
    await request.app[STORE].set_source_status(status)
    return web.json_response(describe_source(SOURCES[name], status))


async def list_works(request: web.Request) -> web.Response:
    """A page of works (or the works named by `ids=a,b`) with their totals."""
    store = request.app[STORE]
    if "ids" in request.query:
        return await _batch(request, [i for i in request.query["ids"].split(",") if i.strip()])
    page = int_param(request, "page", 1, 1, 10**9)
    per_page = int_param(request, "per_page", 50, 1, MAX_PER_PAGE)
    works = await store.list_works((page - 1) * per_page, per_page)
    states = await store.states_for([w.work_id for w in works])
    total = await totals.works_total(request)
    return web.json_response(
        {
            "total": total,
            "page": page,
            "per_page": per_page,
            "total_pages": (total + per_page - 1) // per_page,
            "data": [present_work(w, states[w.work_id]) for w in works],
        }
    )


async def _batch(request: web.Request, raw_ids: list[str]) -> web.Response:
    if not raw_ids or len(raw_ids) > MAX_BATCH:
        raise BadParameter(
            f"parameter 'ids' takes 1 to {MAX_BATCH} identifiers, got {len(raw_ids)}"
        )
    idents = [parse_identifier(raw.strip()) for raw in raw_ids]
    store = request.app[STORE]
    found, missing = [], []
    for raw, ident in zip(raw_ids, idents, strict=True):
        work = await store.find_work(ident)
        if work is None:
            missing.append(raw.strip())
        else:
            found.append(work)
    states = await store.states_for([w.work_id for w in found])
    return web.json_response(
        {
            "total": len(found),
            "missing": missing,
            "data": [present_work(w, states[w.work_id]) for w in found],
        }
    )


async def get_work(request: web.Request) -> web.Response:
    """One work's totals per source and per group."""
    work = await find(request, request.match_info["id"])
    states = await request.app[STORE].states_for([work.work_id])
    return web.json_response(present_work(work, states[work.work_id]))


async def work_history(request: web.Request) -> web.Response:
    """A work's counts per day, month or year, per source."""
    work = await find(request, request.match_info["id"])
    period = request.query.get("period", "month")
    if period not in PERIODS:
        raise BadParameter(
            f"parameter 'period' must be one of {', '.join(PERIODS)}, got {period!r}"
        )
    source = request.query.get("source") or None
    if source is not None and source not in SOURCES:
        raise BadParameter(f"parameter 'source' names no source: {source!r}")
    store = request.app[STORE]
    points = await store.history(work.work_id, source)
    states = [
        s
        for s in (await store.states_for([work.work_id]))[work.work_id]
        if source in (None, s.source)
    ]
    today = request.app[CLOCK]().date()
    data = present_history(points, states, period, today)
    return web.json_response({"work_id": work.work_id, "period": period, "data": data})


async def register_works(request: web.Request) -> web.Response:
    """Register identifiers from a JSON list (or {"ids": [...]}); a result per id."""
    body: Any = await request.json()
    ids = body.get("ids") if isinstance(body, dict) else body
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise BadParameter('body must be a JSON list of identifier strings, or {"ids": [...]}')
    if not ids or len(ids) > MAX_PER_PAGE:
        raise BadParameter(f"body takes 1 to {MAX_PER_PAGE} identifiers, got {len(ids)}")
    results = await register(ids, request.app[STORE], request.app[BUS], request.app[CLOCK]())
    status = 200 if any(r.error is None for r in results) else 400
    return web.json_response({"data": [r.to_dict() for r in results]}, status=status)
