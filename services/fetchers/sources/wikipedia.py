"""Wikipedia: pages citing the work, found with MediaWiki search `insource:"DOI"` per language.

One search per work and language (`config.extra["languages"]`, default en,de,fr,es,ja), paged
with the `continue` object. One event per page, deduplicated by language and page id (by title
when a hit has no pageid: formatversion 1 answers and `srprop` without it omit it); the total is
the number of distinct pages, which can be fewer than `totalhits` when the results shift while
paging. Both formatversion 1 (`batchcomplete: ""`) and 2 (`batchcomplete: true`) answers are
read. MediaWiki reports errors (`ratelimited`, `maxlag`) in HTTP 200.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import quote

from services.core.events import FetchError, SourceEvent
from services.core.metrics import Group, MetricSpec
from services.core.works import WorkRef
from services.fetchers.base import (
    Failed,
    Found,
    Limits,
    NotFound,
    ParseResult,
    Source,
    SourceConfig,
    UpstreamRequest,
    UpstreamResponse,
    expect,
    json_payload,
)
from services.fetchers.csl import csl_item
from services.fetchers.stub import (
    SYNTHETIC_PREFIX,
    StubAnswer,
    StubRequest,
    StubUpstream,
    synthetic_count,
)

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


class WikipediaStub(StubUpstream):
    """Answers `/<lang>.wikipedia.org/w/api.php` search like MediaWiki (formatversion=2).

    Records are `records/<lang>/<doi with / as _>.json`: a search response holding every hit;
    the stub pages through it `page_size` hits at a time with a `continue` object.
    """

    page_size = 500

    def __init__(self, fixtures: Path, synthetic: bool = False) -> None:
        super().__init__(fixtures, synthetic)
        for path in sorted((fixtures / "records").glob("*/*.json")):
            doi = path.stem.replace("_", "/", 1).lower()
            self.records[f"{path.parent.name}:{doi}"] = json.loads(path.read_text())

    def record_doi(self, record: Any) -> str | None:
        """Records are keyed by their path instead (search answers do not name the DOI)."""
        return None

    def synthesize(self, doi: str) -> Any:
        """Zero to two synthetic pages for about a third of the works (`doi` is `lang:doi`)."""
        n = synthetic_count(doi, "wikipedia", 9)
        hits = [
            {
                "ns": 0,
                "title": f"Synthetic {i}",
                "pageid": 1000 + i,
                "timestamp": "2025-01-01T00:00:00Z",
            }
            for i in range(n if n < 3 else 0)
        ]
        return {
            "batchcomplete": True,
            "query": {"searchinfo": {"totalhits": len(hits)}, "search": hits},
        }

    def answer(self, request: StubRequest) -> StubAnswer:
        """A page of hits for `insource:"DOI"`, with `continue` while more remain."""
        lang = request.path.split(".", 1)[0].lstrip("/")
        query = request.param("srsearch")
        if not request.path.endswith("/w/api.php") or not query.startswith('insource:"'):
            return StubAnswer.json({"error": {"code": "badvalue", "info": "Unrecognized value"}})
        doi = query[len('insource:"') : -1]
        error = self.error_for(doi)
        if error is not None:
            return error
        key = f"{lang}:{doi.lower()}"
        record = self.records.get(key)
        if record is None and self.synthetic and doi.lower().startswith(SYNTHETIC_PREFIX):
            record = self.synthesize(key)
        hits = list((record or {}).get("query", {}).get("search", []))
        offset = int(request.param("sroffset", "0"))
        size = min(int(request.param("srlimit", "10")), self.page_size)
        page: dict[str, Any] = {"batchcomplete": True}
        if offset + size < len(hits):
            page["continue"] = {"sroffset": offset + size, "continue": "-||"}
        page["query"] = {
            "searchinfo": {"totalhits": len(hits)},
            "search": hits[offset : offset + size],
        }
        return StubAnswer.json(page)


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
    stub = WikipediaStub

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
