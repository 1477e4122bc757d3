"""Statements in flight on the driver's threads, settled on the event loop: the window that
`CqlSession.run_many` keeps full, and the page collection every execution uses."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Protocol, TypeVar

import structlog
from cassandra.cluster import Session
from cassandra.query import BatchStatement, BoundStatement, PreparedStatement

from services.adapters.cassandra.batching import Batch, split, too_large

log = structlog.get_logger("alm.cassandra")

T = TypeVar("T")
Row = Any  # the driver's named tuples


class Prepared(Protocol):
    """What the window needs of the session: its bound on statements in flight, and its
    prepared statements by name."""

    max_in_flight: int

    def stmt(self, name: str) -> PreparedStatement: ...


class Window:
    """Keeps up to `max_in_flight` statements outstanding; results land by index."""

    def __init__(self, cql: Prepared, session: Session, todo: list[Any]) -> None:
        self.cql = cql
        self.session = session
        self.todo = todo
        self.out: list[list[Row]] = [[] for _ in todo]
        self.loop = asyncio.get_running_loop()
        self.done: asyncio.Future[None] = self.loop.create_future()
        self.sent = 0
        self.pending = 0
        self.error: BaseException | None = None
        # Results arriving on the driver thread queue here; the loop is woken once per burst,
        # not once per statement.
        self._inbox: list[tuple[int, list[Row] | None, BaseException | None]] = []
        self._inbox_lock = threading.Lock()
        self._woken = False

    async def run(self) -> list[list[Row]]:
        asked = len(self.todo)
        self._fill()
        await self.done
        if self.error is not None:
            raise self.error
        return self.out[:asked]  # not the halves of split batches

    def _fill(self) -> None:
        if self.done.cancelled():  # the caller went away: send nothing more
            return
        limit = self.cql.max_in_flight
        while self.error is None and self.sent < len(self.todo) and self.pending < limit:
            index = self.sent
            item = self.todo[index]
            self.sent += 1
            self.pending += 1
            try:
                if isinstance(item, BatchStatement | BoundStatement):
                    future = self.session.execute_async(item)
                else:
                    future = self.session.execute_async(self.cql.stmt(item[0]), item[1])
            except Exception as exc:
                self._record(index, None, exc)  # the loop then stops sending
                continue
            self._watch(future, index)
        if self.pending == 0 and not self.done.done():
            self.done.set_result(None)

    def _watch(self, future: Any, index: int) -> None:
        post = self._post
        collect_pages(future, lambda rows, exc: post(index, rows, exc))

    def _post(self, index: int, rows: list[Row] | None, exc: BaseException | None) -> None:
        """On the driver thread: queue a result; wake the loop unless a wake-up is pending."""
        with self._inbox_lock:
            self._inbox.append((index, rows, exc))
            if self._woken:
                return
            self._woken = True
        self.loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        with self._inbox_lock:
            landed, self._inbox = self._inbox, []
            self._woken = False
        for index, rows, exc in landed:
            self._record(index, rows, exc)
        self._fill()

    def _record(self, index: int, rows: list[Row] | None, exc: BaseException | None) -> None:
        """One statement finished: keep its rows, or its error (the first one wins). A batch
        the server refused for its size is sent again as two halves."""
        self.pending -= 1
        item = self.todo[index]
        if exc is not None and isinstance(item, Batch) and too_large(exc):
            log.warning("cassandra_batch_split", statements=len(item.statements))
            halves = split(item)
            self.todo.extend(halves)
            self.out.extend([] for _ in halves)
        elif exc is not None:
            self.error = self.error or exc
        else:
            self.out[index] = rows or []


def release(future: Any) -> None:
    """Let a finished `ResponseFuture` be freed as soon as nothing refers to it.

    cassandra-driver (3.x) leaves two reference cycles on every request: its callbacks (ours
    refer back to the future, and through the caller to every row and statement of the call)
    and its timeout timer, cancelled when the answer comes but still held by the future and
    still calling back into it. Left alone, a request's rows, statements and the caller's
    window live until the cyclic collector runs; with the services' thresholds
    (services/gctune.py) most reach the old generation and wait for a full collection, so a
    process's memory rose with however much garbage had piled up at its busiest moment.
    Called once the last page or the error has been handed over (nothing more is fetched); a
    request still in flight (its reader cancelled) keeps its timer, so it still times out."""
    future.clear_callbacks()
    timer = future._timer
    if timer is not None and timer.canceled:  # never called; the timer queue drops it in turn
        future._timer = None
        timer.callback = _cancelled


def _cancelled() -> None:
    """A cancelled timer's callback: never called."""


def collect_pages(
    future: Any, deliver: Callable[[list[Row] | None, BaseException | None], None]
) -> None:
    """On the driver's threads: gather every page of `future`, then `deliver(rows, None)`, or
    `deliver(None, error)` once; a failure while paging is delivered too, never left waiting.
    The future is released (`release`) once it has delivered."""
    rows: list[Row] = []

    def done(result: list[Row] | None, exc: BaseException | None) -> None:
        release(future)
        deliver(result, exc)

    def on_page(page: Iterable[Row] | None) -> None:
        try:
            rows.extend(page or ())
            if future.has_more_pages:
                future.start_fetching_next_page()
                return
        except Exception as exc:
            done(None, exc)
            return
        done(rows, None)

    def on_error(exc: BaseException) -> None:
        done(None, exc)

    future.add_callbacks(on_page, on_error)


def settle(
    fut: asyncio.Future[list[Row]], rows: list[Row] | None, exc: BaseException | None
) -> None:
    if fut.done():
        return
    if exc is not None:
        fut.set_exception(exc)
    else:
        fut.set_result(rows or [])


async def bounded(aws: Sequence[Awaitable[T]], limit: int) -> list[T]:
    """Await coroutines concurrently, at most `limit` at a time; results in order."""
    if not aws:
        return []
    gate = asyncio.Semaphore(limit)

    async def one(aw: Awaitable[T]) -> T:
        async with gate:
            return await aw

    return list(await asyncio.gather(*(one(a) for a in aws)))
