"""The stub upstream: one loopback aiohttp server answering as every source's real API would,
from recorded real-format fixtures (`/<source>/...` is that source's API root).

Fault mode, for fault tests: `POST /_stub/fault` with `{"status": 429, "retry_after": "2",
"seconds": 20, "sources": ["crossref"]}` answers every call (of those sources; all if omitted)
with that status (and Retry-After if given) for that long; `{"truncate": true, ...}` answers
with the first half of the real body instead (a response cut short); `DELETE /_stub/fault` ends
it. Calls answered with a fault are counted in `/_stub/hits` under `<source>:fault`.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import pkgutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from services.stub.upstream import StubAnswer, StubRequest, StubUpstream

STUBS = web.AppKey("stubs", dict)
HITS = web.AppKey("hits", dict)


@dataclass(frozen=True, slots=True)
class Fault:
    """How the stub misbehaves until `until` (monotonic seconds)."""

    until: float
    status: int | None = None
    retry_after: str | None = None
    truncate: bool = False
    sources: frozenset[str] | None = None

    def applies(self, source: str, now: float) -> bool:
        """Whether a call to `source` now is answered with the fault."""
        return now < self.until and (self.sources is None or source in self.sources)

    def answer(self, real: StubAnswer) -> web.Response:
        """The faulty answer in place of `real`."""
        if self.truncate:
            body = real.body[: len(real.body) // 2]
            return web.Response(status=real.status, body=body, headers=dict(real.headers))
        headers = {"Retry-After": self.retry_after} if self.retry_after else {}
        text = "Too Many Requests" if self.status == 429 else "Service Unavailable"
        return web.Response(status=self.status or 503, text=text, headers=headers)


FAULT: web.AppKey[list[Fault]] = web.AppKey("fault")  # the current one, if any


STUB_PACKAGE = "services.stub.sources"


def stub_for(source: str) -> type[StubUpstream] | None:
    """The stub of `source`: the StubUpstream subclass its module `services/stub/sources/
    <source>.py` defines; None when the source has no stub module."""
    name = f"{STUB_PACKAGE}.{source}"
    if not source.isidentifier() or importlib.util.find_spec(name) is None:
        return None
    module = importlib.import_module(name)
    found = [
        cls
        for cls in vars(module).values()
        if inspect.isclass(cls)
        and issubclass(cls, StubUpstream)
        and cls is not StubUpstream
        and cls.__module__ == name
    ]
    if len(found) != 1:
        raise TypeError(f"{name} must define one StubUpstream subclass, not {len(found)}")
    return found[0]


def stub_names() -> list[str]:
    """The sources that have a stub module, by name."""
    package = importlib.import_module(STUB_PACKAGE)
    return sorted(m.name for m in pkgutil.iter_modules(package.__path__))


def build_stubs(sources: Iterable[str], fixtures: Path, synthetic: bool) -> dict[str, StubUpstream]:
    """A stub for every one of `sources` (names) that has a stub module."""
    stubs = {name: stub_for(name) for name in sources}
    return {name: stub(fixtures / name, synthetic) for name, stub in stubs.items() if stub}


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
    faults = request.app[FAULT]
    if faults and faults[0].applies(source, time.monotonic()):
        key = f"{source}:fault"
        request.app[HITS][key] = request.app[HITS].get(key, 0) + 1
        return faults[0].answer(answer)
    return web.Response(status=answer.status, body=answer.body, headers=dict(answer.headers))


async def _hits(request: web.Request) -> web.Response:
    return web.json_response(request.app[HITS])


async def _set_fault(request: web.Request) -> web.Response:
    spec: Any = await request.json()
    if not isinstance(spec, dict) or not (spec.get("status") or spec.get("truncate")):
        return web.json_response({"error": "give a status or truncate: true"}, status=400)
    sources = spec.get("sources")
    fault = Fault(
        until=time.monotonic() + float(spec.get("seconds", 3600)),
        status=int(spec["status"]) if spec.get("status") else None,
        retry_after=str(spec["retry_after"]) if spec.get("retry_after") is not None else None,
        truncate=bool(spec.get("truncate")),
        sources=frozenset(sources) if sources else None,
    )
    request.app[FAULT][:] = [fault]
    return web.json_response({"fault": "on"})


async def _clear_fault(request: web.Request) -> web.Response:
    request.app[FAULT].clear()
    return web.json_response({"fault": "off"})


def init_app(
    sources: Iterable[str],
    fixtures: Path,
    synthetic: bool = False,
    catalogue_works: int | None = None,
) -> web.Application:
    """The stub upstream application for `sources` (names; the registry's mapping will do);
    `catalogue_works` resizes the publishers' catalogues
    (services/stub/crossref_catalogue.py) to that many generated works each."""
    app = web.Application(client_max_size=16 * 1024**2)
    app[STUBS] = build_stubs(sources, fixtures, synthetic)
    for stub in app[STUBS].values():
        catalogue = getattr(stub, "catalogue", None)
        if catalogue is not None and catalogue_works is not None:
            catalogue.resize(catalogue_works)
    app[HITS] = {}
    app[FAULT] = []
    app.router.add_get("/_stub/hits", _hits)
    app.router.add_post("/_stub/fault", _set_fault)
    app.router.add_delete("/_stub/fault", _clear_fault)
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
