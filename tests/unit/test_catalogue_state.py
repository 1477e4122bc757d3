"""The pure rules of a catalogue import: scopes, windows and their planning, how an import
moves page by page, and how it resumes after a stop (services/core/catalogue_state.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest

from services.core.catalogue_state import (
    CURSOR_REUSE,
    Counter,
    ImportState,
    InvalidScope,
    Resume,
    Scope,
    ScopeKind,
    Tally,
    Window,
    asking,
    begin,
    cursor_of,
    last_complete,
    plan_windows,
    planned,
    received,
    restart_window,
    resume,
    whole,
)

NOW = datetime(2026, 11, 29, 16, 0, tzinfo=UTC)
TODAY = NOW.date()


@pytest.mark.parametrize(
    ("make", "raw", "key"),
    [
        (Scope.member, "340", "member:340"),
        (Scope.member, " 78 ", "member:78"),
        (Scope.prefix, "10.1371", "prefix:10.1371"),
        (Scope.prefix, "10.123456789", "prefix:10.123456789"),
    ],
)
def test_scopes_read_and_round_trip(make: Callable[[str], Scope], raw: str, key: str) -> None:
    """A member id or a prefix becomes a scope whose key reads back to it."""
    scope = make(raw)
    assert scope.key == key
    assert Scope.parse(key) == scope


@pytest.mark.parametrize(
    ("make", "raw"),
    [
        (Scope.member, "0340"),
        (Scope.member, "PLOS"),
        (Scope.member, "-1"),
        (Scope.member, "12345678901"),
        (Scope.prefix, "10.137"),
        (Scope.prefix, "doi:10.1371"),
        (Scope.prefix, "10.1371/journal"),
        (Scope.prefix, "11.1371"),
    ],
)
def test_bad_scopes_are_refused_with_what_is_expected(
    make: Callable[[str], Scope], raw: str
) -> None:
    """Anything else than a member id or an owner prefix is refused, saying what is wanted."""
    with pytest.raises(InvalidScope, match="such as"):
        make(raw)


def test_a_window_halves_at_its_middle_day_and_a_day_does_not() -> None:
    """Halves cover the window exactly (no day lost, none twice); one day is not cut."""
    first, second = Window(date(2026, 1, 1), date(2026, 1, 10)).halves() or (None, None)
    assert first == Window(date(2026, 1, 1), date(2026, 1, 5))
    assert second == Window(date(2026, 1, 6), date(2026, 1, 10))
    assert Window(date(2026, 1, 1), date(2026, 1, 1)).halves() is None
    open_first, _ = Window(None, date(2026, 1, 1)).halves() or (None, None)
    assert open_first is not None and open_first.start is None  # no lower bound stays open


def _counter(by_day: dict[date, int]) -> tuple[list[Window], Counter]:
    asked: list[Window] = []

    async def count(window: Window) -> int:
        asked.append(window)
        start = window.start or date.min
        return sum(n for d, n in by_day.items() if start <= d <= window.end)

    return asked, count


async def test_planning_cuts_into_windows_within_the_limit_covering_every_work() -> None:
    """Every work falls in exactly one planned window, each holding at most the limit (a day
    above it is a window of its own); windows keep date order; one count per cut."""
    by_day = {date(2024, 3, 1): 40, date(2026, 10, 2): 70, date(2026, 11, 20): 250}
    by_day |= {date(2026, 11, 1) + timedelta(days=i): 9 for i in range(10)}
    asked, count = _counter(by_day)
    total = sum(by_day.values())
    windows = await plan_windows(Window(None, TODAY), total, count, limit=100)
    covered = [d for d in by_day for w in windows if (w.start or date.min) <= d <= w.end]
    assert sorted(covered) == sorted(by_day)  # each day in exactly one window
    assert sum(w.expected or 0 for w in windows) == total
    assert all((w.expected or 0) <= 100 or w.start == w.end for w in windows)
    assert [w.end for w in windows] == sorted(w.end for w in windows)
    assert windows[-1].end == TODAY
    assert len(asked) < 3 * len(windows) + 20  # cuts, not a count per day


async def test_planning_a_small_range_asks_nothing_and_keeps_the_last_window() -> None:
    """A range within the limit is one window, no count asked; an empty one still has its
    window (works indexed while the import runs land there)."""
    asked, count = _counter({})
    assert await plan_windows(Window(None, TODAY), 50, count, limit=100) == [
        Window(None, TODAY, 50)
    ]
    assert await plan_windows(Window(TODAY, TODAY), 0, count) == [Window(TODAY, TODAY, 0)]
    assert asked == []


def _started(windows: int = 2) -> ImportState:
    state = begin(Scope.member("340"), None, NOW)
    plan = [Window(None, date(2025, 1, 1), 1500), Window(date(2025, 1, 2), TODAY, 700)]
    return planned(state, plan[:windows], 2200)


def test_pages_move_the_import_through_its_windows_to_completion() -> None:
    """Full pages keep the window's cursor; a short page ends the window; after the last
    window the import is complete, every page counted once."""
    state = _started()
    assert cursor_of(state) == "*"
    state = received(asking(state), 1000, "C1", 1000, Tally(created=1000), NOW)
    assert (state.cursor, state.within, state.window, state.in_flight) == ("C1", 1000, 0, False)
    assert cursor_of(state) == "C1"
    state = received(asking(state), 500, "C1", 1000, Tally(created=500), NOW)
    assert (state.cursor, state.before, state.within, state.window) == (None, 1500, 0, 1)
    state = received(asking(state), 1000, "D1", 1000, Tally(created=990, known=10), NOW)
    state = received(asking(state), 0, "D1", 1000, Tally(), NOW)  # the empty page past the end
    assert state.complete and state.completed_at == NOW
    assert state.done == 2500
    assert state.tally == Tally(created=2490, known=10)


def test_a_full_page_without_a_cursor_cannot_go_on() -> None:
    """A page of `rows` works with no next cursor is refused, not taken for the last one."""
    with pytest.raises(ValueError, match="next cursor"):
        received(asking(_started()), 1000, None, 1000, Tally(), NOW)


@pytest.mark.parametrize(
    ("cursor", "in_flight", "age", "how"),
    [
        (None, False, None, Resume.FRESH),
        ("C1", False, timedelta(seconds=30), Resume.CONTINUE),
        ("C1", True, timedelta(seconds=30), Resume.IN_FLIGHT),
        ("C1", False, CURSOR_REUSE, Resume.EXPIRED),
        ("C1", False, timedelta(hours=3), Resume.EXPIRED),
        ("C1", False, None, Resume.EXPIRED),
    ],
)
def test_resume_goes_on_with_a_young_cursor_else_restarts_the_window(
    cursor: str | None, in_flight: bool, age: timedelta | None, how: Resume
) -> None:
    """A cursor is reused only if no page was in flight and it was answered less than four
    minutes ago; else the window starts again from `*`, its count back to zero."""
    state = received(asking(_started()), 1000, "C0", 1000, Tally(created=1000), NOW)
    state = replace(
        state,
        cursor=cursor,
        in_flight=in_flight,
        cursor_at=NOW - age if age is not None else None,
    )
    after, got = resume(state, NOW)
    assert got is how
    if how in (Resume.FRESH, Resume.CONTINUE):
        assert after == state
    else:
        assert (after.cursor, after.within, after.in_flight) == (None, 0, False)
        assert after.restarts == state.restarts + 1
        assert after.tally == state.tally  # what was registered stays registered


def test_restarting_a_window_keeps_the_windows_before_it() -> None:
    """Only the current window's progress goes back."""
    state = received(asking(_started()), 500, "C1", 1000, Tally(created=500), NOW)
    state = received(asking(state), 1000, "D1", 1000, Tally(created=1000), NOW)
    assert (state.before, state.within) == (500, 1000)
    state = restart_window(state)
    assert (state.before, state.within, state.window, cursor_of(state)) == (500, 0, 1, "*")


