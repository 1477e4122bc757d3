"""One reader of the change topic per API process, fanned out to its SSE clients.

The hub reads `alm.metrics.changed` from where it started (the end, when its first client came)
with its own reader (services/core/changefeed.py; in the distributed mode a Kafka consumer of
its own with no group, so every replica serves the stream by itself). Each change is encoded
once, as an SSE frame whose id is the hub's position after it, and offered to every live
client whose filter it passes.

Each client has a bounded queue of frames. A client that does not read fast enough to keep its
queue under `queue_size` is not buffered for: its queue is dropped and it is closed with a final
`closing` event (reason `slow_client`) carrying the id to resume from, so it reconnects with
`Last-Event-ID` and catches up from the topic at its own pace (services/api/changes.py).

A client that joins live gets every frame after the hub's position at that moment
(`Subscription.start`); one that resumes from an older id first reads the topic up to exactly
that position with a reader of its own, then takes the frames: so its ids are the hub's.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass

import orjson
import structlog

from services.api.rendered import RenderedCache
from services.core.change_filter import ChangeFilter, MetricGroups
from services.core.change_publishers import PublisherLookup
from services.core.changefeed import (
    ChangeFeed,
    FeedItem,
    FeedReader,
    Gap,
    Position,
    encode_position,
)
from services.telemetry.changes import SSE_FRAMES

log = structlog.get_logger("alm.changes")

BATCH = 500  # events read at once
READ_WAIT = 1.0  # seconds a read waits for an event
RETRY = 2.0  # seconds before reading again after the reader failed (a broker away)


@dataclass(frozen=True, slots=True)
class Frame:
    """One SSE event ready to send, and where the hub was after it."""

    data: bytes
    position: Mapping[int, int]
    partition: int = -1  # -1: not a change (a gap notice)
    offset: int = -1


def change_frame(item: FeedItem, position: Mapping[int, int]) -> bytes:
    """The SSE event of a change: its id is the position after it."""
    data = orjson.dumps(item.value)
    return b"id: %s\nevent: metric_changed\ndata: %s\n\n" % (
        encode_position(position).encode(),
        data,
    )


def gap_frame(gap: Gap, position: Mapping[int, int]) -> bytes:
    """The SSE event telling a client that events it should have had are no longer kept."""
    body = {
        "partition": gap.partition,
        "from": gap.start,
        "to": gap.end,
        "missed": gap.end - gap.start,
        "reason": "no longer kept by the topic (retention): read the works' current totals "
        "from the API to resynchronise",
    }
    return b"id: %s\nevent: gap\ndata: %s\n\n" % (
        encode_position(position).encode(),
        orjson.dumps(body),
    )


class Subscription:
    """A live client: its filter, its bounded queue of frames, why it must close (if so)."""

    def __init__(self, flt: ChangeFilter, size: int, start: Position) -> None:
        self.filter = flt
        self.start = start  # the hub's position when the client joined
        self.frames: deque[Frame] = deque()
        self.size = size
        self.wake = asyncio.Event()
        self.closing: str | None = None  # slow_client | shutdown

    def offer(self, frame: Frame) -> None:
        """Queue `frame`; past `size` frames the client is to be closed, not buffered for."""
        if self.closing is not None:
            return
        if len(self.frames) >= self.size:
            self.close("slow_client")
            return
        self.frames.append(frame)
        self.wake.set()

    def close(self, reason: str) -> None:
        """Drop what is queued and tell the client's handler to close with `reason`."""
        if self.closing is None:
            self.closing = reason
            self.frames.clear()
            self.wake.set()

    def take(self) -> list[Frame]:
        """Everything queued, oldest first."""
        frames = list(self.frames)
        self.frames.clear()
        self.wake.clear()
        return frames


