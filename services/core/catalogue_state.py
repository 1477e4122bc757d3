"""Importing a publisher's catalogue: what is imported (a scope), how its range of index dates
is cut into windows, and the state of an import that moves page by page and survives a restart.
Pure: no I/O, no clock (time comes in as a parameter); the Crossref calls are elsewhere
(services/fetchers/crossref_catalogue.py) and so is the loop (services/catalogue_import.py).

Why windows, and when a cursor is reused (docs/publishers.md tells it at length):

- Crossref's deep-paging cursors are Elasticsearch scroll contexts: the server keeps the
  position, the same cursor string usually comes back page after page, and the context expires
  after five minutes unused. A cursor cannot be rewound: a page that was asked for but never
  registered (the process killed, the answer lost) cannot be asked for again with it, and a
  fresh `cursor=*` is a new snapshot whose order need not be the old one, so "skip the first N"
  after a restart could skip works never seen.
- So an import covers a fixed range of index dates (from `since`, or the beginning, to
  `until`, the day it started) cut into windows of at most WINDOW_WORKS works, planned with
  `rows=0` counts by halving date ranges (`plan_windows`); each window is paged with a cursor of
  its own. A window whose last page was registered is done for good. After an interruption the
  current window goes on with its cursor only if no page is in flight and the cursor was
  answered less than CURSOR_REUSE ago; otherwise it starts again from `cursor=*`. Registration
  is idempotent, so redoing a window duplicates nothing: a resume redoes at most one window.
- Index dates only move forward (`indexed` is the time of a work's latest re-index), so a past
  window can only lose works while the import runs: a work re-indexed meanwhile lands in the
  last window (which ends on `until`) or after it, where the next run, whose `since` is this
  run's `until` (one day of overlap), finds it. Consecutive runs miss nothing.
- A day holds at least one window: a day with more works than WINDOW_WORKS (a mass re-index)
  is one big window, redone whole if interrupted without a usable cursor.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from services.core.timeutil import from_iso, to_iso

WINDOW_WORKS = 100_000  # works per window at most (a day can hold more: one window)
FLOOR = date(2000, 1, 1)  # splitting starts here; the first window has no lower bound at all
CURSOR_LIFETIME = timedelta(minutes=5)  # Crossref: a cursor expires five minutes unused
CURSOR_REUSE = CURSOR_LIFETIME - timedelta(minutes=1)  # reused only if younger (clock margin)
MAX_ROWS = 1000  # Crossref's `rows` limit

_MEMBER = re.compile(r"[1-9][0-9]{0,9}")
_PREFIX = re.compile(r"10\.[0-9]{4,9}")


class InvalidScope(ValueError):
    """A member id or DOI prefix that is not one; the message says what is expected."""


class ScopeKind(StrEnum):
    """What a catalogue import reads: a Crossref member's works or an owner prefix's."""

    MEMBER = "member"
    PREFIX = "prefix"


@dataclass(frozen=True, slots=True)
class Scope:
    """A member (`member:340`) or an owner prefix (`prefix:10.1371`) whose works are imported."""

    kind: ScopeKind
    value: str

    @classmethod
    def member(cls, raw: str) -> Scope:
        """The scope of Crossref member `raw` (its numeric id)."""
        value = raw.strip()
        if not _MEMBER.fullmatch(value):
            raise InvalidScope(f"a Crossref member id is a number such as 340, not {raw!r}")
        return cls(ScopeKind.MEMBER, value)

    @classmethod
    def prefix(cls, raw: str) -> Scope:
        """The scope of DOI owner prefix `raw` (`10.1371`; a `doi:` or URL form is not)."""
        value = raw.strip()
        if not _PREFIX.fullmatch(value):
            raise InvalidScope(
                f"a DOI prefix is 10. and 4 to 9 digits such as 10.1371, not {raw!r}"
            )
        return cls(ScopeKind.PREFIX, value)

    @classmethod
    def parse(cls, key: str) -> Scope:
        """Inverse of `key`."""
        kind, _, value = key.partition(":")
        if kind == ScopeKind.MEMBER:
            return cls.member(value)
        if kind == ScopeKind.PREFIX:
            return cls.prefix(value)
        raise InvalidScope(f"a scope is member:ID or prefix:10.NNNN, not {key!r}")

    @property
    def key(self) -> str:
        """`member:340` or `prefix:10.1371` (how imports are stored)."""
        return f"{self.kind.value}:{self.value}"


@dataclass(frozen=True, slots=True)
class Window:
    """Works indexed from `start` (None: since the first one) to `end`, both days included."""

    start: date | None
    end: date
    expected: int | None = None  # works counted when the window was planned

    def halves(self) -> tuple[Window, Window] | None:
        """The window cut in two at its middle day (None for a window of one day)."""
        first = self.start or min(FLOOR, self.end)
        if first >= self.end:
            return None
        middle = first + (self.end - first) // 2
        return Window(self.start, middle), Window(middle + timedelta(days=1), self.end)

    def label(self) -> str:
        """`2024-01-01..2024-06-30` (`..2024-06-30` without a start)."""
        return f"{self.start.isoformat() if self.start else ''}..{self.end.isoformat()}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "start": self.start.isoformat() if self.start else None,
            "end": self.end.isoformat(),
            "expected": self.expected,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Window:
        """Inverse of to_dict."""
        start = data.get("start")
        return cls(
            date.fromisoformat(start) if start else None,
            date.fromisoformat(data["end"]),
            data.get("expected"),
        )


Counter = Callable[[Window], Awaitable[int]]


async def plan_windows(
    whole: Window, total: int, count: Counter, limit: int = WINDOW_WORKS
) -> list[Window]:
    """`whole` (holding `total` works) cut into windows of at most `limit` works each, in
    date order: a window with more is halved, counting the first half (`count`, a `rows=0`
    query) and taking the rest as the second's. A window of one day is never cut. Empty windows
    before the last are left out (past windows only lose works); the last one always stays,
    since works indexed while the import runs land in it. One count per cut."""
    out: list[Window] = []
    todo = [(whole, total)]
    while todo:
        window, works = todo.pop()
        halves = window.halves() if works > limit else None
        if halves is None:
            if works > 0 or window.end == whole.end:
                out.append(replace(window, expected=works))
            continue
        first, second = halves
        in_first = min(works, await count(first))
        todo.append((second, works - in_first))
        todo.append((first, in_first))
    return out


@dataclass(frozen=True, slots=True)
class Tally:
    """What registration did with the works of an import so far."""

    created: int = 0  # new works
    known: int = 0  # works already registered (re-imported, or known by another route)
    updated: int = 0  # known works whose metadata the catalogue changed
    invalid: int = 0  # items without a usable DOI, or refused by the schema

    def __add__(self, other: Tally) -> Tally:
        return Tally(
            self.created + other.created,
            self.known + other.known,
            self.updated + other.updated,
            self.invalid + other.invalid,
        )


class Resume(StrEnum):
    """How an import goes on after a stop."""

    FRESH = "fresh"  # the current window has not started: nothing to decide
    CONTINUE = "continue"  # its cursor is young and no page is in flight: go on with it
    IN_FLIGHT = "in_flight"  # a page was asked for and not registered: restart the window
    EXPIRED = "expired"  # the cursor is (nearly) five minutes old: restart the window


@dataclass(frozen=True, slots=True)
class ImportState:
    """Where an import of one scope stands; stored after every page, so it survives a kill."""

    scope: Scope
    until: date  # the last index date covered (the day the import started)
    started_at: datetime
    since: date | None = None  # the first index date covered (None: the whole catalogue)
    member_id: str | None = None  # the publisher (known once the scope is looked up)
    total: int | None = None  # works in the range when it was planned (`total-results`)
    windows: tuple[Window, ...] = ()  # empty until planned
    window: int = 0  # index of the current window
    cursor: str | None = None  # the current window's cursor (None: start it with `*`)
    cursor_at: datetime | None = None  # when Crossref last answered with `cursor`
    in_flight: bool = False  # a page was asked for with `cursor` and is not yet registered
    before: int = 0  # works received in the windows before the current one
    within: int = 0  # works received in the current window since it (re)started
    restarts: int = 0  # windows started again (cursor expired, page in flight, refused)
    tally: Tally = field(default_factory=Tally)
    completed_at: datetime | None = None
    last_complete: date | None = None  # `until` of the scope's previous complete import

    @property
    def done(self) -> int:
        """Works received so far (the current window counted from its latest start)."""
        return self.before + self.within

    @property
    def complete(self) -> bool:
        """Every window's last page is registered."""
        return self.completed_at is not None

    @property
    def current(self) -> Window:
        """The window being paged."""
        return self.windows[self.window]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what the stores keep)."""
        return {
            "scope": self.scope.key,
            "until": self.until.isoformat(),
            "started_at": to_iso(self.started_at),
            "since": self.since.isoformat() if self.since else None,
            "member_id": self.member_id,
            "total": self.total,
            "windows": [w.to_dict() for w in self.windows],
            "window": self.window,
            "cursor": self.cursor,
            "cursor_at": to_iso(self.cursor_at) if self.cursor_at else None,
            "in_flight": self.in_flight,
            "before": self.before,
            "within": self.within,
            "restarts": self.restarts,
            "tally": {
                "created": self.tally.created,
                "known": self.tally.known,
                "updated": self.tally.updated,
                "invalid": self.tally.invalid,
            },
            "completed_at": to_iso(self.completed_at) if self.completed_at else None,
            "last_complete": self.last_complete.isoformat() if self.last_complete else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ImportState:
        """Inverse of to_dict."""
        since, cursor_at, completed = (
            data.get("since"),
            data.get("cursor_at"),
            data.get("completed_at"),
        )
        return cls(
            scope=Scope.parse(data["scope"]),
            until=date.fromisoformat(data["until"]),
            started_at=from_iso(data["started_at"]),
            since=date.fromisoformat(since) if since else None,
            member_id=data.get("member_id"),
            total=data.get("total"),
            windows=tuple(Window.from_dict(w) for w in data.get("windows", ())),
            window=int(data.get("window", 0)),
            cursor=data.get("cursor"),
            cursor_at=from_iso(cursor_at) if cursor_at else None,
            in_flight=bool(data.get("in_flight", False)),
            before=int(data.get("before", 0)),
            within=int(data.get("within", 0)),
            restarts=int(data.get("restarts", 0)),
            tally=Tally(**data.get("tally", {})),
            completed_at=from_iso(completed) if completed else None,
            last_complete=date.fromisoformat(last) if (last := data.get("last_complete")) else None,
        )


def last_complete(previous: ImportState | None) -> date | None:
    """The `until` of the latest complete import, given the scope's latest import."""
    if previous is None:
        return None
    return previous.until if previous.complete else previous.last_complete


