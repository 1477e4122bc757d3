"""The OJS ALM plugin's deposit (`POST /api/v1/deposits/ojs`, the URL a site administrator
enters as the plugin's deposit URL): a form (multipart, as the plugin's curl sends it, or
urlencoded) with `api_key` and `payload`, one `DOI YYYY-MM-DD Title` a line.

The answer is what the plugin checks: `success` (never null) and `count`, the number of lines
accepted, new and already-known DOIs alike, so resending a day's payload is harmless and a
clean payload's count equals the articles sent; `errors` names each refused line. Titles and
dates are not stored from here: the plugin mangles titles, and the upstreams' metadata fills
both once the works are fetched.
"""

from __future__ import annotations

from aiohttp import web

from services.api.errors import BadParameter
from services.api.params import read_form
from services.api.state import BUS, CLOCK, SCHEDULING, STORE
from services.core.deposits import MAX_LINES, parse_payload
from services.registration import register_parsed

FIELDS = ("api_key", "payload")  # what the plugin's ArticleInfoSender posts


async def ojs(request: web.Request) -> web.Response:
    """Register the DOIs of an OJS deposit; report the lines that are not articles."""
    form = await read_form(request, FIELDS)
    payload = form.get("payload")
    if payload is None or not payload.strip():
        raise BadParameter(
            "form field 'payload' is missing or empty: one 'DOI YYYY-MM-DD Title' a line"
        )
    accepted, refused = parse_payload(payload)
    if len(accepted) + len(refused) > MAX_LINES:
        raise BadParameter(f"a deposit takes at most {MAX_LINES} lines")
    app = request.app
    parsed = [(d.doi.value, d.doi, None) for d in accepted]
    results = await register_parsed(parsed, app[STORE], app[BUS], app[CLOCK](), app[SCHEDULING])
    created = sum(1 for r in results if r.created)
    known = sum(1 for r in results if r.error is None and not r.created)
    errors = [r.to_dict() for r in refused]
    errors += [
        {"line": d.line, "text": r.input, "error": r.error}
        for d, r in zip(accepted, results, strict=True)
        if r.error is not None
    ]
    return web.json_response(
        {
            "success": f"{created} new works registered, {known} already known",
            "count": created + known,
            "errors": sorted(errors, key=lambda e: int(str(e["line"]))),
        }
    )