class ChangeHub:
    """The process's reader of the change topic and its live clients."""

    def __init__(
        self,
        feed: ChangeFeed,
        catalog: MetricGroups,
        publishers: PublisherLookup,
        queue_size: int,
        catch_ups: int = 16,
        rendered: RenderedCache | None = None,
    ) -> None:
        self.feed = feed
        self.catalog = catalog
        self.publishers = publishers
        self.queue_size = queue_size
        self.rendered = rendered  # works' kept answers, dropped as their numbers change
        self.catch_ups = asyncio.Semaphore(catch_ups)  # readers of clients resuming at once
        self.clients = 0  # open streams (live or catching up)
        self._subs: set[Subscription] = set()
        self._position: Position = {}
        self._task: asyncio.Task[None] | None = None
        self._follow: asyncio.Task[None] | None = None
        self._reader: FeedReader | None = None
        self._lock = asyncio.Lock()
        self._closed = False

    @property
    def position(self) -> Position:
        """Where the hub is: every change before it has been offered to the live clients."""
        return dict(self._position)

    async def subscribe(self, flt: ChangeFilter) -> Subscription:
        """A live subscription from the hub's position now (starting the hub if needed)."""
        await self._start()
        sub = Subscription(flt, self.queue_size, self.position)
        if self._closed:
            sub.close("shutdown")
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Stop offering frames to `sub`."""
        self._subs.discard(sub)

    def follow(self) -> None:
        """Follow the topic from now on, with or without clients (for the kept answers:
        they are kept only while it is followed), trying again while it cannot be read."""
        if self._follow is None:
            self._follow = asyncio.create_task(self._start_following())

    async def _start_following(self) -> None:
        while not self._closed:
            try:
                await self._start()
                return
            except Exception:
                log.exception("change_hub_start_failed_retrying")
                await asyncio.sleep(RETRY)

    async def _start(self) -> None:
        async with self._lock:
            if self._task is not None or self._closed:
                return
            start = await self.feed.end()
            self._reader = self.feed.reader(start)
            self._position = dict(start)
            self._task = asyncio.create_task(self._run(self._reader))
            if self.rendered is not None:
                self.rendered.live = True  # every change from here on is heard

    async def _run(self, reader: FeedReader) -> None:
        while not self._closed:
            try:
                items, gaps = await reader.read(BATCH, READ_WAIT)
                await self._dispatch(items, gaps)
                if self.rendered is not None:
                    self.rendered.live = True
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("change_hub_read_failed_retrying")
                if self.rendered is not None:  # changes may be missed meanwhile
                    self.rendered.live = False
                    self.rendered.clear()
                await asyncio.sleep(RETRY)

    async def _dispatch(self, items: list[FeedItem], gaps: list[Gap]) -> None:
        self._forget(items, gaps)  # before any client hears of a change
        for gap in gaps:
            self._position[gap.partition] = gap.end
            notice = Frame(gap_frame(gap, self._position), self.position)
            for sub in list(self._subs):
                sub.offer(notice)
        if not items:
            return
        publishers: list[str | None] = [None] * len(items)
        if any(s.filter.needs_publisher for s in self._subs):
            publishers = await self.publishers.resolve([i.value for i in items])
        for item, publisher in zip(items, publishers, strict=True):
            self._position[item.partition] = item.offset + 1
            frame: Frame | None = None
            for sub in list(self._subs):
                if sub.filter.matches(item.value, publisher, self.catalog):
                    if frame is None:
                        position = self.position
                        frame = Frame(
                            change_frame(item, position), position, item.partition, item.offset
                        )
                    sub.offer(frame)
                    SSE_FRAMES.inc()

    def _forget(self, items: list[FeedItem], gaps: list[Gap]) -> None:
        """Drop the kept answers of the works changed (all of them after a gap)."""
        if self.rendered is None:
            return
        if gaps:
            self.rendered.clear()
        elif items:
            self.rendered.changed(i.value for i in items)

    async def close(self) -> None:
        """Tell every client the server is going away, stop reading."""
        self._closed = True
        for sub in list(self._subs):
            sub.close("shutdown")
        if self.rendered is not None:
            self.rendered.live = False
        for task in (self._follow, self._task):
            if task is not None:
                task.cancel()
        self._follow = None
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        reader, self._reader = self._reader, None
        if reader is not None:
            await reader.close()
