"""`GET /api/v1/failures?source=&order=&per_page=&cursor=` (admin): the works whose last refresh
from a source failed, with the error, when and the due entry's attempt; newest failure first
(`order=newest`, the default) or by work id (`order=work`), a page at a time: `next` carries the
cursor of the following page (keyset paging over the store's listing,
services/core/failed_refreshes.py). The HTML page of the same listing is failures_page.py."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from aiohttp import web

from services.api.errors import BadParameter
from services.api.params import choice_param, int_param
from services.api.state import CATALOG, STORE
from services.core.catalog import Catalog
from services.core.failed_refreshes import (
    FailedRefresh,
    FailureCursor,
    FailureOrder,
    FailureQuery,
    cursor_of,
)

MAX_PER_PAGE = 1000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
CURSOR = re.compile(r"(-|[0-9]{1,20})\.([a-z0-9_]{1,64})\.([\s\S]{1,600})")


async def list_failures(request: web.Request) -> web.Response:
    """A page of failed refreshes matching the filters."""
    page = await failure_page(request)
    following = page.next_query and f"/api/v1/failures?{page.next_query}"
    return web.json_response(
        {
            "data": [f.to_dict() for f in page.failures],
            "order": page.order.value,
            "per_page": page.per_page,
            "next": following,
        }
    )


@dataclass(frozen=True, slots=True)
class FailurePage:
    """One page: its failures, order and size, and the query string of the next page (the
    request's own filters with the cursor after the last row; None on the last page)."""

    failures: list[FailedRefresh]
    order: FailureOrder
    per_page: int
    next_query: str | None


async def failure_page(request: web.Request) -> FailurePage:
    """The page a request's `source`, `order`, `per_page` and `cursor` ask for (BadParameter
    for a bad one)."""
    catalog: Catalog = request.app[CATALOG]
    source = choice_param(request, "source", catalog)
    order = FailureOrder(choice_param(request, "order", list(FailureOrder)) or "newest")
    per_page = int_param(request, "per_page", 100, 1, MAX_PER_PAGE)
    after = parse_cursor(request.query.get("cursor"), order)
    query = FailureQuery(order, source, per_page + 1, after)
    found = await request.app[STORE].failed_refreshes(query)
    page = found[:per_page]
    if len(found) <= per_page:
        return FailurePage(page, order, per_page, None)
    params = {k: v for k, v in request.query.items() if k != "cursor"}
    params["cursor"] = format_cursor(cursor_of(page[-1], order))
    return FailurePage(page, order, per_page, urlencode(params))


def format_cursor(cursor: FailureCursor) -> str:
    """`<failure time in microseconds, or ->.<source>.<work id>`."""
    at = cursor.failed_at
    stamp = "-" if at is None else str((at - EPOCH) // timedelta(microseconds=1))
    return f"{stamp}.{cursor.source}.{cursor.work_id}"


def parse_cursor(raw: str | None, order: FailureOrder) -> FailureCursor | None:
    """The position a cursor stands for (BadParameter if it is not a cursor at all). A cursor
    of the other order (a link kept while `order` was changed) is read in this one: by work
    id its time does not count; newest first, one without a time starts from the first page."""
    if raw is None:
        return None
    found = CURSOR.fullmatch(raw)
    try:
        if found is None:
            raise ValueError(raw)
        stamp, source, work_id = found.groups()
        if order is FailureOrder.WORK:
            stamp = "-"
        elif stamp == "-":
            return None
        at = None if stamp == "-" else EPOCH + timedelta(microseconds=int(stamp))
    except (ValueError, OverflowError):
        raise BadParameter(
            "parameter 'cursor' must be a cursor a page's `next` gave in the same order"
            " (<microseconds or ->.<source>.<work id>)"
        ) from None
    return FailureCursor(at, work_id, source)
