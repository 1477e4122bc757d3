"""Reading request parameters and bodies the way the OpenAPI document declares them: anything
else is a BadParameter (JSON 400) naming the parameter, before any store is touched."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from services.api.errors import BadParameter
from services.core.identifiers import Identifier, IdType, parse_identifier
from services.core.text import one_line, shown

MAX_IDS = 100  # `ids=` of a lookup
# a POST's query string merged with its form body (X-HTTP-Method-Override: GET)
FORM_QUERY: web.RequestKey[Mapping[str, str]] = web.RequestKey("form_query")
MAX_CURSOR = 400  # characters of a listing's `cursor` (a work id: a DOI has at most 300)
FIRST = "*"  # the cursor of a listing's first page (as Crossref's)
_INTEGER = re.compile(r"[1-9][0-9]{0,9}")  # ASCII digits: int() takes Arabic-Indic digits and '+5'


def query_of(request: web.Request) -> Mapping[str, str]:
    """The request's parameters: its query string, or for a POST overridden to a GET its query
    string merged with its form body (services/api/legacy.py)."""
    merged = request.get(FORM_QUERY)
    return merged if merged is not None else request.query


def int_param(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter within [low, high] (1 <= low), or BadParameter naming it."""
    raw = query_of(request).get(name)
    if raw is None:
        return default
    if not _INTEGER.fullmatch(raw) or not low <= int(raw) <= high:
        raise BadParameter(
            f"parameter {name!r} must be an integer from {low} to {high}, got {shown(raw, 40)!r}"
        )
    return int(raw)


def choice_param(request: web.Request, name: str, choices: Collection[str]) -> str | None:
    """A query parameter that must be one of `choices` when present (None when absent)."""
    raw = query_of(request).get(name)
    if raw is None:
        return None
    if raw not in choices:
        listed = ", ".join(sorted(choices)) if len(choices) <= 12 else f"{len(choices)} names"
        raise BadParameter(f"parameter {name!r} must be one of {listed}, got {shown(raw, 40)!r}")
    return raw


def ids_param(request: web.Request, id_type: IdType | None = None) -> list[tuple[str, Identifier]]:
    """`ids=a,b,...`: 1 to MAX_IDS identifiers, each (raw entry, parsed); with `id_type`, entries
    that are valid identifiers of another kind are left out (ALM v5's `type=`)."""
    entries = query_of(request).get("ids", "").split(",")
    if len(entries) > MAX_IDS:
        raise BadParameter(f"parameter 'ids' takes 1 to {MAX_IDS} identifiers, got {len(entries)}")
    out = []
    for raw in entries:
        ident = parse_identifier(raw)  # InvalidIdentifier (a 400) names the entry
        if id_type is not None:
            try:
                ident = parse_identifier(raw, id_type)
            except ValueError:
                continue
        out.append((raw.strip(), ident))
    return out


async def read_form(request: web.Request, known: Collection[str]) -> dict[str, str]:
    """A form body (multipart or urlencoded) as its text fields (the first value of each); a
    malformed body, a field not in `known` or a file part is a 400 naming it."""
    try:
        form = await request.post()
    except (ValueError, HttpProcessingError, RequestPayloadError) as exc:
        raise BadParameter(f"request body is not a form: {one_line(exc)}") from None
    fields: dict[str, str] = {}
    for key, value in form.items():
        if key not in known:
            raise BadParameter(
                f"form field {shown(key, 40)!r} is not one of {', '.join(sorted(known))}"
            )
        if not isinstance(value, str):
            raise BadParameter(f"form field {key!r} must be text, not a file")
        fields.setdefault(key, value)
    return fields


async def read_json(request: web.Request) -> Any:
    """The request body as JSON: over the body limit a 413; not UTF-8, not JSON, numbers out of
    range or nesting deeper than 1024 levels (orjson's limit) a 400 naming the problem."""
    try:
        body = await request.read()  # HTTPRequestEntityTooLarge beyond client_max_size
    except RequestPayloadError as exc:  # a broken chunked encoding, an undecodable gzip
        raise BadParameter(f"request body could not be read: {one_line(exc)}") from None
    if not body.strip():
        raise BadParameter("request body is empty: a JSON document was expected")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadParameter(f"request body is not JSON: {one_line(exc)}") from None


def lenient_choice(raw: str | None, choices: Collection[str], default: str | None) -> str | None:
    """ALM's leniency for old clients: a value outside `choices` (or none) is the default."""
    return raw if raw is not None and raw in choices else default


def lenient_int(raw: str | None, default: int, low: int, high: int) -> int:
    """ALM's leniency for `per_page`: anything but an integer in [low, high] is the default."""
    if raw is None or not _INTEGER.fullmatch(raw) or not low <= int(raw) <= high:
        return default
    return int(raw)


def cursor_param(request: web.Request) -> str | None:
    """`cursor=`: `*` for a listing's first page (None), else the `next_cursor` of the page
    before (the last work id it listed: the next page lists the works after it)."""
    raw = request.query.get("cursor", FIRST)
    if not raw or len(raw) > MAX_CURSOR:
        raise BadParameter(
            f"parameter 'cursor' must be '*' or a page's next_cursor (1 to {MAX_CURSOR} "
            f"characters), got {shown(raw, 40)!r}"
        )
    return None if raw == FIRST else raw
