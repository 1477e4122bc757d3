"""The aggregator runner: fold observations into stored state with the pure `aggregate`,
publish changes, and set each work's next due time. The faust agent wraps the same `settle`.

Failures (services/core/failures.py): a transient one (store or bus down) is raised, and the
caller retries the whole chunk with backoff; a permanent one (a row the store refuses, an
event its schema refuses) is narrowed down by halving the chunk to the observation that causes
it, which goes to `alm.deadletter` with the reason, and everything else is stored.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any, Protocol

import structlog

from services.aggregator.records import change_id, id_of
from services.core.aggregation import Aggregate, SourceState, aggregate
from services.core.alerts import DEFAULT_LIMITS, Alert, AlertStore, Thresholds, checks
from services.core.deadletters import refused, unreadable
from services.core.events import (
    TOPIC_CHANGED,
    TOPIC_DEADLETTER,
    TOPIC_RAW,
    MetricChanged,
    Observation,
    Status,
)
from services.core.failures import describe, permanent
from services.core.metrics import MetricSpec
from services.core.ports import Bus, DueEntry, Handoff, MetricState, WorkStore
from services.core.schema_check import SchemaViolation, check
from services.core.staleness import Policy, next_refresh
from services.core.timeutil import parse_date
from services.core.works import Work
from services.telemetry import alerts as alert_metrics
from services.telemetry.pipeline import AGGREGATED, CHANGES, REJECTED_EVENTS

log = structlog.get_logger("alm.aggregator")
UNSTORED_CAP = 100_000  # change ids kept while their state is not stored (see `process`)


def fold(
    observations: Sequence[Observation], states: dict[tuple[str, str], SourceState]
) -> list[Aggregate]:
    """Aggregate observations in order, each on top of the state the previous one left."""
    out = []
    for obs in observations:
        key = (obs.work_id, obs.source)
        result = aggregate(obs, states.get(key))
        states[key] = result.state
        out.append(result)
    return out


class AggregatorStore(MetricState, WorkStore, Protocol):
    """The store's ports the aggregator uses: the states it folds into and writes (with the
    due entries), the works whose metadata the observations complete."""


class Aggregator:
    """Consumes `alm.metrics.raw`; writes state, history and events; emits `alm.metrics.changed`."""

    GROUP = "alm-aggregator"

    def __init__(
        self,
        bus: Bus,
        store: AggregatorStore,
        policy: Policy,
        clock: Callable[[], datetime],
        rng: random.Random | None = None,
        batch: int = 500,
        already_published: Callable[[MetricChanged], bool] | None = None,
        alerts: AlertStore | None = None,
        catalog: Mapping[str, Sequence[MetricSpec]] | None = None,
        limits: Thresholds = DEFAULT_LIMITS,
    ) -> None:
        self.bus = bus
        self.store = store
        self.policy = policy
        self.clock = clock
        self.rng = rng or random.Random()
        self.batch = batch
        # Distributed mode: changes a previous owner of the partition published before it could
        # store the state (services/aggregator/published.py); they are not sent twice.
        self.already_published = already_published
        # data-quality checks on each applied observation (services/core/alerts.py), with
        # each source's metric specs; stored where `alerts` is given
        self.alerts = alerts
        self.catalog = dict(catalog or {})
        self.limits = limits
        self.consumer = bus.consumer([TOPIC_RAW], self.GROUP)
        # Changes this process published whose state is not stored yet: a chunk retried after
        # its write failed does not publish them again.
        self._unstored: set[str] = set()
        self.applied = 0
        self.changes = 0
        self.rejected = 0
        self.dead = 0  # dead letters published (unreadable or unstorable observations)

    async def step(self, timeout: float) -> int:
        """Process one polled batch; returns how many observations it consumed. A failure
        leaves the batch uncommitted and the consumer back at the committed offsets, so the
        next step redoes it."""
        messages = await self.consumer.poll(self.batch, timeout)
        if not messages:
            return 0
        try:
            observations, rejected = self.decode((m.key, m.value) for m in messages)
            await self.dead_letter(rejected)
            await self.settle(observations)
        except Exception:
            await self.consumer.rewind()
            raise
        await self.consumer.commit()
        return len(messages)

    def decode(
        self, records: Iterable[tuple[str, Mapping[str, Any]]]
    ) -> tuple[list[Observation], list[tuple[str, dict[str, Any]]]]:
        """The observations among (key, value) records, and a dead letter for each other one
        (its value as received, its topic and why it was refused)."""
        observations: list[Observation] = []
        rejected: list[tuple[str, dict[str, Any]]] = []
        for key, value in records:
            try:
                observations.append(Observation.from_dict(check("observation", value)))
            except (SchemaViolation, KeyError, TypeError, ValueError) as exc:
                self.rejected += 1
                REJECTED_EVENTS.labels("aggregator").inc()
                log.error("bad_observation_dead_lettered", key=key, error=str(exc))
                letter = unreadable(TOPIC_RAW, key, value, exc, self.clock())
                rejected.append((letter["work_id"], letter))
        return observations, rejected

    def _letter(self, key: str, value: Any, reason: str) -> dict[str, Any]:
        return dict(
            check(
                "failed_refresh",
                refused(TOPIC_RAW, key, value, f"aggregator: {reason}", self.clock()),
            )
        )

    async def dead_letter(self, letters: list[tuple[str, dict[str, Any]]]) -> None:
        """Publish dead letters (from `decode` or `settle`) to `alm.deadletter`."""
        await self.bus.publish(TOPIC_DEADLETTER, letters)
        self.dead += len(letters)

    async def settle(self, observations: Sequence[Observation]) -> None:
        """`process` the observations; if that fails for good, narrow the failure down by
        halves: the observation that fails alone is dead-lettered with the reason, the rest is
        stored. A transient failure is raised (the caller retries with backoff)."""
        try:
            await self.process(observations)
        except Exception as exc:
            if not observations or not permanent(exc):
                raise
            if len(observations) > 1:
                log.warning("chunk_failed_for_good_halving", size=len(observations), error=str(exc))
                half = len(observations) // 2
                await self.settle(observations[:half])
                await self.settle(observations[half:])
                return
            obs = observations[0]
            log.error(
                "observation_dead_lettered", work=obs.work_id, source=obs.source, error=str(exc)
            )
            self._unstored.discard(change_id(obs.work_id, obs.source, obs.retrieved_at))
            letter = self._letter(obs.work_id, obs.to_dict(), f"cannot store: {describe(exc)}")
            await self.dead_letter([(obs.work_id, letter)])

    async def process(self, observations: Sequence[Observation]) -> list[Aggregate]:
        """Read, fold, publish the changes and store what the observations taught about their
        works, then store the states with when each work is next due: a crash before that
        re-sends, never loses (with `already_published` set, a change a previous owner put on
        the topic is not sent again; one this process published is not sent again when the
        same observations are processed again after the write failed). Reads, and the writes
        that do not depend on each other, go concurrently: a batch costs a few round trips."""
        keys = sorted({(o.work_id, o.source) for o in observations})
        handoff = Handoff()  # what `states` read that `write_aggregates` needs
        states, works = await asyncio.gather(
            self.store.states(keys, handoff), self.store.get_works(sorted({w for w, _ in keys}))
        )
        before = dict(states)
        results = fold(observations, states)
        raised = self.checked(observations, results, before)
        changes = [
            r.changed
            for r in results
            if r.changed is not None and id_of(r.changed) not in self._unstored
        ]
        if self.already_published is not None:
            changes = [c for c in changes if not self.already_published(c)]
        done = [
            o
            for o, r in zip(observations, results, strict=True)
            if r.applied and (o.status is not Status.ERROR or _rejected(o))
        ]
        learned = learned_works(done, works)
        changes = with_publishers(changes, {**works, **{w.work_id: w for w in learned}})
        await asyncio.gather(
            self.bus.publish(
                TOPIC_CHANGED,
                [(c.work_id, dict(check("metric_changed", c.to_dict()))) for c in changes],
            ),
            self._store_learned(learned, works),
            self._store_alerts(raised),
        )
        if len(self._unstored) > UNSTORED_CAP:  # left by chunks cancelled mid-retry
            self._unstored.clear()
        self._unstored.update(id_of(c) for c in changes)
        due = self._next_due(done, {**works, **{w.work_id: w for w in learned}})
        await self.store.write_aggregates(results, due, handoff)
        self._unstored.difference_update(
            change_id(o.work_id, o.source, o.retrieved_at) for o in observations
        )
        applied = sum(r.applied for r in results)
        self.applied += applied
        self.changes += len(changes)
        AGGREGATED.inc(applied)
        CHANGES.inc(len(changes))
        return results

    def checked(
        self,
        observations: Sequence[Observation],
        results: Sequence[Aggregate],
        before: Mapping[tuple[str, str], SourceState],
    ) -> list[Alert]:
        """The data-quality alerts of the observations that were applied, each checked against
        the state it replaced."""
        if self.alerts is None:
            return []
        previous = dict(before)
        out: list[Alert] = []
        for obs, result in zip(observations, results, strict=True):
            key = (obs.work_id, obs.source)
            if result.applied and obs.status is not Status.ERROR:
                specs = self.catalog.get(obs.source, ())
                out += checks(previous.get(key), result.state, specs, self.limits)
            previous[key] = result.state
        return out

    async def _store_alerts(self, raised: list[Alert]) -> None:
        if self.alerts is not None and raised:
            alert_metrics.count(await self.alerts.add_alerts(raised))

    async def _store_learned(self, learned: list[Work], works: dict[str, Work]) -> None:
        """Store metadata the observations taught us. New identifiers (a PMID, a PMCID) go
        through registration, which claims them and merges a work already known by one; other
        metadata is simply stored."""
        claims = [w for w in learned if w.identifiers() != works[w.work_id].identifiers()]
        updates = [w for w in learned if w.identifiers() == works[w.work_id].identifiers()]
        writes: list[Awaitable[Any]] = []
        if updates:
            writes.append(self.store.update_works(updates))
        if claims:
            writes.append(self.store.register(claims))
        await asyncio.gather(*writes)

    def _next_due(
        self, done: list[Observation], works: dict[str, Work]
    ) -> dict[str, list[DueEntry]]:
        """When each refreshed (work, source) is next due, per source (staleness policy)."""
        now = self.clock()
        by_source: dict[str, list[DueEntry]] = {}
        for obs in done:
            work = works.get(obs.work_id)
            issued = work.issued if work else None
            when = next_refresh(
                issued, obs.retrieved_at, now, self.policy, self.rng.random(), obs.source
            )
            by_source.setdefault(obs.source, []).append(DueEntry(obs.work_id, when, 1))
        return by_source


def with_publishers(changes: list[MetricChanged], works: dict[str, Work]) -> list[MetricChanged]:
    """The changes, each carrying its work's publisher (what subscribers filter on)."""
    out = []
    for change in changes:
        work = works.get(change.work_id)
        publisher = work.publisher if work is not None else None
        out.append(change if publisher is None else replace(change, publisher=publisher))
    return out


def _rejected(obs: Observation) -> bool:
    """An observation whose identifier the upstream refuses: next due on the routine schedule
    (no retry, no dead letter; services/fetchers/engine.py)."""
    return obs.error is not None and obs.error.kind == "rejected"


def learned_works(observations: Sequence[Observation], known: dict[str, Work]) -> list[Work]:
    """Works whose metadata an observation completes (fields the registry does not have yet)."""
    out: dict[str, Work] = {}
    for obs in observations:
        base = out.get(obs.work_id) or known.get(obs.work_id)
        if base is None or not obs.work_meta:
            continue
        meta = dict(obs.work_meta)
        issued = parse_date(meta.pop("issued", None))
        merged = base.merged(Work(base.work_id, issued=issued, **meta))
        if merged != base:
            out[obs.work_id] = merged
    return list(out.values())
