"""v1's JSON of works as kept bytes (services/api/rendered.py): `GET /api/v1/works/{id}` and
the `ids=` batch of `GET /api/v1/works`. A kept answer costs no store read; the ones not kept
are read together (one `find_works` and one `states_for` for a whole batch), presented by
the one presenter (services/api/present.py) and kept."""

from __future__ import annotations

from collections.abc import Sequence

import orjson
from aiohttp import web

from services.api.errors import BadParameter, NotFound
from services.api.params import MAX_IDS, query_of
from services.api.present import present_work
from services.api.rendered import Rendered
from services.api.state import CATALOG, RENDERED, STORE
from services.core.aggregation import SourceState
from services.core.identifiers import Identifier, parse_identifier

V1 = "v1"


async def rendered(request: web.Request, raws: Sequence[str]) -> dict[str, Rendered]:
    """v1's JSON of each known work among those the entries `raws` name, by entry: kept (by
    the entry as given: a kept one was valid, so it is not parsed again) or read, all in one
    read. An entry that is no identifier is an InvalidIdentifier (a 400 naming it). Kept ones
    falling due are rendered again in the background, together (services/api/rendered.py)."""
    app = request.app
    cache = app[RENDERED]
    out: dict[str, Rendered] = {}
    missing: dict[str, Identifier] = {}
    due: list[str] = []
    for raw in raws:
        key = (V1, raw)
        entry = cache.get(key)
        if entry is not None:
            out[raw] = entry
            if cache.stale(key, entry):
                due.append(raw)
        elif raw not in missing:
            missing[raw] = parse_identifier(raw)
    if due:
        cache.refresh(V1, [(V1, raw) for raw in due], lambda keys: _again(app, keys))
    if missing:
        out |= await _render(app, missing)
    return out


async def _again(app: web.Application, keys: list[tuple[str, str]]) -> None:
    """Render the kept answers of `keys` ((V1, entry)) again, together."""
    await _render(app, {raw: parse_identifier(raw) for _, raw in keys})


async def _render(app: web.Application, named: dict[str, Identifier]) -> dict[str, Rendered]:
    """Read, present and keep v1's JSON of the known works `named` (entry -> identifier): one
    `find_works` and one `states_for` for them all."""
    store, cache, catalog = app[STORE], app[RENDERED], app[CATALOG]
    known = await store.find_works(list(set(named.values())))
    states = await store.states_for(list({w.work_id for w in known.values()}))
    bodies: dict[str, tuple[bytes, list[SourceState]]] = {}
    out: dict[str, Rendered] = {}
    for raw, ident in named.items():
        work = known.get(ident)
        if work is None:
            continue
        if work.work_id not in bodies:
            shown = states[work.work_id]
            bodies[work.work_id] = (orjson.dumps(present_work(catalog, work, shown)), shown)
        body, shown = bodies[work.work_id]
        out[raw] = cache.put((V1, raw), work.work_id, body, shown)
    return out


async def one_work(request: web.Request) -> web.Response:
    """One work's totals per source and per group (with an ETag: a repeat is a 304)."""
    raw = request.match_info["id"]
    found = await rendered(request, [raw])
    if raw not in found:
        ident = parse_identifier(raw)
        raise NotFound(f"no work registered with {ident.type.value} {ident.value}")
    return found[raw].response(request)


async def batch(request: web.Request) -> web.Response:
    """`ids=a,b`: the works named, in the order named, and the entries naming none (1 to
    MAX_IDS entries, each as `ids_param` takes it)."""
    raws = query_of(request).get("ids", "").split(",")
    if len(raws) > MAX_IDS:
        raise BadParameter(f"parameter 'ids' takes 1 to {MAX_IDS} identifiers, got {len(raws)}")
    found = await rendered(request, raws)
    data = [found[raw].body for raw in raws if raw in found]
    missing = [raw.strip() for raw in raws if raw not in found]
    body = b'{"total":%d,"missing":%s,"data":[%s]}' % (
        len(data),
        orjson.dumps(missing),
        b",".join(data),
    )
    return web.Response(body=body, content_type="application/json")
