"""`GET /api/v1/works.csv`: the stored metrics of every work (or of one publisher's, or of the
works named by `ids`) as CSV, streamed a chunk of works at a time (services/api/csv_export.py
builds the rows).

The works are walked in work-id order with the store's keyset pages, as `GET /api/v1/works?
cursor=` does, EXPORT_CHUNK works at a time, each chunk's states read and written before the
next is read: memory stays flat however many works there are. Every parameter is checked, and
the first chunk read, before the response starts, so a bad parameter is the JSON 400 and a store
that is down the JSON 503 every route answers. Once the CSV has started no error can follow it:
a store failing mid-walk aborts the connection, so that the client sees a truncated transfer,
never a short file that looks complete; a client that goes away ends the walk at its next write.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import structlog
from aiohttp import web

from services.api import publishers
from services.api.csv_export import HEADER, RowFilter, encode, work_rows
from services.api.errors import STORE_CALLS, lift_deadline
from services.api.lookup import find_named
from services.api.params import choice_param, cursor_param, ids_param, query_of
from services.api.state import CATALOG, EXPORT_CHUNK, PUBLISHERS, STORE, STORE_TIMEOUT
from services.core.identifiers import Identifier
from services.core.works import Work

log = structlog.get_logger("alm.api")

HEADERS = {
    "Content-Type": "text/csv; charset=utf-8",
    "Content-Disposition": 'attachment; filename="alm-works.csv"',
    "X-Accel-Buffering": "no",  # nginx: pass the chunks on as they come
}
CHUNK = 500  # works whose states are read and written at a time (EXPORT_CHUNK's default)
WRITE_TIMEOUT = 30.0  # seconds a write may wait for a client that stopped reading


@dataclass(frozen=True, slots=True)
class Selection:
    """Which works are exported (`ids`, else a publisher's or all, after `after`) and which
    of their rows."""

    only: RowFilter
    member_id: str | None
    after: str | None
    ids: tuple[Identifier, ...] | None


def selection(request: web.Request) -> Selection:
    """The export's parameters, each checked (BadParameter, a JSON 400, names a bad one)."""
    catalog = request.app[CATALOG]
    source = choice_param(request, "source", catalog)
    metric = choice_param(
        request, "metric", {m.name for source in catalog.values() for m in source.metrics}
    )
    member_id = publishers.publisher_id(request)
    after = cursor_param(request)
    ids = tuple(i for _, i in ids_param(request)) if "ids" in query_of(request) else None
    return Selection(RowFilter(source, metric), member_id, after, ids)


class Walk:
    """The selected works, a chunk at a time, in work-id order (the `ids` in their order)."""

    def __init__(self, request: web.Request, chosen: Selection, size: int) -> None:
        self.app = request.app
        self.chosen = chosen
        self.size = size
        self.after = chosen.after
        self.done = False

    async def next_chunk(self) -> list[Work]:
        """The next chunk of works; empty once every work was handed out."""
        if self.done:
            return []
        if self.chosen.ids is not None:
            self.done = True
            return await find_named(self.app[STORE], self.chosen.ids)
        if self.chosen.member_id is not None:
            works, self.after = await self.app[PUBLISHERS].publisher_works_after(
                self.chosen.member_id, self.after, self.size
            )
            self.done = self.after is None
            return works
        works = await self.app[STORE].works_after(self.after, self.size)
        # until a page comes back empty: a page short of a work whose row is gone is no end
        self.done = not works
        self.after = works[-1].work_id if works else self.after
        return works

    async def rows(self, works: list[Work]) -> bytes:
        """The CSV rows of `works` (their states read in one call)."""
        if not works:
            return b""
        states = await self.app[STORE].states_for([w.work_id for w in works])
        only = self.chosen.only
        return encode(row for w in works for row in work_rows(w, states.get(w.work_id, []), only))


async def works_csv(request: web.Request) -> web.StreamResponse:
    """`GET /api/v1/works.csv?publisher_id=&ids=&cursor=&source=&metric=`: one CSV row per
    (work, source, metric) stored, streamed."""
    chosen = selection(request)
    if request.method == "HEAD":  # the headers a GET would get, no walk
        return web.Response(headers=HEADERS)
    walk = Walk(request, chosen, request.app[EXPORT_CHUNK])
    first = HEADER + await walk.rows(await walk.next_chunk())  # within the request's deadline
    response = web.StreamResponse(headers=HEADERS)
    await response.prepare(request)
    lift_deadline(request)  # as long as the export takes; each chunk has a deadline of its own
    try:
        await _write(request, response, first)
        while not walk.done:
            async with asyncio.timeout(request.app[STORE_TIMEOUT] * STORE_CALLS):
                chunk = await walk.rows(await walk.next_chunk())
            if chunk:
                await _write(request, response, chunk)
        await response.write_eof()
    except ConnectionError:  # the client went away (or stopped reading): nothing to answer
        log.info("csv_export_client_gone", path=request.path_qs[:200])
    except Exception:  # the CSV has started: the only error left to give is a truncation
        log.exception("csv_export_failed", path=request.path_qs[:200])
        _abort(request)
    return response


async def _write(request: web.Request, response: web.StreamResponse, data: bytes) -> None:
    """Send `data`; a client that does not take it within WRITE_TIMEOUT is dropped."""
    try:
        async with asyncio.timeout(WRITE_TIMEOUT):
            await response.write(data)
    except TimeoutError:
        _abort(request)
        raise ConnectionResetError("the client stopped reading") from None


def _abort(request: web.Request) -> None:
    """Close the connection at once, without the end of the chunked body."""
    transport = request.transport
    if transport is not None:
        transport.abort()
