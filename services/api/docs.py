"""The API's OpenAPI document (`schemas/openapi.json`), served as written."""

from __future__ import annotations

from functools import cache

from aiohttp import web

from services.core.schema_check import SCHEMA_DIR

OPENAPI_PATH = SCHEMA_DIR / "openapi.json"


@cache
def _document() -> bytes:
    return OPENAPI_PATH.read_bytes()


async def openapi(request: web.Request) -> web.Response:
    """`GET /api/v1/openapi.json`: the OpenAPI 3.1 document describing every route."""
    return web.Response(body=_document(), content_type="application/json")
