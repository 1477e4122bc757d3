"""`GET /api/v1/alerts?kind=&source=&since=&per_page=&cursor=` (admin): stored data-quality
alerts, newest day first (then by kind, source and work), a page at a time; `next` carries the
cursor of the following page (keyset paging: as cheap on the last page as on the first)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from urllib.parse import urlencode

from aiohttp import web

from services.api.errors import BadParameter
from services.api.params import choice_param, int_param
from services.api.state import ALERTS, ALERTS_TTL, CATALOG, CLOCK
from services.core.alerts import Alert, AlertKind, AlertQuery, parse_since
from services.core.catalog import Catalog
from services.core.text import shown

MAX_PER_PAGE = 1000
CURSOR = re.compile(r"([1-9][0-9]{0,5})\.([a-z_]{0,40})\.([a-z0-9_]{0,64})\.([\s\S]{0,600})")


async def list_alerts(request: web.Request) -> web.Response:
    """A page of stored alerts matching the filters."""
    page = await alert_page(request)
    following = page.next_query and f"/api/v1/alerts?{page.next_query}"
    return web.json_response(
        {"data": [a.to_dict() for a in page.alerts], "per_page": page.per_page, "next": following}
    )


@dataclass(frozen=True, slots=True)
class AlertPage:
    """One page of the listing: its alerts, its size, and the query string of the next page
    (the request's own filters with the cursor after the last alert; None on the last page)."""

    alerts: list[Alert]
    per_page: int
    next_query: str | None


async def alert_page(request: web.Request) -> AlertPage:
    """The page of alerts a request's `kind`, `source`, `since`, `per_page` and `cursor` ask
    for (admin only: a 403 otherwise; BadParameter for a bad parameter)."""
    kind = choice_param(request, "kind", [k.value for k in AlertKind])
    catalog: Catalog = request.app[CATALOG]
    source = choice_param(request, "source", catalog)
    per_page = int_param(request, "per_page", 100, 1, MAX_PER_PAGE)
    since = _since(request)
    after = _cursor(request.query.get("cursor"))
    query = AlertQuery(since, AlertKind(kind) if kind else None, source, per_page + 1, after)
    found = await request.app[ALERTS].alerts(query)
    page = found[:per_page]
    if len(found) <= per_page:
        return AlertPage(page, per_page, None)
    params = {k: v for k, v in request.query.items() if k != "cursor"}
    params["cursor"] = cursor_of(page[-1].key)
    return AlertPage(page, per_page, urlencode(params))


def _since(request: web.Request) -> datetime:
    """`since` (a date or a timestamp), by default as far back as alerts are kept."""
    raw = request.query.get("since")
    if raw is None:
        return request.app[CLOCK]() - request.app[ALERTS_TTL]
    try:
        return parse_since(raw)
    except ValueError:
        raise BadParameter(
            f"parameter 'since' must be a date (YYYY-MM-DD) or an ISO 8601 timestamp,"
            f" got {shown(raw, 40)!r}"
        ) from None


def cursor_of(key: tuple[date, str, str, str]) -> str:
    """The cursor of the alert with this key: `<day ordinal>.<kind>.<source>.<work>` (every
    string of that shape is a position in the listing order, so any is accepted)."""
    day, kind, source, work = key
    return f"{day.toordinal()}.{kind}.{source}.{work}"


def _cursor(raw: str | None) -> tuple[date, str, str, str] | None:
    """The key a cursor stands for (BadParameter if it is not of a cursor's shape)."""
    if raw is None:
        return None
    found = CURSOR.fullmatch(raw)
    if found is None:
        raise BadParameter(
            "parameter 'cursor' must be a cursor a page's `next` gave"
            " (<day number>.<kind>.<source>.<work>)"
        )
    day, kind, source, work = found.groups()
    return date.fromordinal(int(day)), kind, source, work
