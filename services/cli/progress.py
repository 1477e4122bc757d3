"""Progress of a long command-line job (an import, a backfill): on a terminal, one line
rewritten in place with a bar, the count, the share of the total, the rate and the time left;
elsewhere (a log file, CI) the same without the bar, a plain line every few seconds. Nothing is
shown for a job that ends before the first update is due, so short runs stay quiet.

    with Progress("registering", "works", total=len(ids)) as progress:
        for chunk in chunks:
            ...
            progress.advance(len(chunk))

A job that learns its total late sets `total`; one that resumes starts at `done=` (the rate
and the time left count only what this run does); one whose position can go back (a window of
a catalogue import started again) uses `moveto`.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

BAR_WIDTH = 24


def _count(n: int) -> str:
    return f"{n:,}"


def duration(seconds: float) -> str:
    """`45s`, `4m05s`, `3h07m`: a time left, to the precision that matters."""
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"


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
        done: int = 0,
    ) -> None:
        self.action = action
        self.unit = unit
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self.clock = clock
        # a terminal is redrawn five times a second; a log gets a line every 5 seconds
        self.every = every if every is not None else (0.2 if self.interactive else 5.0)
        self.done = done
        self.first = done  # where this run started (a resumed job has done some already)
        self.started = clock()
        self._next = self.started + self.every
        self.shown = False

    def advance(self, n: int = 1) -> None:
        """Count `n` more units done; show the progress if an update is due."""
        self.moveto(self.done + n)

    def moveto(self, done: int) -> None:
        """Set how many units are done (it may go back); show the progress if due."""
        self.done = done
        now = self.clock()
        if now >= self._next:
            self._show(now)
            self._next = now + self.every

    def rate(self, now: float | None = None) -> float:
        """Units per second done by this run."""
        elapsed = max((now if now is not None else self.clock()) - self.started, 1e-9)
        return max(0, self.done - self.first) / elapsed

    def left(self, now: float | None = None) -> float | None:
        """Seconds left at the current rate (None without a total or a rate)."""
        rate = self.rate(now)
        if not self.total or rate <= 0:
            return None
        return max(0, self.total - self.done) / rate

    def line(self, now: float | None = None, final: bool = False) -> str:
        """The progress as text: `registering: 12,000 of 50,000 (24%) works, 3,100/s, 12s left`
        (with a bar after the action on a terminal; without the time left when `final`)."""
        of = ""
        if self.total:
            share = min(100, 100 * self.done // self.total)
            of = f" of {_count(self.total)} ({share}%)"
        text = f"{_count(self.done)}{of} {self.unit}, {_count(round(self.rate(now)))}/s"
        left = None if final else self.left(now)
        if left is not None:
            text += f", {duration(left)} left"
        if self.interactive and self.total and not final:
            return f"{self.action} {self._bar()} {text}"
        return f"{self.action}: {text}"

    def _bar(self) -> str:
        assert self.total
        filled = min(BAR_WIDTH, BAR_WIDTH * max(0, self.done) // self.total)
        return "[" + "#" * filled + "." * (BAR_WIDTH - filled) + "]"

    def note(self, text: str) -> None:
        """A line of its own (a retry, a restart), not overwritten by the progress line."""
        self.stream.write(("\r\x1b[K" if self.interactive and self.shown else "") + text + "\n")
        self.stream.flush()
        self._next = 0.0  # redraw the progress line at the next update

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
        now = self.clock()
        final = f"{self.line(now, final=True)} in {now - self.started:.1f} s"
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
