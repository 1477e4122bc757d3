"""Works' answers kept ready as bytes in each API process, dropped when their numbers change.

Reading one work costs two store reads and presenting it about a millisecond of Python; most
reads ask for works whose numbers have not changed since the last read. So each answer the
API renders of one work (a representation: v1's JSON of it, by the identifier it was asked
by; its page by id, period and origin) is kept here as its encoded bytes with an ETag, and
served as they are until:

- the work's numbers change: the API process follows `alm.metrics.changed` (the SSE hub's
  reader, services/api/hub.py) and drops every answer of a work named by a change before
  the change is offered to any SSE client, so a client reacting to an event sees the new
  numbers; a gap in the topic or a failed read of it drops everything, and nothing is kept
  while the topic is not followed (`live`: a broker away at start-up, a reader failing);
- `ttl` seconds pass (ALM_API_WORK_CACHE_SECONDS, default 300; 0 = no cache): the backstop
  for what no change event says (a work's metadata, a change missed while the topic was
  away), so a replica never serves an answer older than that. An answer read after
  REFRESH_AT of its `ttl` is served as it is and rendered again in the background (queued
  once, and read with up to REFRESH_BATCH others of its kind: one store read for a hundred
  JSON answers): a work read often is not read from the store on a reader's time, and
  answers made together do not all fall due on readers together (in Cassandra, a stampede
  of reads and seconds of p99);
- the cache holds more than `max_bytes` (ALM_API_WORK_CACHE_MB): the least recently used
  answers go first. Nothing here grows with the works beyond that bound (invariant 7).

The aggregator puts a change on the topic before it stores it, so a read between the two
would keep the old numbers. Each change heard is remembered (work, source, its retrieval
time; at most MAX_HEARD works, each for HEARD_SECONDS or `ttl` if shorter: the aggregator
stores a change seconds after publishing it, and at the 1M run's ~330 changes/s a 300 s ttl
would hold up to MAX_HEARD works, tens of MB) and an answer is kept only if the states it
was made from are at least that recent: what is kept holds every change heard of (one
stored more than HEARD_SECONDS after it was published may show up to `ttl` late). Changes
that are no metric change (a failed attempt's status, a retrieval finding the same numbers,
a work's metadata) are shown within `ttl`.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiohttp import web

from services.core.aggregation import SourceState
from services.core.timeutil import from_iso

OVERHEAD = 200  # bytes an entry costs beyond its body (key, tuple, index), roughly
MAX_HEARD = 100_000  # works whose last changes are remembered
HEARD_SECONDS = 60.0  # how long a change heard is remembered (at most the ttl)
REFRESH_AT = 0.75  # share of the ttl after which a read answer is rendered again
REFRESH_BATCH = 100  # keys of one kind rendered again together
JSON = {"Content-Type": "application/json"}

log = logging.getLogger(__name__)
Render = Callable[[list[Any]], Awaitable[object]]  # renders and puts the answers of keys


@dataclass(frozen=True, slots=True)
class Rendered:
    """One answer ready to send: its body, its ETag and when it stops being served."""

    work_id: str
    body: bytes
    etag: str
    expires: float
    refresh: float  # after this, a read renders it again in the background
    headers: Mapping[str, str]  # Content-Type and the answer's own (a page's policy)

    def response(self, request: web.Request) -> web.Response:
        """The answer, or a 304 when the client holds these very bytes (`If-None-Match`)."""
        if self.etag in request.headers.getall("If-None-Match", ()):
            return web.Response(status=304, headers={"ETag": self.etag})
        return web.Response(body=self.body, headers={**self.headers, "ETag": self.etag})


def etag_of(body: bytes) -> str:
    """A strong ETag of `body`."""
    return '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'


class RenderedCache:
    """Rendered answers by key (a representation of one work), LRU within `max_bytes`, each
    for at most `ttl` seconds, dropped per work by `invalidate`."""

    def __init__(
        self, ttl: float, max_bytes: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl = ttl
        self.max_bytes = max_bytes
        self.live = False  # the changes are followed (services/api/hub.py): answers are kept
        self.size = 0  # bytes held (bodies and OVERHEAD per entry)
        self._clock = clock
        self._entries: OrderedDict[Hashable, Rendered] = OrderedDict()
        self._keys: dict[str, set[Hashable]] = {}  # work id -> its entries' keys
        # work id -> (when heard, source -> retrieval time of its last change heard)
        self._heard: OrderedDict[str, tuple[float, dict[str, datetime]]] = OrderedDict()
        self._refreshing: set[Hashable] = set()  # keys queued or being rendered again
        self._queued: dict[Hashable, dict[Hashable, None]] = {}  # kind -> keys, in order
        self._renders: dict[Hashable, Render] = {}  # kind -> how its answers are rendered
        self._drains: dict[Hashable, asyncio.Task[None]] = {}  # kind -> its queue's reader

    @property
    def enabled(self) -> bool:
        return self.ttl > 0 and self.max_bytes > 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: Hashable) -> Rendered | None:
        """The answer kept under `key`, if still fresh."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if self._clock() >= entry.expires:
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry

    def put(
        self,
        key: Hashable,
        work_id: str,
        body: bytes,
        states: Sequence[SourceState],
        headers: Mapping[str, str] = JSON,
    ) -> Rendered:
        """Keep `body` (sent with `headers`), made from the work's `states`, as the answer
        under `key` unless those states are older than a change heard of; the answer either
        way."""
        now = self._clock()
        entry = Rendered(
            work_id, body, etag_of(body), now + self.ttl, now + self.ttl * REFRESH_AT, headers
        )
        cost = len(body) + OVERHEAD
        kept = self.enabled and self.live and cost <= self.max_bytes
        if not kept or not self._holds_heard(work_id, states):
            return entry
        self._drop(key)
        self._entries[key] = entry
        self._keys.setdefault(work_id, set()).add(key)
        self.size += cost
        while self.size > self.max_bytes:
            self._drop(next(iter(self._entries)))
        return entry

    def stale(self, key: Hashable, entry: Rendered) -> bool:
        """Whether `entry`, just read under `key`, is to be rendered again in the background
        (past REFRESH_AT of its ttl, kept answers, not being rendered already)."""
        return self.live and self._clock() >= entry.refresh and key not in self._refreshing

    def refresh(self, kind: Hashable, keys: Iterable[Hashable], render: Render) -> None:
        """Render the answers of `keys` again in the background (unless being rendered
        already): queued by `kind`, one reader of each kind's queue, which hands `render` up
        to REFRESH_BATCH keys at a time (it reads them together and puts their answers). A
        failure is logged: those answers expire as they would have."""
        mine = [k for k in dict.fromkeys(keys) if k not in self._refreshing]
        if not mine:
            return
        self._refreshing.update(mine)
        self._queued.setdefault(kind, {}).update(dict.fromkeys(mine))
        self._renders[kind] = render
        if kind not in self._drains:
            task = asyncio.get_running_loop().create_task(self._drain(kind))
            self._drains[kind] = task

    async def _drain(self, kind: Hashable) -> None:
        queued = self._queued[kind]
        try:
            while queued:
                keys = list(itertools.islice(queued, REFRESH_BATCH))
                for key in keys:
                    del queued[key]
                try:
                    await self._renders[kind](keys)
                except Exception:
                    log.warning("rendered_refresh_failed", exc_info=True)
                finally:
                    self._refreshing.difference_update(keys)
        finally:
            del self._drains[kind]

    async def close(self) -> None:
        """Stop the background renders."""
        tasks = list(self._drains.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def changed(self, changes: Iterable[Mapping[str, Any]]) -> None:
        """Drop every answer of the works these changes (`alm.metrics.changed` values) name,
        and remember them until their states are stored."""
        if not self.enabled:
            return
        now = self._clock()
        remember = min(self.ttl, HEARD_SECONDS)
        while self._heard and next(iter(self._heard.values()))[0] + remember <= now:
            self._heard.popitem(last=False)
        for change in changes:
            work_id, source, at = change.get("work_id"), change.get("source"), change.get("at")
            if not isinstance(work_id, str):
                continue
            for key in list(self._keys.get(work_id, ())):
                self._drop(key)
            if not isinstance(source, str) or not isinstance(at, str):
                continue
            try:
                when = from_iso(at)
            except ValueError:
                continue
            _, sources = self._heard.pop(work_id, (now, {}))
            sources[source] = max(when, sources.get(source, when))
            self._heard[work_id] = (now, sources)
            if len(self._heard) > MAX_HEARD:
                self._heard.popitem(last=False)

    def clear(self) -> None:
        """Drop everything (changes may have been missed)."""
        self._entries.clear()
        self._keys.clear()
        self.size = 0

    def _holds_heard(self, work_id: str, states: Sequence[SourceState]) -> bool:
        """Whether `states` hold every change heard of for `work_id` (each source's stored
        retrieval at least as recent as its last change's)."""
        heard = self._heard.get(work_id)
        if heard is None:
            return True
        stored = {s.source: s.retrieved_at for s in states}
        for source, at in heard[1].items():
            retrieved = stored.get(source)
            if retrieved is None or retrieved < at:
                return False
        return True

    def _drop(self, key: Hashable) -> None:
        entry = self._entries.pop(key, None)
        if entry is None:
            return
        self.size -= len(entry.body) + OVERHEAD
        keys = self._keys.get(entry.work_id)
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._keys[entry.work_id]
