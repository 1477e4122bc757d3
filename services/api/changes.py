"""`GET /api/v1/changes`: metric changes as Server-Sent Events (text/event-stream).

What a client gets (docs/changes.md):
- `retry: <ms>` once, then `id: <position>` alone (where the stream starts: reconnecting with it
  misses nothing even if no change came);
- `event: metric_changed` with the change's JSON (schemas/metric_changed.schema.json) as `data`
  and the position after it as `id`;
- `event: gap` if changes it asked for (an old Last-Event-ID) are no longer kept;
- a comment line every ALM_CHANGES_HEARTBEAT seconds (with the position, as `id`, when
  changes the filter dropped moved it on);
- `event: closing` with the reason before the server ends the stream: `max_duration` (after
  ALM_CHANGES_MAX_SECONDS), `slow_client` (it fell ALM_CHANGES_CLIENT_QUEUE changes behind),
  `shutdown`. The data's `resume_with` is the id to reconnect with (EventSource does so itself).

A client reconnecting with `Last-Event-ID` (or `?last_event_id=`) first reads the topic from
there with a reader of its own, up to the hub's position, then joins the hub's frames
(services/api/hub.py), so nothing between is lost or repeated.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Mapping

import orjson
import structlog
from aiohttp import web

from services.api.errors import BadParameter, error_response, lift_deadline
from services.api.filters import filter_from_query
from services.api.hub import BATCH, ChangeHub, Frame, Subscription, change_frame, gap_frame
from services.api.state import HUB, NOTIFY
from services.core.change_filter import ChangeFilter
from services.core.changefeed import FeedReader, Position, decode_position, encode_position
from services.notify_settings import NotifySettings
from services.telemetry.changes import SSE_CLIENTS, SSE_CLOSED

log = structlog.get_logger("alm.changes")

HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # nginx (and ingress-nginx): do not buffer the stream
}
WRITE_TIMEOUT = 30.0  # seconds a write may wait for a client that stopped reading
CATCH_UP_WAIT = 0.5  # seconds a catch-up read waits for events


class ClientGone(Exception):
    """The client went away or stopped reading: the stream ends without a word."""


def _start(request: web.Request) -> Position | None:
    """Where the client resumes: Last-Event-ID, else ?last_event_id=, else None (live). Both
    are checked when both are sent (a malformed one is a 400 even if the other wins)."""
    found: Position | None = None
    for name, raw in (
        ("last_event_id", request.query.get("last_event_id")),
        ("Last-Event-ID", request.headers.get("Last-Event-ID")),
    ):
        if not raw:  # absent or empty (EventSource sends none before it had an id)
            continue
        try:
            found = decode_position(raw)
        except ValueError as exc:
            raise BadParameter(f"{name}: {exc}") from None
    return found


async def stream_changes(request: web.Request) -> web.StreamResponse:
    """`GET /api/v1/changes`: every change passing the filter, as it is published."""
    flt = await filter_from_query(request)
    start = _start(request)
    if request.method == "HEAD":  # the headers a GET would get, and no stream to hold open
        return web.Response(headers=HEADERS)
    hub, settings = request.app[HUB], request.app[NOTIFY]
    if hub.clients >= settings.max_clients:
        return error_response(
            503,
            f"{settings.max_clients} change streams are open: try again later",
            {"Retry-After": "5"},
        )
    response = web.StreamResponse(headers=HEADERS)
    hub.clients += 1
    SSE_CLIENTS.inc()
    try:
        await response.prepare(request)
        # open until the client leaves or ALM_CHANGES_MAX_SECONDS: not bound by the deadline
        # of a request (its store lookups, above, were)
        lift_deadline(request)
        stream = Stream(request, response, hub, settings, flt)
        reason = await stream.run(start)
    except (ClientGone, ConnectionError):
        reason = "gone"
    except Exception:  # the response has started: no JSON error can follow, only the end
        log.exception("change_stream_failed")
        reason = "error"
    finally:
        hub.clients -= 1
        SSE_CLIENTS.dec()
    SSE_CLOSED.labels(reason).inc()
    return response


class Stream:
    """One client's stream: catch up if it resumes, then live frames, heartbeats, closing."""

    def __init__(
        self,
        request: web.Request,
        response: web.StreamResponse,
        hub: ChangeHub,
        settings: NotifySettings,
        flt: ChangeFilter,
    ) -> None:
        self.request = request
        self.response = response
        self.hub = hub
        self.settings = settings
        self.filter = flt
        self.position: Position = {}
        self.sent_id = ""  # the last id the client got
        loop = asyncio.get_running_loop()
        self.deadline = loop.time() + settings.max_seconds * (0.9 + 0.1 * random.random())
        self.last_write = loop.time()

    async def write(self, data: bytes) -> None:
        """Send `data`; a client that does not take it within WRITE_TIMEOUT is dropped."""
        try:
            async with asyncio.timeout(WRITE_TIMEOUT):
                await self.response.write(data)
        except TimeoutError:
            transport = self.request.transport
            if transport is not None:
                transport.abort()
            raise ClientGone("write timed out") from None
        self.last_write = asyncio.get_running_loop().time()

    async def run(self, start: Position | None) -> str:
        """Stream until the client goes or the server ends it; the reason it ended."""
        await self.write(b"retry: %d\n\n" % self.settings.retry_ms)
        if start is None:
            sub = await self.hub.subscribe(self.filter)
            self.position = dict(sub.start)
        else:
            sub = await self.catch_up(start)
        try:
            await self.send_id()
            return await self.live(sub)
        finally:
            self.hub.unsubscribe(sub)

    async def send_id(self) -> None:
        """Tell the client where it is, if that changed since the last id it got."""
        current = encode_position(self.position)
        if current != self.sent_id:
            await self.write(b"id: %s\n\n" % current.encode())
            self.sent_id = current

    # -- resuming --------------------------------------------------------------------------

    async def catch_up(self, start: Position) -> Subscription:
        """Send what the client missed since `start`, up to the hub's position, and join the
        hub there."""
        async with self.hub.catch_ups:
            reader = self.hub.feed.reader(start)
            try:
                while True:  # read until about the end, before taking the hub's frames
                    count = await self.relay(reader, None)
                    if count < BATCH:
                        break
                sub = await self.hub.subscribe(self.filter)
                until = sub.start
                while any(reader.position.get(p, end) < end for p, end in until.items()):
                    await self.relay(reader, until)
                self.position = {**until, **reader.position}
                return sub
            finally:
                await reader.close()

    async def relay(self, reader: FeedReader, until: Mapping[int, int] | None) -> int:
        """Read one batch with `reader` and send what passes the filter; how many were read."""
        items, gaps = await reader.read(BATCH, CATCH_UP_WAIT, until)
        for gap in gaps:
            self.position[gap.partition] = gap.end
            await self.write(gap_frame(gap, self.position))
        publishers: list[str | None] = [None] * len(items)
        if items and self.filter.needs_publisher:
            publishers = await self.hub.publishers.resolve([i.value for i in items])
        out = []
        for item, publisher in zip(items, publishers, strict=True):
            self.position[item.partition] = item.offset + 1
            if self.filter.matches(item.value, publisher, self.hub.catalog):
                out.append(change_frame(item, self.position))
        if out:
            await self.write(b"".join(out))
            self.sent_id = encode_position(self.position)
        elif not gaps:
            await self.heartbeat_if_due()
        return len(items)

    # -- live ----------------------------------------------------------------------------

    async def live(self, sub: Subscription) -> str:
        """Send the hub's frames as they come, with heartbeats, until a reason to stop."""
        loop = asyncio.get_running_loop()
        while True:
            if sub.closing is not None:
                return await self.close(sub.closing)
            if loop.time() >= self.deadline:
                return await self.close("max_duration")
            frames = sub.take()
            if frames:
                await self.send(frames)
                continue
            wait = min(self.deadline, self.last_write + self.settings.heartbeat) - loop.time()
            if wait > 0:
                try:
                    async with asyncio.timeout(wait):
                        await sub.wake.wait()
                except TimeoutError:
                    pass
            else:
                await self.heartbeat(sub)

    async def send(self, frames: list[Frame]) -> None:
        """Send frames, skipping changes the client already has (it resumed ahead of the hub
        in some partition), with ids of its own until the hub has passed it."""
        out = []
        for frame in frames:
            if frame.partition >= 0 and frame.offset < self.position.get(frame.partition, 0):
                continue
            if all(frame.position.get(p, 0) >= o for p, o in self.position.items()):
                self.position = dict(frame.position)
                out.append(frame.data)
            else:  # the client is ahead in another partition: an id of its own
                if frame.partition >= 0:
                    self.position[frame.partition] = frame.offset + 1
                out.append(_with_id(frame.data, self.position))
        if out:
            await self.write(b"".join(out))
            self.sent_id = encode_position(self.position)

    async def heartbeat(self, sub: Subscription) -> None:
        """A comment line, with the hub's position as the id when everything queued was sent
        (changes the filter dropped moved it on)."""
        if not sub.frames:
            hub = self.hub.position
            if all(hub.get(p, 0) >= o for p, o in self.position.items()):
                self.position = hub
        current = encode_position(self.position)
        line = b": heartbeat\n"
        if current != self.sent_id:
            line += b"id: %s\n" % current.encode()
            self.sent_id = current
        await self.write(line + b"\n")

    async def heartbeat_if_due(self) -> None:
        """A comment line during a long catch-up with nothing to send."""
        if asyncio.get_running_loop().time() - self.last_write >= self.settings.heartbeat:
            await self.write(b": heartbeat\n\n")

    async def close(self, reason: str) -> str:
        """The final event, saying why, then the end of the stream."""
        resume = encode_position(self.position)
        messages = {
            "max_duration": "the stream reached its maximum duration: reconnect",
            "slow_client": (
                f"the client fell more than {self.settings.client_queue} changes behind: "
                "reconnect with Last-Event-ID to catch up from the topic"
            ),
            "shutdown": "the server is shutting down: reconnect (to another replica)",
        }
        body = {"reason": reason, "message": messages[reason], "resume_with": resume}
        data = b"id: %s\nevent: closing\ndata: %s\n\n" % (resume.encode(), orjson.dumps(body))
        with contextlib.suppress(ClientGone, ConnectionError):
            await self.write(data)
        return reason


def _with_id(frame: bytes, position: Mapping[int, int]) -> bytes:
    """`frame` with its first line (the id) replaced by `position`."""
    return b"id: %s\n" % encode_position(position).encode() + frame.split(b"\n", 1)[1]
