"""The reconciliation oracle: what every work's totals, change events and history must be, from
the stub upstream's deterministic answers for synthetic works (10.5555/ DOIs), and what a fault
scenario left instead.

The expectation comes from running the same works through the embedded pipeline (in-process
bus, SQLite) against the same synthetic stub: whatever the distributed mode went through, it
must end where an undisturbed run ends. Counted:

- lost: a (work, source) with no stored state (never refreshed, or its refresh dropped);
- wrong: stored totals that differ from the stub's;
- in error: a last fetch that failed (stuck in error);
- stale: not refreshed since the fault ended (a work whose scheduling was lost);
- double-published: change events beyond one per (work, source) and value;
- unannounced / wrong events: a change the topic lacks, or one with the wrong value;
- history: (work, source) whose daily points are not the undisturbed run's (duplicated or
  missing points, wrong values);
- dead letters: data refused for good (an observation or an event on alm.deadletter); and,
  apart, refreshes given up after every attempt (an upstream down longer than the retries
  last: the work is refreshed again at its next due time, nothing is lost).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from services.adapters.cassandra import CassandraStore
from services.adapters.kafka import KafkaBus
from services.core.aggregation import SourceState
from services.core.events import TOPIC_CHANGED, TOPIC_DEADLETTER, Status
from services.core.ports import Message
from services.embedded import refresh_until_idle
from tests.unit.pipeline_kit import pipeline_kit

Pair = tuple[str, str]  # (work id, source)


@dataclass(frozen=True)
class Expected:
    """What an undisturbed run stores and announces for each (work, source)."""

    totals: dict[Pair, dict[str, int]]
    events: dict[Pair, list[dict[str, int]]]  # the `current` of each change event, in order
    history: dict[Pair, list[dict[str, int]]]  # each daily point's metrics


async def expected(dois: list[str], sources: tuple[str, ...], tmp: Path) -> Expected:
    """Run the works through the embedded pipeline against the synthetic stub (`tmp`: an
    existing directory for its SQLite file)."""
    async with pipeline_kit(tmp, synthetic=True, sources=sources) as kit:
        await kit.register(dois)
        await refresh_until_idle(kit.pipeline)
        states = await kit.store.states_for(dois)
        totals = {(w, s.source): dict(s.metrics) for w, rows in states.items() for s in rows}
        changed = await kit.bus.consumer([TOPIC_CHANGED], "oracle").poll(10**7, 0)
        history: dict[Pair, list[dict[str, int]]] = {pair: [] for pair in totals}
        for work in dois:
            for point in await kit.store.history(work, None):
                history[(work, point.source)].append(dict(point.metrics))
    return Expected(totals, _announced(changed), history)


def _announced(messages: list[Message]) -> dict[Pair, list[dict[str, int]]]:
    out: dict[Pair, list[dict[str, int]]] = {}
    for m in messages:
        pair = (str(m.value["work_id"]), str(m.value["source"]))
        out.setdefault(pair, []).append(dict(m.value["current"]))
    return out


@dataclass
class Report:
    """What a scenario left, counted against the expectation."""

    pairs: int
    lost: list[Pair] = field(default_factory=list)
    wrong: list[Pair] = field(default_factory=list)
    in_error: list[Pair] = field(default_factory=list)
    stale: list[Pair] = field(default_factory=list)
    double_published: int = 0
    unannounced: list[Pair] = field(default_factory=list)
    wrong_events: int = 0
    history: list[Pair] = field(default_factory=list)
    dead_letters: list[str] = field(default_factory=list)  # data refused (bad_event)
    gave_up: list[str] = field(default_factory=list)  # refreshes failed after every attempt

    def problems(self) -> dict[str, int]:
        """Every non-zero count (empty when the run is clean)."""
        counts = {
            "lost": len(self.lost),
            "wrong": len(self.wrong),
            "in error": len(self.in_error),
            "stale (not refreshed since the fault)": len(self.stale),
            "double-published": self.double_published,
            "unannounced": len(self.unannounced),
            "wrong events": self.wrong_events,
            "history wrong or duplicated": len(self.history),
            "dead letters": len(self.dead_letters),
        }
        return {k: v for k, v in counts.items() if v}

    def summary(self) -> str:
        """One line: the counts, and a few examples of each problem."""
        given_up = (
            f"; {len(self.gave_up)} refreshes given up after their last attempt (done again "
            "at their next due time)"
            if self.gave_up
            else ""
        )
        if not self.problems():
            return (
                f"{self.pairs} (work, source) pairs: 0 lost, 0 wrong, 0 double-published, "
                f"0 duplicated history, 0 in error, 0 stale{given_up}"
            )
        examples = {
            "lost": self.lost[:3],
            "wrong": self.wrong[:3],
            "in error": self.in_error[:3],
            "stale": self.stale[:3],
            "unannounced": self.unannounced[:3],
            "history": self.history[:3],
            "dead letters": self.dead_letters[:3],
            "given up": self.gave_up[:3],
        }
        shown = {k: v for k, v in examples.items() if v}
        return f"{self.pairs} pairs: {self.problems()}{given_up}; e.g. {shown}"


async def _everything(bus: KafkaBus, topic: str) -> list[Message]:
    parts = list(range(await bus.partitions(topic)))
    if not parts:
        return []
    ends = await bus.end_offsets(topic, parts)
    return await bus.read(topic, {p: (0, end) for p, end in ends.items()})


async def reconcile(
    store: CassandraStore, bus: KafkaBus, want: Expected, since: datetime | None
) -> Report:
    """Count what the distributed run left against `want`; `since`: when the fault ended
    (every (work, source) must have been refreshed after it)."""
    report = Report(len(want.totals))
    works = sorted({w for w, _ in want.totals})
    states = await store.states_for(works)
    _check_states(
        {(w, s.source): s for w, rows in states.items() for s in rows}, want, since, report
    )
    _check_events(_announced(await _everything(bus, TOPIC_CHANGED)), want, report)
    report.history = await _history_problems(store, want)
    for m in await _everything(bus, TOPIC_DEADLETTER):
        letters = report.dead_letters if "bad_event" in m.value else report.gave_up
        letters.append(f"{m.key}: {m.value.get('reason')}")
    return report


def _check_states(
    stored: dict[Pair, SourceState], want: Expected, since: datetime | None, report: Report
) -> None:
    for pair, totals in want.totals.items():
        state = stored.get(pair)
        if state is None:
            report.lost.append(pair)
            continue
        if state.status is Status.ERROR:
            report.in_error.append(pair)
        if dict(state.metrics) != totals:
            report.wrong.append(pair)
        if since is not None and (state.retrieved_at is None or state.retrieved_at < since):
            report.stale.append(pair)


def _check_events(
    announced: dict[Pair, list[dict[str, int]]], want: Expected, report: Report
) -> None:
    for pair, values in want.events.items():
        got = announced.get(pair, [])
        counts = Counter(tuple(sorted(v.items())) for v in got)
        report.double_published += sum(n - 1 for n in counts.values())
        report.wrong_events += sum(1 for v in got if v not in values)
        if not got:
            report.unannounced.append(pair)
    for pair, got in announced.items():
        if pair in want.totals and pair not in want.events:  # a change nobody should see
            report.wrong_events += len(got)


async def _history_problems(store: CassandraStore, want: Expected) -> list[Pair]:
    cql = store._cql
    rows: list[Any] = await cql.query("SELECT work_id, source, metrics FROM source_history")
    points: dict[Pair, list[dict[str, int]]] = {}
    for row in rows:
        pair = (row.work_id, row.source)
        if pair in want.history:
            points.setdefault(pair, []).append({k: int(v) for k, v in row.metrics.items()})
    return [pair for pair, wanted in want.history.items() if points.get(pair, []) != wanted]
