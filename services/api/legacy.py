"""What browser widgets and old clients of ALM's v3 and v5 APIs need around every answer
(Lagotto's `docs/api.md`): CORS on every answer, errors included, an answered OPTIONS preflight,
JSONP with `callback=` (successful answers), and `POST` with `X-HTTP-Method-Override: GET` for
id lists too long for a URL, its parameters in the query string and the form body (urlencoded
or multipart; the query string wins).
"""

from __future__ import annotations

import re
from collections.abc import Collection

from aiohttp import hdrs, web
from multidict import MultiDict, MultiDictProxy

from services.api.errors import BadParameter, Handler, error_response
from services.api.params import FORM_QUERY, query_of, read_form

PREFIXES = ("/api/v3/", "/api/v5/")
CALLBACK = re.compile(r"[A-Za-z_$][A-Za-z0-9_$.]{0,127}")  # a JavaScript name, no markup
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Max-Age": "1728000",
}
PREFLIGHT = {
    **CORS,
    "Access-Control-Allow-Headers": (
        "X-Requested-With, X-HTTP-Method-Override, Content-Type, Authorization"
    ),
}


def legacy_path(path: str) -> bool:
    """Whether `path` belongs to the ALM-compatible APIs (v3, v5)."""
    return path.startswith(PREFIXES)


@web.middleware
async def legacy_clients(request: web.Request, handler: Handler) -> web.StreamResponse:
    """CORS headers on every v3/v5 answer; with `callback=NAME`, a successful JSON body as
    `NAME(<json>)` (application/javascript). Errors stay JSON with their status: a browser
    runs no script it gets with an error status, so JSONP cannot carry them anyway. A
    `callback` that is not a JavaScript name is a JSON 400."""
    if not legacy_path(request.path):
        return await handler(request)
    response: web.StreamResponse
    callback = request.query.get("callback")
    if callback is None or CALLBACK.fullmatch(callback):
        response = await handler(request)
        callback = query_of(request).get("callback")  # a POST's form may carry it too
    if callback is not None and not CALLBACK.fullmatch(callback):
        response = error_response(
            400, "parameter 'callback' must be a JavaScript name (letters, digits, _ $ .)"
        )
        callback = None
    json_ok = response.status < 300 and response.content_type.endswith("json")
    if callback and json_ok and isinstance(response, web.Response):
        body = response.body if isinstance(response.body, bytes) else b""
        response = web.Response(
            body=callback.encode() + b"(" + body + b")",
            status=response.status,
            content_type="application/javascript",
            charset="utf-8",
            headers={k: v for k, v in response.headers.items() if k == hdrs.RETRY_AFTER},
        )
        response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers.update(CORS)
    return response


async def preflight(request: web.Request) -> web.Response:
    """`OPTIONS` on a v3/v5 path: the CORS preflight answer (no body)."""
    return web.Response(status=204, headers=PREFLIGHT)


def overridable(handler: Handler, fields: Collection[str]) -> Handler:
    """`POST` with `X-HTTP-Method-Override: GET` answered as the GET `handler` would, with the
    form body's fields (those named in `fields`) added to the query string; any other POST is a
    400 saying so."""

    async def post(request: web.Request) -> web.StreamResponse:
        if request.headers.get("X-HTTP-Method-Override", "").strip().upper() != "GET":
            raise BadParameter("a POST here needs the header X-HTTP-Method-Override: GET")
        form = await read_form(request, fields)
        merged: MultiDict[str] = MultiDict(
            (k, v) for k, v in form.items() if k not in request.query
        )
        merged.extend(request.query)
        request[FORM_QUERY] = MultiDictProxy(merged)
        return await handler(request)

    return post
