"""The stub upstream: one loopback aiohttp server answering as every source's real API would,
from recorded real-format fixtures (`/<source>/...` is that source's API root).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from aiohttp import web

from services.fetchers.base import Source
from services.fetchers.stub import StubRequest, StubUpstream

STUBS = web.AppKey("stubs", dict)
HITS = web.AppKey("hits", dict)


def build_stubs(
    sources: Mapping[str, Source], fixtures: Path, synthetic: bool
) -> dict[str, StubUpstream]:
    """A stub for every source that declares one."""
    return {name: src.stub(fixtures / name, synthetic) for name, src in sources.items() if src.stub}


async def _answer(request: web.Request) -> web.Response:
    source = request.match_info["source"]
    stubs: dict[str, StubUpstream] = request.app[STUBS]
    stub = stubs.get(source)
    if stub is None:
        return web.json_response({"error": f"no stub for {source!r}"}, status=404)
    request.app[HITS][source] = request.app[HITS].get(source, 0) + 1
    query: dict[str, list[str]] = {}
    for key, value in request.query.items():
        query.setdefault(key, []).append(value)
    body = await request.read()
    path = "/" + request.match_info["path"]
    headers = {k.lower(): v for k, v in request.headers.items()}
    answer = stub.answer(StubRequest(request.method, path, query, body, headers))
    return web.Response(status=answer.status, body=answer.body, headers=dict(answer.headers))


async def _hits(request: web.Request) -> web.Response:
    return web.json_response(request.app[HITS])


def init_app(
    sources: Mapping[str, Source],
    fixtures: Path,
    synthetic: bool = False,
    catalogue_works: int | None = None,
) -> web.Application:
    """The stub upstream application; `catalogue_works` resizes the publishers' catalogues
    (services/stub/crossref_catalogue.py) to that many generated works each."""
    app = web.Application(client_max_size=16 * 1024**2)
    app[STUBS] = build_stubs(sources, fixtures, synthetic)
    for stub in app[STUBS].values():
        catalogue = getattr(stub, "catalogue", None)
        if catalogue is not None and catalogue_works is not None:
            catalogue.resize(catalogue_works)
    app[HITS] = {}
    app.router.add_get("/_stub/hits", _hits)
    app.router.add_route("*", "/{source}/{path:.*}", _answer)
    return app


async def start(
    app: web.Application, host: str = "127.0.0.1", port: int = 0
) -> tuple[web.AppRunner, str]:
    """Serve `app`; returns the runner and the root URL (port 0 picks a free port)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server
    sockets = getattr(server, "sockets", None) or []
    bound = int(sockets[0].getsockname()[1]) if sockets else port
    return runner, f"http://{host}:{bound}"
