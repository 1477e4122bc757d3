"""A Server-Sent Events reader for the tests, following the WHATWG parsing rules: lines end at
LF, CR or CRLF; `field: value` (one space after the colon dropped); a blank line ends an event;
`:` starts a comment; the last `id` seen is the stream's last event id (kept across events, as
EventSource does, and set even by a block without data)."""

from __future__ import annotations

import codecs
import json
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp


@dataclass
class Block:
    """One block of the stream up to a blank line: an event, or only an id, retry or comments."""

    event: str | None = None
    data: list[str] = field(default_factory=list)
    id: str | None = None
    retry: int | None = None
    comments: list[str] = field(default_factory=list)

    @property
    def json(self) -> Any:
        """The data, parsed as JSON."""
        return json.loads("\n".join(self.data))

    @property
    def dispatched(self) -> bool:
        """Whether EventSource would fire an event for this block (it has data)."""
        return bool(self.data)


@dataclass
class Reader:
    """Reads blocks off a response, remembering the last event id and the retry hint."""

    response: aiohttp.ClientResponse
    last_id: str = ""
    retry: int | None = None
    _buffer: str = ""
    _lines: deque[str] = field(default_factory=deque)  # read, not yet parsed
    _decoder: Any = field(default_factory=lambda: codecs.getincrementaldecoder("utf-8")())

    async def _line(self) -> str | None:
        """The next line (any line ending), None at the end. Kept on the reader, not in a
        generator, so a caller may stop iterating and go on later without losing lines."""
        while not self._lines:
            chunk = await self.response.content.readany()
            if not chunk:
                return None
            self._buffer += self._decoder.decode(chunk)
            normalised = self._buffer.replace("\r\n", "\n").replace("\r", "\n")
            *complete, self._buffer = normalised.split("\n")
            self._lines.extend(complete)
        return self._lines.popleft()

    async def blocks(self) -> AsyncIterator[Block]:
        """Every block, in order, until the stream ends."""
        block = Block()
        while (line := await self._line()) is not None:
            if not line:
                if block.id is not None:
                    self.last_id = block.id
                yield block
                block = Block()
                continue
            if line.startswith(":"):
                block.comments.append(line[1:].strip())
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                block.data.append(value)
            elif name == "event":
                block.event = value
            elif name == "id" and "\0" not in value:
                block.id = value
            elif name == "retry" and value.isdigit():
                block.retry = self.retry = int(value)

    async def events(self, name: str = "metric_changed") -> AsyncIterator[Block]:
        """Only the dispatched events called `name`."""
        async for block in self.blocks():
            if block.dispatched and block.event == name:
                yield block
