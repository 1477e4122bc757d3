"""What browser widgets and old clients of ALM's v3 and v5 APIs need around every answer
(Lagotto's `docs/api.md`): CORS on every answer, errors included, an answered OPTIONS preflight,
JSONP with `callback=`, and `POST` with `X-HTTP-Method-Override: GET` for id lists too long for
a URL, its parameters in the query string and the form body (urlencoded or multipart; the
query string wins).
"""

from __future__ import annotations

import re

from aiohttp import hdrs, web
from multidict import MultiDict, MultiDictProxy

from services.api.errors import BadParameter, Handler, error_response
from services.api.params import FORM_QUERY

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
    """CORS headers on every v3/v5 answer; with `callback=NAME`, the JSON body as
    `NAME(<json>)` (application/javascript), errors too with their status kept, so a widget
    can show them. A `callback` that is not a JavaScript name is a plain JSON 400."""
    if not legacy_path(request.path):
        return await handler(request)
    callback = request.query.get("callback")
    if callback is not None and not CALLBACK.fullmatch(callback):
        response: web.StreamResponse = error_response(
            400, "parameter 'callback' must be a JavaScript name (letters, digits, _ $ .)"
        )
        callback = None
    else:
        response = await handler(request)
    if callback and isinstance(response, web.Response) and response.content_type.endswith("json"):
        response = web.Response(
            body=callback.encode() + b"(" + (response.body or b"") + b")",  # type: ignore[operator]
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


def overridable(handler: Handler) -> Handler:
    """`POST` with `X-HTTP-Method-Override: GET` answered as the GET `handler` would, with the
    form body's fields added to the query string; any other POST is a 405."""

    async def post(request: web.Request) -> web.StreamResponse:
        if request.headers.get("X-HTTP-Method-Override", "").strip().upper() != "GET":
            raise web.HTTPMethodNotAllowed(
                "POST", ["GET", "OPTIONS"], text="POST needs X-HTTP-Method-Override: GET"
            )
        try:
            form = await request.post()
        except ValueError as exc:  # a malformed multipart body
            raise BadParameter(f"request body is not a form: {exc}") from None
        merged: MultiDict[str] = MultiDict()
        for key, value in form.items():
            if isinstance(value, str) and key not in request.query:
                merged.add(key, value)
        merged.extend(request.query)
        request[FORM_QUERY] = MultiDictProxy(merged)
        return await handler(request)

    return post
