"""Progress of a long command-line job (an import, a backfill): on a terminal, one line
rewritten in place with the count, the share of the total and the rate; elsewhere (a log file,
CI) a plain line every few seconds. Nothing is shown for a job that ends before the first
update is due, so short runs stay quiet.

    with Progress("registering", "works", total=len(ids)) as progress:
        for chunk in chunks:
            ...
            progress.advance(len(chunk))
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO


def _count(n: int) -> str:
    return f"{n:,}"


class Progress:
    """Counts work done and shows it on `stream` (stderr by default)."""

    def __init__(
        self,
        action: str,
        unit: str,
        total: int | None = None,
        stream: TextIO | None = None,
        interactive: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
        every: float | None = None,
    ) -> None:
        self.action = action
        self.unit = unit
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self.clock = clock
        # a terminal is redrawn five times a second; a log gets a line every 5 seconds
        self.every = every if every is not None else (0.2 if self.interactive else 5.0)
        self.done = 0
        self.started = clock()
        self._next = self.started + self.every
        self.shown = False

    def advance(self, n: int = 1) -> None:
        """Count `n` more units done; show the progress if an update is due."""
        self.done += n
        now = self.clock()
        if now >= self._next:
            self._show(now)
            self._next = now + self.every

    def line(self, now: float | None = None) -> str:
        """The progress as text: `registering: 12,000 of 50,000 works (24%), 3,100/s`."""
        elapsed = max((now if now is not None else self.clock()) - self.started, 1e-9)
        rate = self.done / elapsed
        of = ""
        if self.total:
            of = f" of {_count(self.total)} ({100 * self.done // self.total}%)"
        return f"{self.action}: {_count(self.done)}{of} {self.unit}, {_count(round(rate))}/s"

    def _show(self, now: float) -> None:
        if self.interactive:
            self.stream.write("\r\x1b[K" + self.line(now))
        else:
            self.stream.write(self.line(now) + "\n")
        self.stream.flush()
        self.shown = True

    def close(self) -> None:
        """Show the final count if progress was shown at all (and end the terminal line)."""
        if not self.shown:
            return
        elapsed = self.clock() - self.started
        final = f"{self.line()} in {elapsed:.1f} s"
        self.stream.write(("\r\x1b[K" + final + "\n") if self.interactive else final + "\n")
        self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
