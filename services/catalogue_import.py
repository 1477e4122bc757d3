"""Importing a publisher's catalogue from Crossref (`alm publishers import`).

The publisher is read from `/members/{id}` (a prefix is looked up first) and stored; the range
of index dates is planned into windows once; then page after page is registered through the
registration path: each page's works with their due entries in one store write per chunk, new
works announced on `alm.works`, and known works whose metadata the catalogue changed updated
and announced as `updated` (the publisher's catalogue is the authority for its own works'
title, date, type and publisher). The import's state is stored before each page is asked for
and after it is registered, so a stop or a kill resumes where it can
(services/core/catalogue_state.py says how and why).

A page is asked for once: if it fails, the upstream may or may not have moved the cursor on,
so the window starts again from `cursor=*` (only an answer that surely was not acted on, a
429, is asked for again with the same cursor), after a backoff; after `attempts` failures in a
row the import stops, resumable.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Protocol

from services.core.catalogue_state import (
    MAX_ROWS,
    WINDOW_WORKS,
    ImportState,
    Resume,
    Scope,
    Tally,
    Window,
    asking,
    begin,
    cursor_of,
    plan_windows,
    planned,
    received,
    restart_window,
    resume,
    whole,
)
from services.core.ports import Bus, Store
from services.core.publishers import Publisher, PublisherStore
from services.core.works import Work
from services.fetchers.catalogue import CatalogueClient, CatalogueError, CursorRefused
from services.fetchers.crossref_catalogue import WorksPage
from services.registration import Scheduling, register_works, update_metadata


@dataclass(frozen=True, slots=True)
class ImportOptions:
    """How an import pages and how patiently it retries."""

    rows: int = MAX_ROWS  # works per page (Crossref allows 1000; fewer if it answers 504s)
    window_works: int = WINDOW_WORKS  # works per window at most
    attempts: int = 6  # failed pages in a row before the import stops (resumable)
    backoff: float = 2.0  # seconds before asking again after a failure, doubled each time
    max_backoff: float = 60.0


class ImportConflict(Exception):
    """An unfinished import of the scope exists and a different one was asked for."""


class ImportFailed(Exception):
    """The import stopped on an error it cannot get past; its state is stored (resumable)."""


class Watcher(Protocol):
    """What the command shows of an import (progress, notes)."""

    def found(self, publisher: Publisher) -> None:
        """The publisher, as Crossref describes it."""

    def planned(self, state: ImportState) -> None:
        """The windows are planned (or read back): `state.total` works, `state.done` done."""

    def advanced(self, state: ImportState) -> None:
        """A page was registered (or a window started again: `state.done` went back)."""

    def note(self, text: str) -> None:
        """Something worth a line: a resumed import, a window started again, a retry."""


RESUMED = {
    Resume.CONTINUE: "going on with its cursor",
    Resume.IN_FLIGHT: "a page was in flight when it stopped: its window starts again",
    Resume.EXPIRED: "its cursor has expired: its window starts again",
    Resume.FRESH: "going on from the start of its current window",
}


@dataclass(slots=True)
class Importer:
    """One catalogue import over a store, a bus and the Crossref client."""

    client: CatalogueClient
    store: Store
    publishers: PublisherStore
    bus: Bus
    scheduling: Scheduling
    clock: Callable[[], datetime]
    watcher: Watcher
    options: ImportOptions = ImportOptions()

    async def run(
        self, scope: Scope, since: date | None, restart: bool, stop: asyncio.Event
    ) -> ImportState:
        """Import `scope`'s works indexed since `since` (None: since the last complete import,
        or all of them), resuming an unfinished import unless `restart`; returns the state it
        ends in (complete, or stopped by `stop`). ImportFailed when it cannot go on."""
        state = await self._start(scope, since, restart)
        try:
            publisher = await self.client.publisher(scope, self.clock())
            await self.publishers.put_publisher(publisher)
            self.watcher.found(publisher)
            state = replace(state, member_id=publisher.member_id)
            if not state.windows:
                state = await self._plan(state)
        except CatalogueError as exc:
            raise ImportFailed(f"{scope.key}: {exc}") from exc
        await self.publishers.put_import(state)
        self.watcher.planned(state)
        failures = 0
        while not state.complete and not stop.is_set():
            state, failures = await self._window(state, failures, stop)
        return state

    async def _start(self, scope: Scope, since: date | None, restart: bool) -> ImportState:
        previous = await self.publishers.get_import(scope)
        now = self.clock()
        if previous is None or previous.complete or restart:
            return begin(scope, since, now, previous)
        if since is not None and since != previous.since:
            started = previous.since.isoformat() if previous.since else "the beginning"
            raise ImportConflict(
                f"the import of {scope.key} started {previous.started_at:%Y-%m-%d %H:%M} UTC "
                f"(index dates from {started}) is unfinished: run it again without --since "
                "to resume it, or with --restart to start a new one"
            )
        state, how = resume(previous, now)
        self.watcher.note(
            f"resuming the import of {scope.key} started {previous.started_at:%Y-%m-%d %H:%M} "
            f"UTC at {previous.done:,} works: {RESUMED[how]}"
        )
        return state

    async def _plan(self, state: ImportState) -> ImportState:
        """The import's range cut into windows (one `rows=0` count per cut)."""
        scope = state.scope

        async def count(window: Window) -> int:
            return await self.client.count(scope, window)

        total = await count(whole(state))
        windows = await plan_windows(whole(state), total, count, self.options.window_works)
        return planned(state, windows, total)

    async def _window(
        self, state: ImportState, failures: int, stop: asyncio.Event
    ) -> tuple[ImportState, int]:
        """Page through the current window from its cursor until its last page, a stop or a
        failure. The next page is asked for while one is registered (one ahead at most, the
        state saying a page is in flight all along); on a stop, the page in flight is still
        registered, so the state stored last has no page in flight and its cursor can go on."""
        rows, cursor = self.options.rows, cursor_of(state)
        state = asking(state)
        await self.publishers.put_import(state)
        ahead = self._ask(state, cursor)
        try:
            while True:
                try:
                    page = await ahead
                except CatalogueError as exc:
                    return await self._failed(state, cursor, exc, failures + 1, stop)
                failures = 0
                more = page.items >= rows and page.next_cursor is not None and not stop.is_set()
                if more:
                    assert page.next_cursor is not None
                    cursor = page.next_cursor
                    ahead = self._ask(state, cursor)
                tally = await self._register(page)
                state = received(state, page.items, page.next_cursor, rows, tally, self.clock())
                state = asking(state) if more else state
                await self.publishers.put_import(state)
                self.watcher.advanced(state)
                if not more:
                    return state, failures
        finally:
            if not ahead.done():  # a failure while registering: the page asked for is lost
                ahead.cancel()

    def _ask(self, state: ImportState, cursor: str) -> asyncio.Future[WorksPage]:
        """Ask for the current window's page at `cursor` (answered while we go on)."""
        rows = self.options.rows
        return asyncio.ensure_future(self.client.page(state.scope, state.current, cursor, rows))

    async def _failed(
        self,
        state: ImportState,
        cursor: str,
        exc: CatalogueError,
        failures: int,
        stop: asyncio.Event,
    ) -> tuple[ImportState, int]:
        """The state after a failed page: asked again with the same cursor only if the
        upstream surely did not act on it, else the window starts again; stored either way.
        ImportFailed once the failure is permanent or too many came in a row."""
        where = f"window {state.window + 1} of {len(state.windows)} ({state.current.label()})"
        if exc.unsent or cursor == "*":
            state = replace(state, in_flight=False)
        else:
            state = restart_window(state)
            self.watcher.advanced(state)
        await self.publishers.put_import(state)
        if not exc.retryable or failures >= self.options.attempts:
            raise ImportFailed(f"{where}: {exc} (after {failures} failed pages in a row)")
        if isinstance(exc, CursorRefused):
            self.watcher.note(f"{where}: {exc}; starting the window again")
            return state, failures
        delay = min(self.options.max_backoff, self.options.backoff * 2 ** (failures - 1))
        delay = max(delay + random.uniform(0, delay / 4), self.client.pause_left())
        again = "asking again" if exc.unsent or cursor == "*" else "starting the window again"
        self.watcher.note(f"{where}: {exc}; {again} in {delay:.0f} s")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
        return state, failures

    async def _register(self, page: WorksPage) -> Tally:
        """Register a page's works (each DOI once), store what the catalogue changed in works
        already known, and index them under their publisher."""
        now = self.clock()
        works = list({w.work_id: w for w in page.works}.values())
        results = await register_works(
            [(w.work_id, w) for w in works], self.store, self.bus, now, self.scheduling, intake=True
        )
        invalid = len(page.rejected) + sum(r.error is not None for r in results)
        done = [(r.work_id, r.created, w) for r, w in zip(results, works, strict=True) if r.work_id]
        known = {work_id: w for work_id, created, w in done if not created}
        updated, moved = await self._update_known(known, now)
        index = [(w.publisher_id, work_id) for work_id, _, w in done if w.publisher_id]
        await self.publishers.index_publisher_works(index, moved)
        created = len(done) - len(known)
        return Tally(created=created, known=len(known), updated=updated, invalid=invalid)

    async def _update_known(
        self, known: dict[str, Work], now: datetime
    ) -> tuple[int, Sequence[tuple[str, str]]]:
        """Replace the metadata of known works by the catalogue's where it differs; how many
        changed, and the (old publisher, work) index entries of works that changed publisher."""
        if not known:
            return 0, []
        stored = await self.store.get_works(list(known))
        changed: list[Work] = []
        moved: list[tuple[str, str]] = []
        for work_id, old in stored.items():
            new = old.overridden(known[work_id])
            if new == old:
                continue
            changed.append(new)
            if old.publisher_id and old.publisher_id != new.publisher_id:
                moved.append((old.publisher_id, work_id))
        await update_metadata(changed, self.store, self.bus, now)
        return len(changed), moved
