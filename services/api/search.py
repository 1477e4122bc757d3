"""`GET /api/v1/works?q=`: searching works by title and publisher words, or by an identifier
(services/core/search.py says which), a keyset page at a time, with the list's publisher filter
(`publisher_id`) and a source filter (`source`: works with a non-zero count from it).
A query of more than MAX_WORDS words asks the index for the longest and checks the others on
what it gives (a pasted title finds its work).

A page costs a bounded amount however deep: the store reads its index after the cursor; with
`source` or more than MAX_WORDS words, at most SCAN_ROUNDS reads of the index, each asking for
what the page still lacks, so a page may hold fewer than `per_page` works (and still have a
`next_cursor`) when few matches pass. The site's search page (services/site/search.py) shows
the same pages.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from services.api import publishers, search_sort
from services.api.errors import BadParameter
from services.api.params import choice_param, cursor_param, query_of
from services.api.present import present_work
from services.api.state import CATALOG, STORE
from services.core.aggregation import SourceState
from services.core.catalog import Catalog
from services.core.search import InvalidQuery, SearchQuery, parse_query, split_words, terms
from services.core.works import Work

SCAN_ROUNDS = 5  # index reads one page may make with a source filter


@dataclass(frozen=True, slots=True)
class Found:
    """A page of search results: the works with their states, and the next page's cursor."""

    query: str
    works: list[Work]
    states: dict[str, list[SourceState]]
    next_cursor: str | None
    by_identifier: bool = False  # the query was an identifier, and these are its work


def counted_by(states: list[SourceState], source: str) -> bool:
    """Whether `source` has a non-zero count for the work."""
    return any(s.source == source and any(v > 0 for v in s.metrics.values()) for s in states)


async def search(request: web.Request, per_page: int) -> Found:
    """The page `q`, `cursor`, `publisher_id` and `source` ask for; BadParameter naming what is
    wrong with them."""
    raw = query_of(request).get("q", "")
    try:
        query = parse_query(raw)
    except InvalidQuery as exc:
        raise BadParameter(f"parameter 'q': {exc}") from exc
    after = cursor_param(request)
    member = publishers.publisher_id(request)
    source, order = check_params(request)
    store = request.app[STORE]
    if query.ident is not None:
        found = await store.find_works([query.ident])
        if found or not query.words:
            works = [] if after is not None else list(found.values())
            works = [w for w in works if member in (None, w.publisher_id)]
            states = await store.states_for([w.work_id for w in works])
            works = [w for w in works if source is None or counted_by(states[w.work_id], source)]
            return Found(raw, works, states, None, by_identifier=bool(works))
    try:
        if order is not None:
            return await _sorted(request, raw, query, order, after, per_page, member, source)
        return await _by_words(request, raw, query, after, per_page, member, source)
    except InvalidQuery as exc:
        raise BadParameter(f"parameter 'cursor': {exc}") from exc


def check_params(request: web.Request) -> tuple[str | None, str | None]:
    """`source` (a source's name) and `sort` (a source's or a group's), or BadParameter."""
    catalog: Catalog = request.app[CATALOG]
    source = choice_param(request, "source", catalog)
    return source, choice_param(request, "sort", search_sort.orders(catalog))


async def _sorted(
    request: web.Request,
    raw: str,
    query: SearchQuery,
    order: str,
    after: str | None,
    per_page: int,
    member: str | None,
    source: str | None,
) -> Found:
    store = request.app[STORE]
    asked, rest = split_words(query.words)

    async def read(cursor: str | None, limit: int) -> tuple[list[Work], str | None]:
        return await store.search_works(asked, cursor, limit, member)

    def keep(work: Work, states: list[SourceState]) -> bool:
        return rest <= terms(work) and (source is None or counted_by(states, source))

    works, states, next_cursor = await search_sort.sorted_page(
        request.app[CATALOG], order, read, store.states_for, keep, after, per_page
    )
    return Found(raw, works, states, next_cursor)


async def _by_words(
    request: web.Request,
    raw: str,
    query: SearchQuery,
    after: str | None,
    per_page: int,
    member: str | None,
    source: str | None,
) -> Found:
    store = request.app[STORE]
    works: list[Work] = []
    states: dict[str, list[SourceState]] = {}
    cursor = after
    asked, rest = split_words(query.words)
    for _ in range(SCAN_ROUNDS if source or rest else 1):
        batch, cursor = await store.search_works(asked, cursor, per_page - len(works), member)
        batch = [w for w in batch if rest <= terms(w)]
        got = await store.states_for([w.work_id for w in batch])
        kept = [w for w in batch if source is None or counted_by(got[w.work_id], source)]
        works += kept
        states.update((w.work_id, got[w.work_id]) for w in kept)
        if cursor is None or len(works) == per_page:
            break
    return Found(raw, works, states, cursor)


async def search_works(request: web.Request, per_page: int) -> web.Response:
    """`GET /api/v1/works?q=`: a page of matching works, with the next page's cursor."""
    found = await search(request, per_page)
    catalog = request.app[CATALOG]
    return web.json_response(
        {
            "query": found.query,
            "per_page": per_page,
            "next_cursor": found.next_cursor,
            "data": [present_work(catalog, w, found.states[w.work_id]) for w in found.works],
        }
    )