def test_the_next_import_starts_where_the_last_complete_one_started() -> None:
    """`since` defaults to the `until` of the last complete import (one day of overlap),
    carried across unfinished and restarted imports; an explicit since wins."""
    first = _started(windows=1)
    assert whole(first) == Window(None, TODAY)
    done = received(asking(first), 10, None, 1000, Tally(created=10), NOW)
    assert done.complete and last_complete(done) == TODAY
    later = NOW + timedelta(days=1)
    nightly = begin(Scope.member("340"), None, later, done)
    assert (nightly.since, nightly.until, nightly.last_complete) == (TODAY, later.date(), TODAY)
    unfinished = planned(nightly, [Window(TODAY, later.date())], 5)
    restarted = begin(Scope.member("340"), None, later + timedelta(days=1), unfinished)
    assert restarted.since == TODAY  # still the last complete import's day
    chosen = begin(Scope.member("340"), date(2026, 1, 1), later, done)
    assert chosen.since == date(2026, 1, 1)
    with pytest.raises(ValueError, match="after today"):
        begin(Scope.member("340"), TODAY + timedelta(days=1), NOW)


def test_the_state_survives_a_round_trip_through_json() -> None:
    """What the stores keep reads back equal."""
    state = received(asking(_started()), 1000, "C1+/=", 1000, Tally(1, 2, 3, 4), NOW)
    state = asking(replace(state, member_id="340", restarts=2, last_complete=date(2026, 1, 2)))
    assert ImportState.from_dict(state.to_dict()) == state
    assert Scope.parse(state.to_dict()["scope"]).kind is ScopeKind.MEMBER
