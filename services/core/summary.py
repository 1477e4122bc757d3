"""The per-source status counts (`source_summary`): how many works have a state from each source
and how many of those failed at their last attempt. Pure: no store, no clock.

Stores keep them as summary rows, moved only by transitions, so reading them costs
O(sources x shards) rows, never one row a state:

- a work's first state from a source: one more work;
- a state becoming an error: one more error; an error followed by a success: one less.

`summary_changes` says what a batch of aggregates moves (several per (work, source) possible:
the net effect from the state before the batch to the last one); `corrections` what a recount
adds to the kept rows to make them the counts of the states themselves (`alm db
recount-summary`, and the migrations that create the rows).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from services.core.aggregation import Aggregate
from services.core.events import Status

K = TypeVar("K", bound=Hashable)
Counts = tuple[int, int]  # (works, errors)


@dataclass(frozen=True, slots=True)
class SummaryChange:
    """What one (work, source)'s transition adds to its source's counts."""

    work_id: str
    source: str
    works: int
    errors: int


def summary_changes(items: Sequence[Aggregate]) -> list[SummaryChange]:
    """The transitions of `items` (in order; unapplied ones change nothing), one a (work,
    source) whose counts move: from the state before its first applied aggregate (none, an
    error, or not) to its last state."""
    before: dict[tuple[str, str], Counts] = {}
    after: dict[tuple[str, str], int] = {}
    for item in items:
        if not item.applied:
            continue
        key = (item.state.work_id, item.state.source)
        if key not in before:
            had = 0 if item.new else 1
            before[key] = (had, int(item.failed_before is not None))
        after[key] = int(item.state.status is Status.ERROR)
    out = []
    for (work_id, source), (had, failing) in before.items():
        change = SummaryChange(work_id, source, 1 - had, after[(work_id, source)] - failing)
        if change.works or change.errors:
            out.append(change)
    return out


def add(into: dict[K, Counts], key: K, works: int, errors: int) -> None:
    """Add (works, errors) to `into[key]`."""
    kept = into.get(key, (0, 0))
    into[key] = (kept[0] + works, kept[1] + errors)


def tally(states: Iterable[tuple[K, Status | None]]) -> dict[K, Counts]:
    """The counts of (key, status) pairs, one a state (a None status: no state, not counted)."""
    out: dict[K, Counts] = {}
    for key, status in states:
        if status is not None:
            add(out, key, 1, int(status is Status.ERROR))
    return out


def corrections(truth: Mapping[K, Counts], kept: Mapping[K, Counts]) -> dict[K, Counts]:
    """What to add to each of the `kept` rows to make them `truth` (rows neither has: none)."""
    out = {}
    for key in set(truth) | set(kept):
        works, errors = truth.get(key, (0, 0))
        had_works, had_errors = kept.get(key, (0, 0))
        if (works, errors) != (had_works, had_errors):
            out[key] = (works - had_works, errors - had_errors)
    return out


def by_source(rows: Iterable[tuple[str, int, int]]) -> dict[str, dict[str, int]]:
    """`source_summary`'s answer from (source, works, errors) rows (several a source: shards),
    sources in name order; a source whose rows add up to nothing is left out."""
    sums: dict[str, Counts] = {}
    for source, works, errors in rows:
        add(sums, source, works, errors)
    return {
        source: {"works": works, "errors": errors}
        for source, (works, errors) in sorted(sums.items())
        if works or errors
    }
