"""ALM API v3 compatibility (`/api/v3/articles`, `/api/v3/articles/info:doi/{doi}`): what the
OJS ALM plugin (OJS 2.4.x), almviz's embed script and rOpenSci alm 0.1 read. Answers are JSON
arrays of articles (ALM 2.x to Lagotto 3.8); nothing found is a 404 `{"error": "Article not
found."}`, which the OJS plugin needs to fall back to its own figures."""

from __future__ import annotations

from aiohttp import web

from services.api.errors import NotFound
from services.api.params import ids_param, lenient_choice, query_of
from services.api.state import STORE
from services.api.v3_present import INFOS, v3_article
from services.api.v5 import source_views
from services.core.aggregation import SourceState
from services.core.identifiers import IdType, InvalidIdentifier, parse_identifier
from services.core.works import Work
from services.fetchers.registry import SOURCES

PARAMETERS = ("ids", "type", "info", "source", "api_key", "callback", "days", "months", "year")
MAX_IDS = 50  # ALM v3 looked up the first 50 ids
NOT_FOUND = "Article not found."
# ALM's v3 show route took `info:<type>/<id>` URIs as well as bare DOIs
_PREFIXES = {"info:pmid/": "pmid:", "info:pmcid/": "pmcid:", "info:doi/": "doi:"}


async def articles(request: web.Request) -> web.Response:
    """`GET /api/v3/articles?ids=&type=&info=&source=`: the known works among the first 50
    ids, most recently updated first."""
    query = query_of(request)
    if not query.get("ids"):
        raise NotFound(NOT_FOUND)
    id_type = lenient_choice(query.get("type"), [t.value for t in IdType], "doi") or "doi"
    store = request.app[STORE]
    found: dict[str, Work] = {}
    for _, ident in ids_param(request, IdType(id_type))[:MAX_IDS]:
        work = await store.find_work(ident)
        if work is not None:
            found.setdefault(work.work_id, work)
    return await _answer(request, list(found.values()))


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
    wanted = _sources(query.get("source"))
    if not works:
        raise NotFound(NOT_FOUND)
    store = request.app[STORE]
    states = await store.states_for([w.work_id for w in works])
    latest = {w.work_id: max(_updated(states.get(w.work_id, [])), default="") for w in works}
    works.sort(key=lambda w: latest[w.work_id], reverse=True)
    data = []
    for work in works:
        mine = states.get(work.work_id, [])
        fetched = tuple(
            s.source for s in mine if s.retrieved_at and (wanted is None or s.source in wanted)
        )
        listed = tuple(n for n in SOURCES if n in fetched)
        views = None
        if info != "summary":
            views = await source_views(request, work, mine, listed, info in ("detail", "event"))
        data.append(v3_article(work, mine, views, info))
    return web.json_response(data)


def _updated(states: list[SourceState]) -> list[str]:
    return [s.retrieved_at.isoformat() for s in states if s.retrieved_at]


def _sources(raw: str | None) -> set[str] | None:
    """`source=a,b` (case-insensitive); an unknown name matches nothing (ALM: a 404)."""
    if not raw:
        return None
    names = {n.strip().lower() for n in raw.split(",") if n.strip()}
    if not names <= set(SOURCES):
        raise NotFound("Source not found.")
    return names