def begin(
    scope: Scope, since: date | None, now: datetime, previous: ImportState | None = None
) -> ImportState:
    """A new import of `scope` covering index dates from `since` to today (`now`'s date); with
    `since` None, from where the last complete import ended (`previous` is the scope's latest
    import): the day that import started, one day of overlap, so that a work indexed that day
    after the import passed it is not missed; the whole catalogue if none completed."""
    until = now.date()
    before = last_complete(previous)
    since = since if since is not None else before
    if since is not None and since > until:
        raise ValueError(f"since {since.isoformat()} is after today ({until.isoformat()})")
    return ImportState(scope=scope, until=until, started_at=now, since=since, last_complete=before)


def whole(state: ImportState) -> Window:
    """The window of everything the import covers."""
    return Window(state.since, state.until)


def planned(state: ImportState, windows: list[Window], total: int) -> ImportState:
    """`state` with its windows planned (`plan_windows`) and the total they hold."""
    if not windows:
        raise ValueError("an import plans at least one window (the last is always kept)")
    return replace(state, windows=tuple(windows), total=total, window=0)


def resume(state: ImportState, now: datetime) -> tuple[ImportState, Resume]:
    """How `state`, read back after a stop, goes on: with its cursor, or from the start of
    the current window (the cursor dropped, the window's count reset)."""
    if state.cursor is None:
        return state, Resume.FRESH
    if state.in_flight:
        return restart_window(state), Resume.IN_FLIGHT
    if state.cursor_at is None or now - state.cursor_at >= CURSOR_REUSE:
        return restart_window(state), Resume.EXPIRED
    return state, Resume.CONTINUE


