"""ALM API v3 compatibility (`/api/v3/articles`, `/api/v3/articles/info:doi/{doi}`): what the
OJS ALM plugin (OJS 2.4.x), almviz's embed script and rOpenSci alm 0.1 read. Answers are JSON
arrays of articles (ALM 2.x to Lagotto 3.8); nothing found is a 404 `{"error": "Article not
found."}`, which the OJS plugin needs to fall back to its own figures.
`days`/`months`/`year` ask for the figures as they stood at a cutoff day (v3_asof.py);
`info=history|detail` lists each source's `histories` (v3_histories.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from aiohttp import web

from services.api.errors import NotFound
from services.api.lookup import find_named, source_views
from services.api.params import ids_param, lenient_choice, query_of
from services.api.present import source_history, updated
from services.api.state import CATALOG, CLOCK, STORE
from services.api.v3_asof import parse_as_of, state_as_of
from services.api.v3_histories import histories
from services.api.v3_present import INFOS, v3_article
from services.api.v5_present import SourceView
from services.core.aggregation import HistoryPoint, SourceState
from services.core.catalog import Catalog
from services.core.history import PERIODS
from services.core.identifiers import IdType, InvalidIdentifier, parse_identifier
from services.core.works import Work

PARAMETERS = ("ids", "type", "info", "source", "api_key", "callback", "days", "months", "year")
MAX_IDS = 50  # ALM v3 looked up the first 50 ids
NOT_FOUND = "Article not found."
NEVER = datetime.min.replace(tzinfo=UTC)
# ALM's v3 show route took `info:<type>/<id>` URIs as well as bare DOIs
_PREFIXES = {"info:pmid/": "pmid:", "info:pmcid/": "pmcid:", "info:doi/": "doi:"}


async def articles(request: web.Request) -> web.Response:
    """`GET /api/v3/articles?ids=&type=&info=&source=`: the known works among the first 50
    ids, most recently updated first."""
    query = query_of(request)
    if not query.get("ids"):
        raise NotFound(NOT_FOUND)
    id_type = lenient_choice(query.get("type"), [t.value for t in IdType], "doi") or "doi"
    named = [ident for _, ident in ids_param(request, IdType(id_type))[:MAX_IDS]]
    return await _answer(request, await find_named(request.app[STORE], named))


async def article(request: web.Request) -> web.Response:
    """`GET /api/v3/articles/info:doi/{doi}` (or `info:pmid/`, `info:pmcid/`, a bare DOI): an
    array of one article, as the OJS plugin reads `data[0]`; an unknown work or an id that is
    none is ALM's 404 `Article not found.`."""
    raw = request.match_info["id"]
    for prefix, kind in _PREFIXES.items():
        if raw.lower().startswith(prefix):
            raw = kind + raw[len(prefix) :]
            break
    try:
        ident = parse_identifier(raw)
    except InvalidIdentifier:  # ALM: not found, which the OJS plugin falls back on
        raise NotFound(NOT_FOUND) from None
    work = await request.app[STORE].find_work(ident)
    return await _answer(request, [work] if work is not None else [])


async def _answer(request: web.Request, works: list[Work]) -> web.Response:
    query = query_of(request)
    info = lenient_choice(query.get("info"), INFOS, "") or ""
    catalog = request.app[CATALOG]
    wanted = _sources(catalog, query.get("source"))
    if not works:
        raise NotFound(NOT_FOUND)
    as_of = parse_as_of(query.get("days"), query.get("months"), query.get("year"))
    today = request.app[CLOCK]().date()
    store = request.app[STORE]
    states = await store.states_for([w.work_id for w in works])
    latest = {w.work_id: updated(states.get(w.work_id, [])) for w in works}
    works.sort(key=lambda w: _recency(latest[w.work_id]), reverse=True)
    data = []
    for work in works:
        mine = states.get(work.work_id, [])
        cutoff = as_of.cutoff(work.issued, today)
        points: dict[str, list[HistoryPoint]] = {}
        retrievals: dict[str, list[dict[str, Any]]] = {}
        if cutoff is not None:
            mine, points, retrievals = await _states_at(request, work, mine, cutoff)
        fetched = tuple(
            s.source for s in mine if s.retrieved_at and (wanted is None or s.source in wanted)
        )
        listed = tuple(n for n in catalog if n in fetched)
        views = None
        with_events = info in ("detail", "event")
        if info != "summary" and cutoff is None:
            views = await source_views(request, work, mine, listed, with_events)
            retrievals = {
                v.name: histories(catalog.specs(v.name), v.state, v.snapshots) for v in views
            }
        elif info != "summary" and cutoff is not None:
            views = await _views_at(request, work, mine, points, listed, with_events, cutoff)
        data.append(v3_article(catalog, work, mine, views, info, retrievals))
    return web.json_response(data)


async def _states_at(
    request: web.Request, work: Work, states: list[SourceState], cutoff: date
) -> tuple[list[SourceState], dict[str, list[HistoryPoint]], dict[str, list[dict[str, Any]]]]:
    """`days`/`months`/`year`: each source's state, snapshots and `histories` as of `cutoff`."""
    history = await request.app[STORE].history(work.work_id, None)
    catalog = request.app[CATALOG]
    cut: list[SourceState] = []
    points: dict[str, list[HistoryPoint]] = {}
    retrievals: dict[str, list[dict[str, Any]]] = {}
    for state in states:
        mine = [p for p in history if p.source == state.source]
        at, points[state.source] = state_as_of(state, mine, cutoff)
        retrievals[state.source] = histories(catalog.specs(state.source), state, mine, cutoff)
        cut.append(at)
    return cut, points, retrievals


async def _views_at(
    request: web.Request,
    work: Work,
    states: list[SourceState],
    points: dict[str, list[HistoryPoint]],
    listed: tuple[str, ...],
    with_events: bool,
    cutoff: date,
) -> list[SourceView]:
    """The listed sources as of `cutoff`: no chart before the first snapshot, events dated
    after the cutoff left out (undated ones kept)."""
    state_of = {s.source: s for s in states}
    views = []
    for name in listed:
        state, mine = state_of.get(name), points.get(name, [])
        periods = {p: source_history(state, name, mine, p, cutoff) for p in PERIODS} if mine else {}
        events = None
        if with_events and state:
            events = [
                e
                for e in await request.app[STORE].events(work.work_id, name)
                if not e.event_time or e.event_time[:10] <= cutoff.isoformat()
            ]
        views.append(SourceView(name, state, periods, events))
    return views


def _recency(at: datetime | None) -> tuple[bool, datetime]:
    """Sorts works by their last update, works never updated last (reversed)."""
    return (at is not None, at or NEVER)


def _sources(catalog: Catalog, raw: str | None) -> set[str] | None:
    """`source=a,b` (case-insensitive); an unknown name matches nothing (ALM: a 404)."""
    if not raw:
        return None
    names = {n.strip().lower() for n in raw.split(",") if n.strip()}
    if not names <= set(catalog):
        raise NotFound("Source not found.")
    return names
