"""Auditing stored numbers against the upstreams: what a re-fetch found compared with what is
stored, per (work, source) and metric, and the uniform sample of works to check. Pure: the
re-fetch, the store and the clock stay outside.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Generic, TypeVar

from services.core.aggregation import SourceState
from services.core.events import Observation, Status

T = TypeVar("T")


class Verdict(StrEnum):
    """What comparing one (work, source) found."""

    SAME = "same"
    DIFFERS = "differs"
    UNREACHABLE = "unreachable"  # the re-fetch failed: nothing to compare
    NOT_STORED = "not_stored"  # no successful refresh stored yet: nothing to compare


@dataclass(frozen=True, slots=True)
class Difference:
    """One metric whose stored value is not what the upstream answers now (None: absent)."""

    work_id: str
    source: str
    metric: str
    stored: int | None
    upstream: int | None
    stored_at: datetime | None  # when the stored value was fetched

    def age_seconds(self, now: datetime) -> float | None:
        """How old the stored value is."""
        return (now - self.stored_at).total_seconds() if self.stored_at else None


@dataclass(frozen=True, slots=True)
class Comparison:
    """The verdict on one (work, source), with its differences or the re-fetch's error."""

    work_id: str
    source: str
    verdict: Verdict
    differences: tuple[Difference, ...] = ()
    error: str | None = None


def compare(stored: SourceState | None, fresh: Observation) -> Comparison:
    """The stored state of (work, source) against a fresh observation of it."""
    work, source = fresh.work_id, fresh.source
    if fresh.status is Status.ERROR:
        message = f"{fresh.error.kind}: {fresh.error.message}" if fresh.error else "fetch failed"
        return Comparison(work, source, Verdict.UNREACHABLE, error=message)
    if stored is None or stored.retrieved_at is None:
        return Comparison(work, source, Verdict.NOT_STORED)
    at, before, now = stored.retrieved_at, stored.metrics, fresh.metrics
    differences = tuple(
        Difference(work, source, name, before.get(name), now.get(name), at)
        for name in sorted(set(before) | set(now))
        if before.get(name) != now.get(name)
    )
    verdict = Verdict.DIFFERS if differences else Verdict.SAME
    return Comparison(work, source, verdict, differences)


@dataclass(frozen=True, slots=True)
class SourceTally:
    """One source's comparisons."""

    compared: int = 0
    differing: int = 0
    unreachable: int = 0
    not_stored: int = 0


@dataclass(slots=True)
class AuditReport:
    """Every comparison of one audit, and the figures drawn from them."""

    sampled: int
    at: datetime
    comparisons: list[Comparison] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # named ids that are not registered
    skipped: dict[str, str] = field(default_factory=dict)  # source -> why it was not checked

    def checked_works(self) -> set[str]:
        """Works with at least one (source) compared."""
        compared = (Verdict.SAME, Verdict.DIFFERS)
        return {c.work_id for c in self.comparisons if c.verdict in compared}

    def differing_works(self) -> set[str]:
        """Works with at least one difference."""
        return {c.work_id for c in self.comparisons if c.verdict is Verdict.DIFFERS}

    def share(self) -> float:
        """Share of the checked works that differ (0 when none was checked)."""
        checked = len(self.checked_works())
        return len(self.differing_works()) / checked if checked else 0.0

    def differences(self) -> list[Difference]:
        """Every difference, by work, source and metric."""
        found = [d for c in self.comparisons for d in c.differences]
        return sorted(found, key=lambda d: (d.work_id, d.source, d.metric))

    def by_source(self) -> dict[str, SourceTally]:
        """Per source: pairs compared, differing, unreachable, not yet stored."""
        out: dict[str, SourceTally] = {}
        for c in self.comparisons:
            t = out.get(c.source, SourceTally())
            out[c.source] = SourceTally(
                t.compared + (c.verdict in (Verdict.SAME, Verdict.DIFFERS)),
                t.differing + (c.verdict is Verdict.DIFFERS),
                t.unreachable + (c.verdict is Verdict.UNREACHABLE),
                t.not_stored + (c.verdict is Verdict.NOT_STORED),
            )
        return dict(sorted(out.items()))


class Reservoir(Generic[T]):
    """A uniform sample of `size` items from a stream of unknown length, in O(size) memory
    (Vitter's algorithm R; `rng` injected)."""

    def __init__(self, size: int, rng: random.Random) -> None:
        self.size = size
        self.rng = rng
        self.seen = 0
        self.items: list[T] = []

    def offer(self, items: Iterable[T]) -> None:
        """Consider each item for the sample."""
        for item in items:
            self.seen += 1
            if len(self.items) < self.size:
                self.items.append(item)
            else:
                slot = self.rng.randrange(self.seen)
                if slot < self.size:
                    self.items[slot] = item


def stored_of(states: Mapping[str, Sequence[SourceState]], source: str) -> dict[str, SourceState]:
    """The stored state of each work from `source`."""
    return {w: s for w, rows in states.items() for s in rows if s.source == source}
