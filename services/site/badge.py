"""`/badge/{id}.svg`: a work's counts per group as a small SVG badge for other sites' pages
(an `<img>`: no script, no font or anything else fetched), e.g. `ALM | cited 12 | viewed 340`.

Groups with a count are shown in ALM's order; a work without any yet says so. The SVG of a
work is kept for CACHE_SECONDS in this replica and sent with `Cache-Control: public` for as
long, and an `ETag` (a repeat with `If-None-Match` is a 304). An unknown or wrong id is a badge
too (404, 400), so an embedding page shows why instead of a broken image."""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence

from aiohttp import web

from services.api.errors import NotFound
from services.api.lookup import find
from services.api.present import figures
from services.api.state import CATALOG, STORE
from services.core.identifiers import InvalidIdentifier
from services.core.metrics import Group
from services.site.html import text

CACHE_SECONDS = 300
MAX_ENTRIES = 10_000
ORDER = (Group.CITED, Group.VIEWED, Group.DISCUSSED, Group.SAVED, Group.RECOMMENDED)
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
}
# average advance of Verdana/DejaVu Sans at 11 px, per character class (no font is measured)
_NARROW, _WIDE = set("fijlrt.,:;|!' "), set("mwMW@%")


def text_width(value: str) -> int:
    """About how many pixels `value` takes at 11 px in a sans-serif font."""
    return round(sum(3.5 if c in _NARROW else 10.0 if c in _WIDE else 7.0 for c in value))


def render(label: str, parts: Sequence[str], title: str) -> str:
    """A flat badge: a grey `label` box, then one box per part; `title` is its accessible
    name. Every string is escaped here."""
    boxes = [(label, "#555")] + [
        (p, "#0b5cad" if i % 2 == 0 else "#1a73c9") for i, p in enumerate(parts)
    ]
    x, rects, texts = 0, [], []
    for value, colour in boxes:
        width = text_width(value) + 12
        rects.append(f'<rect x="{x}" width="{width}" height="20" fill="{colour}"/>')
        texts.append(f'<text x="{x + width / 2:g}" y="14">{text(value)}</text>')
        x += width
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{x}" height="20" role="img" '
        f'aria-label="{text(title)}"><title>{text(title)}</title>'
        f'<g shape-rendering="crispEdges">{"".join(rects)}</g>'
        '<g fill="#fff" text-anchor="middle" font-family="Verdana,DejaVu Sans,sans-serif" '
        f'font-size="11">{"".join(texts)}</g></svg>'
    )


class BadgeCache:
    """Rendered badges by work id for `ttl` seconds, at most MAX_ENTRIES, oldest dropped."""

    def __init__(self, ttl: float = CACHE_SECONDS, clock: Callable[[], float] = time.monotonic):
        self.ttl = ttl
        self._clock = clock
        self._entries: OrderedDict[str, tuple[bytes, str, float]] = OrderedDict()

    def get(self, work_id: str) -> tuple[bytes, str] | None:
        entry = self._entries.get(work_id)
        if entry is None or self._clock() >= entry[2]:
            return None
        return entry[0], entry[1]

    def put(self, work_id: str, svg: bytes) -> str:
        etag = '"' + hashlib.sha256(svg).hexdigest()[:20] + '"'
        self._entries.pop(work_id, None)
        self._entries[work_id] = (svg, etag, self._clock() + self.ttl)
        while len(self._entries) > MAX_ENTRIES:
            self._entries.popitem(last=False)
        return etag


BADGES = web.AppKey("badges", BadgeCache)


def _answer(request: web.Request, svg: bytes, etag: str, status: int = 200) -> web.Response:
    headers = {**_HEADERS, "ETag": etag}
    if status == 200:
        headers["Cache-Control"] = f"public, max-age={CACHE_SECONDS}"
        if etag in request.headers.get("If-None-Match", ""):
            return web.Response(status=304, headers=headers)
    else:
        headers["Cache-Control"] = "no-store"
    return web.Response(body=svg, status=status, content_type="image/svg+xml", headers=headers)


async def badge(request: web.Request) -> web.Response:
    """`GET /badge/{id}.svg`: the work's badge (see the module's docstring)."""
    cache = request.app[BADGES]
    try:
        work = await find(request, request.match_info["id"])
    except InvalidIdentifier:
        svg = render("ALM", ["not a DOI, PMID or PMCID"], "ALM: not a work identifier").encode()
        return _answer(request, svg, '"invalid"', 400)
    except NotFound:
        svg = render("ALM", ["unknown work"], "ALM: no such work here").encode()
        return _answer(request, svg, '"unknown"', 404)
    cached = cache.get(work.work_id)
    if cached is None:
        states = (await request.app[STORE].states_for([work.work_id]))[work.work_id]
        groups = figures(request.app[CATALOG], states)
        parts = [f"{g.value} {groups[g.value]:,}" for g in ORDER if groups[g.value]]
        title = "ALM: " + (", ".join(parts) if parts else "no metrics yet")
        svg = render("ALM", parts or ["no metrics yet"], title).encode()
        cached = svg, cache.put(work.work_id, svg)
    return _answer(request, *cached)
