"""The publisher filters of the work listings: `GET /api/v1/works?publisher_id=` and ALM v5's
`/api/v5/articles?publisher_id=` / `publisher=` (a member id or a publisher's name)."""

from __future__ import annotations

import re

from aiohttp import web

from services.api.errors import BadParameter
from services.api.params import query_of
from services.api.present import present_work
from services.api.state import CATALOG, PUBLISHERS, STORE, TOTALS
from services.core.text import shown
from services.core.works import Work

_MEMBER = re.compile(r"[1-9][0-9]{0,9}")
MAX_NAME = 500  # characters of v5's `publisher=` (a name or a member id)


def publisher_id(request: web.Request) -> str | None:
    """The `publisher_id` query parameter (a Crossref member id), None when absent."""
    raw = query_of(request).get("publisher_id")
    if raw is not None and not _MEMBER.fullmatch(raw):
        raise BadParameter(
            f"parameter 'publisher_id' must be a Crossref member id such as 340, "
            f"got {shown(raw, 40)!r}"
        )
    return raw


NO_PUBLISHER = "0"  # no Crossref member has id 0: the filter that matches no work


async def publisher_of(request: web.Request) -> str | None:
    """v5's publisher filter: `publisher_id`, or `publisher` (a member id, or the name or another
    name of a known publisher, in any case). Filters narrow, like v5's: a name no publisher has,
    or two that name different publishers, match no work (`NO_PUBLISHER`), an empty page."""
    by_id = publisher_id(request)
    raw = query_of(request).get("publisher")
    if raw is None:
        return by_id
    if not raw or len(raw) > MAX_NAME:
        raise BadParameter(
            f"parameter 'publisher' must be a member id or a name of 1 to {MAX_NAME} characters, "
            f"got {len(raw)} characters"
        )
    if _MEMBER.fullmatch(raw):
        named = raw
    else:
        known = await request.app[PUBLISHERS].list_publishers()
        named = next((p.member_id for p in known if p.named(raw)), NO_PUBLISHER)
    if by_id is not None and by_id != named:
        return NO_PUBLISHER
    return named


async def works_of(
    request: web.Request, member_id: str, page: int, per_page: int
) -> tuple[list[Work], int]:
    """A page of the publisher's works and how many it has (the count at most
    ALM_STATUS_CACHE_SECONDS old, like the listing's total)."""
    works = await request.app[PUBLISHERS].publisher_works(
        member_id, (page - 1) * per_page, per_page
    )
    return works, await _total(request, member_id)


async def works_after(
    request: web.Request, member_id: str, after: str | None, per_page: int
) -> tuple[list[Work], str | None, int]:
    """A keyset page of the publisher's works after the work id `after`, the cursor of the
    next page (None at the end) and how many works the publisher has."""
    store = request.app[PUBLISHERS]
    works, next_cursor = await store.publisher_works_after(member_id, after, per_page)
    return works, next_cursor, await _total(request, member_id)


async def _total(request: web.Request, member_id: str) -> int:
    """How many works the publisher has (at most ALM_STATUS_CACHE_SECONDS old)."""

    async def count() -> int:
        return await request.app[PUBLISHERS].count_publisher_works(member_id)

    return int(await request.app[TOTALS].get(f"publisher:{member_id}", count))


async def list_works(
    request: web.Request, member_id: str, page: int, per_page: int
) -> web.Response:
    """`GET /api/v1/works?publisher_id=`: a page of the publisher's works with their totals."""
    works, total = await works_of(request, member_id, page, per_page)
    states = await request.app[STORE].states_for([w.work_id for w in works])
    return web.json_response(
        {
            "total": total,
            "page": page,
            "per_page": per_page,
            "total_pages": (total + per_page - 1) // per_page,
            "data": [present_work(request.app[CATALOG], w, states[w.work_id]) for w in works],
        }
    )
