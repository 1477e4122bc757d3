"""Every file of `schemas/` served as written: the event contracts (JSON Schema), their
published revisions (`history/`) and the OpenAPI document.

Names are looked up in an index of the files made once at start-up, never joined to a path, so
no request can reach outside the folder (`..`, encoded or not, is simply an unknown name).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from aiohttp import web

from services.api.errors import NotFound
from services.core.schema_check import SCHEMA_DIR
from services.core.text import shown

PREFIX = "/api/v1/schemas/"
CACHE = "public, max-age=300"


@dataclass(frozen=True, slots=True)
class SchemaFile:
    """One served file: its name under schemas/, bytes, media type and title."""

    name: str
    body: bytes
    content_type: str
    title: str | None


def _media_type(name: str) -> str:
    """JSON Schema documents are `application/schema+json`; anything else JSON plain."""
    return "application/schema+json" if name.endswith(".schema.json") else "application/json"


@cache
def index(root: Path = SCHEMA_DIR) -> dict[str, SchemaFile]:
    """Every `*.json` under `root` by its path relative to it (`history/x.schema.json`)."""
    out = {}
    for path in sorted(root.rglob("*.json")):
        name = path.relative_to(root).as_posix()
        body = path.read_bytes()
        title = json.loads(body).get("title") if name.endswith(".schema.json") else None
        out[name] = SchemaFile(name, body, _media_type(name), title)
    return out


async def list_schemas(request: web.Request) -> web.Response:
    """`GET /api/v1/schemas`: the name, URL, media type and title of every served file."""
    data = [
        {"name": f.name, "url": PREFIX + f.name, "content_type": f.content_type, "title": f.title}
        for f in index().values()
    ]
    return web.json_response({"data": data, "total": len(data)}, headers={"Cache-Control": CACHE})


async def get_schema(request: web.Request) -> web.Response:
    """`GET /api/v1/schemas/{name}`: one file of schemas/ as written, or a JSON 404."""
    name = request.match_info["name"]
    found = index().get(name)
    if found is None:
        raise NotFound(f"no schema named {shown(name)!r}; GET /api/v1/schemas lists them")
    return web.Response(
        body=found.body, content_type=found.content_type, headers={"Cache-Control": CACHE}
    )
