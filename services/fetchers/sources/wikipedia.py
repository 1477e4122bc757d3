"""Wikipedia: pages citing the work, found with MediaWiki search `insource:"DOI"` per language.

One search per work and language (`config.extra["languages"]`, default en,de,fr,es,ja), paged
with the `continue` object. One event per page, deduplicated by language and page id (by title
when a hit has no pageid: formatversion 1 answers and `srprop` without it omit it); the total is
the number of distinct pages, which can be fewer than `totalhits` when the results shift while
paging. Both formatversion 1 (`batchcomplete: ""`) and 2 (`batchcomplete: true`) answers are
read. MediaWiki reports errors (`ratelimited`, `maxlag`) in HTTP 200.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import quote

from services.core.events import FetchError, SourceEvent
from services.core.metrics import Group, MetricSpec
from services.core.sources import SourceConfig
from services.core.works import WorkRef
from services.fetchers.base import (
    Failed,
    Found,
    Limits,
    NotFound,
    ParseResult,
    Source,
    UpstreamRequest,
    UpstreamResponse,
    expect,
    json_payload,
)
from services.fetchers.csl import csl_item

DEFAULT_LANGUAGES = ("en", "de", "fr", "es", "ja")
PAGE = 100  # srlimit


def languages(config: SourceConfig) -> tuple[str, ...]:
    """The Wikipedia language editions to search (`extra["languages"]`, comma-separated)."""
    raw = config.extra.get("languages", "")
    chosen = tuple(x.strip().lower() for x in raw.split(",") if x.strip().isalpha())
    return chosen or DEFAULT_LANGUAGES


def mediawiki_error(payload: dict[str, Any], name: str) -> Failed | None:
    """A Failed for MediaWiki's `{"error": {"code", "info"}}` (sent with HTTP 200), else None."""
    error = payload.get("error")
    if not isinstance(error, dict):
        return None
    code = str(error.get("code", "unknown"))
    kind = "rate_limited" if code in ("ratelimited", "maxlag") else "http"
    return Failed(FetchError(kind, f"{name} API error {code}: {error.get('info', '')}"[:300]))


class Wikipedia(Source):
    """Wikipedia: articles in several language editions that cite the work."""

    name = "wikipedia"
    display_name = "Wikipedia"
    group = Group.DISCUSSED
    metrics = (MetricSpec("pages", Group.DISCUSSED, description="distinct pages citing the DOI"),)
    base_url = "https://en.wikipedia.org/w"
    batch_size = 1  # a search cannot tell which of several ORed DOIs a page cites
    limits = Limits(requests_per_second=5.0, concurrency=1)  # serial calls, per API:Etiquette
    auth = "none; descriptive User-Agent with contact address (mandatory)"
    description = "Wikipedia pages (several languages) citing the work."

    def requests(self, works: Sequence[WorkRef], config: SourceConfig) -> list[UpstreamRequest]:
        """A search per work and language."""
        return [_search(w, lang, 0) for w in works for lang in languages(config)]

    def parse(self, request: UpstreamRequest, response: UpstreamResponse) -> ParseResult:
        """Events for the hits; a `continue` object asks for the next page."""
        work = request.works[0]
        lang = request.context["lang"]
        payload = json_payload(response)
        expect(isinstance(payload, dict), "response is not a JSON object")
        failed = mediawiki_error(payload, "MediaWiki")
        if failed is not None:
            return ParseResult({work.work_id: failed})
        query = payload.get("query")
        expect(isinstance(query, dict), "no 'query' object")
        hits = query.get("search")
        expect(isinstance(hits, list), "'query.search' is not a list")
        events = tuple(_event(lang, hit) for hit in hits)
        more: tuple[UpstreamRequest, ...] = ()
        cont = payload.get("continue")
        if isinstance(cont, dict) and "sroffset" in cont and hits:
            more = (_search(work, lang, int(cont["sroffset"])),)
        if not events and not more:
            return ParseResult({work.work_id: NotFound(f"no {lang} page")})
        return ParseResult({work.work_id: Found({}, events=events)}, more)

    def complete(self, found: Found) -> Found:
        """One event per page (language and page id); the total counts distinct pages."""
        unique = {e.event_id: e for e in found.events}
        return replace(found, metrics={"pages": len(unique)}, events=tuple(unique.values()))


def _search(work: WorkRef, lang: str, offset: int) -> UpstreamRequest:
    params = (
        ("action", "query"),
        ("list", "search"),
        ("srsearch", f'insource:"{work.doi}"'),
        ("srnamespace", "0"),
        ("srinfo", "totalhits"),
        ("srprop", "timestamp"),
        ("srlimit", str(PAGE)),
        ("sroffset", str(offset)),
        ("maxlag", "5"),
        ("format", "json"),
        ("formatversion", "2"),
    )
    host = f"https://{lang}.wikipedia.org/w"
    return UpstreamRequest("/api.php", (work,), params, host=host, context={"lang": lang})


def _event(lang: str, hit: Any) -> SourceEvent:
    """One page: identified by its page id, else by its title (unique within a wiki)."""
    expect(isinstance(hit, dict), "a search hit is not an object")
    title = hit.get("title")
    pageid = hit.get("pageid")
    has_title = isinstance(title, str) and bool(title.strip())
    expect(has_title or isinstance(pageid, int), "a search hit without pageid or title")
    title = str(title).strip() if has_title else ""
    event_id = f"{lang}:{pageid}" if isinstance(pageid, int) else f"{lang}:title:{title}"
    site = f"https://{lang}.wikipedia.org"
    url = f"{site}/wiki/{quote(title.replace(' ', '_'))}" if title else f"{site}/?curid={pageid}"
    when = hit.get("timestamp")
    csl = csl_item(
        title=title,
        container=f"Wikipedia ({lang})",
        issued=when,
        url=url,
        kind="entry-encyclopedia",
    )
    return SourceEvent(event_id, str(when) if when else None, url, csl)