def restart_window(state: ImportState) -> ImportState:
    """The current window started again from `cursor=*` (what it registered stays)."""
    return replace(
        state,
        cursor=None,
        cursor_at=None,
        in_flight=False,
        within=0,
        restarts=state.restarts + 1,
    )


def asking(state: ImportState) -> ImportState:
    """`state` while a page is asked for: if it stops now, the cursor may be past a page that
    was never registered."""
    return replace(state, in_flight=True)


def received(
    state: ImportState,
    items: int,
    next_cursor: str | None,
    rows: int,
    tally: Tally,
    now: datetime,
) -> ImportState:
    """`state` once a page of `items` works (asked for `rows`) is registered. A page with fewer
    items than `rows` is the window's last (Crossref: beyond the end, pages are empty): the
    next window starts fresh, and after the last window the import is complete."""
    state = replace(state, tally=state.tally + tally, in_flight=False)
    if items >= rows:
        if not next_cursor:
            raise ValueError("a full page without a next cursor: the window cannot go on")
        return replace(state, within=state.within + items, cursor=next_cursor, cursor_at=now)
    state = replace(
        state,
        before=state.before + state.within + items,
        within=0,
        cursor=None,
        cursor_at=None,
        window=state.window + 1,
    )
    if state.window >= len(state.windows):
        state = replace(state, completed_at=now)
    return state


def cursor_of(state: ImportState) -> str:
    """The cursor to ask the current window's next page with (`*` starts it)."""
    return state.cursor or "*"
