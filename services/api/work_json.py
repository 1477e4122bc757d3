"""v1's JSON of works as kept bytes (services/api/rendered.py): `GET /api/v1/works/{id}` and
the `ids=` batch of `GET /api/v1/works`. A kept answer costs no store read; the ones not kept
are read together (one `find_works` and one `states_for` for a whole batch), presented by
the one presenter (services/api/present.py) and kept."""

from __future__ import annotations

from collections.abc import Sequence

import orjson
from aiohttp import web

from services.api.errors import NotFound
from services.api.params import ids_param
from services.api.present import present_work
from services.api.rendered import Rendered
from services.api.state import CATALOG, RENDERED, STORE
from services.core.identifiers import Identifier, parse_identifier

V1 = "v1"


def _key(ident: Identifier) -> tuple[str, str, str]:
    return (V1, ident.type.value, ident.value)


async def rendered(
    request: web.Request, idents: Sequence[Identifier]
) -> dict[Identifier, Rendered]:
    """v1's JSON of each known work among `idents`, kept or read (one read for all)."""
    cache = request.app[RENDERED]
    out: dict[Identifier, Rendered] = {}
    missing: list[Identifier] = []
    for ident in idents:
        entry = cache.get(_key(ident))
        if entry is None:
            missing.append(ident)
        else:
            out[ident] = entry
    if not missing:
        return out
    store = request.app[STORE]
    known = await store.find_works(missing)
    states = await store.states_for(list({w.work_id for w in known.values()}))
    catalog = request.app[CATALOG]
    for ident, work in known.items():
        shown = states[work.work_id]
        body = orjson.dumps(present_work(catalog, work, shown))
        out[ident] = cache.put(_key(ident), work.work_id, body, shown)
    return out


async def get_work(request: web.Request) -> web.Response:
    """One work's totals per source and per group (with an ETag: a repeat is a 304)."""
    ident = parse_identifier(request.match_info["id"])
    found = await rendered(request, [ident])
    if ident not in found:
        raise NotFound(f"no work registered with {ident.type.value} {ident.value}")
    return found[ident].response(request)


async def batch(request: web.Request) -> web.Response:
    """`ids=a,b`: the works named, in the order named, and the entries naming none."""
    named = ids_param(request)
    found = await rendered(request, list({ident: None for _, ident in named}))
    data = [found[ident].body for _, ident in named if ident in found]
    missing = [raw for raw, ident in named if ident not in found]
    body = b'{"total":%d,"missing":%s,"data":[%s]}' % (
        len(data),
        orjson.dumps(missing),
        b",".join(data),
    )
    return web.Response(body=body, content_type="application/json")
