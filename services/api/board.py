"""`GET /api/v1/sources/{name}/top`: a source's leaderboard, its works by its counting metric,
most first, a page at a time (the page `/sources/{name}`, services/site/board.py, shows the
same rows).

Pages follow a keyset cursor, never an offset: the cursor names the last row shown (its value,
work id and rank), and the next page is the store's `top_works(..., after=(value, work id))`,
a range of the board's index, as cheap at page 1,000 as at page 1. Only counted works (a value
above zero) are listed: the board ends at the first zero."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from aiohttp import web

from services.api.errors import BadParameter, NotFound
from services.api.params import int_param
from services.api.state import CATALOG, STORE
from services.core.catalog import SourceInfo
from services.core.works import Work

PER_PAGE, MAX_PER_PAGE = 25, 100
MAX_CURSOR = 600  # characters: a work id of up to ~400 with its value and rank, encoded


@dataclass(frozen=True, slots=True)
class Position:
    """Where a page ends: the last row's value, work id and rank (1 = the top)."""

    value: int
    work_id: str
    rank: int


# `<value>.<rank>.<work id>`: any text of this shape is a position (the OpenAPI document's
# pattern is the same), so a cursor is checked by its shape alone; 18 digits keep the value in
# a 64-bit column
CURSOR = re.compile(r"([1-9][0-9]{0,17})\.([1-9][0-9]{0,8})\.(.+)", re.DOTALL)


def encode(at: Position) -> str:
    """The cursor of a page's end: `<value>.<rank>.<work id>` (to be URL-quoted in a link)."""
    return f"{at.value}.{at.rank}.{at.work_id}"


def decode(cursor: str) -> Position:
    """The position a cursor names; text not of a cursor's shape is a BadParameter."""
    found = CURSOR.fullmatch(cursor) if len(cursor) <= MAX_CURSOR else None
    if found is None:
        raise BadParameter(
            "parameter 'cursor' must be a page's next_cursor (<value>.<rank>.<work id>)"
        )
    return Position(int(found[1]), found[3], int(found[2]))


@dataclass(frozen=True, slots=True)
class Board:
    """One page of a source's leaderboard."""

    source: SourceInfo
    rows: list[tuple[int, Work | None, str, int]]  # rank, work (None: gone), work id, value
    next: Position | None

    def json(self, per_page: int) -> dict[str, Any]:
        """The page as `/api/v1/sources/{name}/top` answers it."""
        following = encode(self.next) if self.next else None
        return {
            "source": self.source.name,
            "display_name": self.source.display_name,
            "metric": self.source.counting_metric,
            "data": [
                {
                    "rank": rank,
                    "id": work_id,
                    "doi": work.doi if work else None,
                    "title": work.title if work else None,
                    "value": value,
                }
                for rank, work, work_id, value in self.rows
            ],
            "next_cursor": following,
            "next": api_path(self.source.name, following, per_page) if following else None,
        }


def api_path(name: str, cursor: str | None, per_page: int = PER_PAGE) -> str:
    """The JSON of a page (the first without a cursor)."""
    query = [f"cursor={quote(cursor, safe='')}"] if cursor else []
    if per_page != PER_PAGE:
        query.append(f"per_page={per_page}")
    path = f"/api/v1/sources/{quote(name, safe='')}/top"
    return path + ("?" + "&".join(query) if query else "")


async def read_board(request: web.Request, per_page: int) -> Board:
    """The page the request's `{name}` and `cursor` name (NotFound: no such source)."""
    name = request.match_info["name"]
    source = request.app[CATALOG].get(name)
    if source is None:
        raise NotFound(f"no source named {name!r}")
    raw = request.query.get("cursor")
    at = decode(raw) if raw else None
    store = request.app[STORE]
    after = (at.value, at.work_id) if at else None
    # one more row than shown: whether a next page exists, without an empty last page
    top = await store.top_works(name, source.counting_metric, per_page + 1, after)
    counted = [(w, v) for w, v in top if v > 0]
    shown = counted[:per_page]
    works = await store.get_works([w for w, _ in shown])
    first = at.rank + 1 if at else 1
    rows = [(first + n, works.get(w), w, v) for n, (w, v) in enumerate(shown)]
    more = len(counted) > per_page
    last = rows[-1] if rows else None
    following = Position(last[3], last[2], last[0]) if more and last else None
    return Board(source, rows, following)


async def top_json(request: web.Request) -> web.Response:
    """`GET /api/v1/sources/{name}/top?cursor=&per_page=`: a page of the leaderboard."""
    per_page = int_param(request, "per_page", PER_PAGE, 1, MAX_PER_PAGE)
    board = await read_board(request, per_page)
    return web.json_response(board.json(per_page))
