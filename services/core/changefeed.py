"""Reading `alm.metrics.changed` from a position, outside every consumer group: the port the SSE
stream reads through (an in-process and a Kafka adapter implement it).

A position is where a reader is in every partition: the next offset to read of each. An SSE
event's id is the position just after that event, written `partition:offset` pairs joined by
commas (`0:1200,1:988,...`; the in-process bus has one partition, `0:1200`). A client that
reconnects with it as `Last-Event-ID` resumes in every partition exactly where it stopped: no
event is skipped and none is sent twice, within what the topic still keeps. A partition the id
does not name starts at the oldest event kept; an offset past the end (an id from before a topic
was made again, or from before an embedded restart) also restarts there.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

MAX_PARTITIONS = 1024  # partitions a position may name
MAX_POSITION_LENGTH = 32 * 1024  # characters of an encoded position
_PAIR = re.compile(r"(0|[1-9][0-9]{0,9}):(0|[1-9][0-9]{0,17})")  # offsets below 2**63

Position = dict[int, int]
"""The next offset to read in each partition."""


def encode_position(position: Mapping[int, int]) -> str:
    """`position` as an event id: `p:offset` pairs by partition, joined by commas."""
    return ",".join(f"{p}:{position[p]}" for p in sorted(position))


def decode_position(text: str) -> Position:
    """The position an event id names, or a ValueError saying what is wrong with it."""
    if len(text) > MAX_POSITION_LENGTH:
        raise ValueError(f"an event id has at most {MAX_POSITION_LENGTH} characters")
    out: Position = {}
    for pair in text.split(","):
        match = _PAIR.fullmatch(pair)
        if match is None:
            raise ValueError(
                "an event id is partition:offset pairs joined by commas (e.g. 0:12,1:40), "
                f"not {pair[:40]!r}"
            )
        out[int(match[1])] = int(match[2])  # a partition named twice: the last offset
    if len(out) > MAX_PARTITIONS:
        raise ValueError(f"an event id names at most {MAX_PARTITIONS} partitions")
    return out


@dataclass(frozen=True, slots=True)
class FeedItem:
    """One change event read from the topic, with where it was."""

    partition: int
    offset: int
    value: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Gap:
    """Events a reader asked for that the topic no longer keeps: offsets [start, end)."""

    partition: int
    start: int
    end: int


class FeedReader(Protocol):
    """One reader of the change topic, moving forward from where it started."""

    @property
    def position(self) -> Position:
        """The next offset to read in each partition (after everything returned so far)."""
        ...

    async def read(
        self, limit: int, timeout: float, until: Mapping[int, int] | None = None
    ) -> tuple[list[FeedItem], list[Gap]]:
        """Up to `limit` events after the position, waiting up to `timeout` seconds for one;
        with the gaps met on the way (what was asked for and is no longer kept). With `until`,
        nothing at or past `until[p]` is read in partition p: the position stops there."""
        ...

    async def close(self) -> None: ...


class ChangeFeed(Protocol):
    """Where readers of the change topic come from."""

    async def end(self) -> Position:
        """The current end of every partition (a reader started there sees what comes next)."""
        ...

    def reader(self, start: Mapping[int, int]) -> FeedReader:
        """A reader from `start` (partitions it does not name: from the oldest kept)."""
        ...
