"""The aggregator runner: fold observations into stored state with the pure `aggregate`,
publish changes, and set each work's next due time. The faust agent wraps the same `process`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from datetime import datetime

import structlog

from services.core.aggregation import Aggregate, SourceState, aggregate
from services.core.events import TOPIC_CHANGED, TOPIC_RAW, Observation, Status
from services.core.ports import Bus, DueEntry, Store
from services.core.schema_check import SchemaViolation, check
from services.core.staleness import Policy, next_refresh
from services.core.timeutil import parse_date
from services.core.works import Work

log = structlog.get_logger("alm.aggregator")


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


class Aggregator:
    """Consumes `alm.metrics.raw`; writes state, history and events; emits `alm.metrics.changed`."""

    GROUP = "alm-aggregator"

    def __init__(
        self,
        bus: Bus,
        store: Store,
        policy: Policy,
        clock: Callable[[], datetime],
        rng: random.Random | None = None,
        batch: int = 500,
    ) -> None:
        self.bus = bus
        self.store = store
        self.policy = policy
        self.clock = clock
        self.rng = rng or random.Random()
        self.batch = batch
        self.consumer = bus.consumer([TOPIC_RAW], self.GROUP)
        self.applied = 0
        self.changes = 0
        self.rejected = 0

    async def step(self, timeout: float) -> int:
        """Process one polled batch; returns how many observations it consumed."""
        messages = await self.consumer.poll(self.batch, timeout)
        if not messages:
            return 0
        observations = []
        for message in messages:
            try:
                observations.append(Observation.from_dict(check("observation", message.value)))
            except (SchemaViolation, KeyError, ValueError) as exc:
                self.rejected += 1
                log.error("bad_observation_skipped", key=message.key, error=str(exc))
        await self.process(observations)
        await self.consumer.commit()
        return len(messages)

    async def process(self, observations: Sequence[Observation]) -> list[Aggregate]:
        """Fold, then publish changes, then write (a crash in between re-sends, never loses)."""
        keys = sorted({(o.work_id, o.source) for o in observations})
        states = await self.store.states(keys)
        results = fold(observations, states)
        changes = [r.changed for r in results if r.changed is not None]
        await self.bus.publish(
            TOPIC_CHANGED,
            [(c.work_id, dict(check("metric_changed", c.to_dict()))) for c in changes],
        )
        await self.store.write_aggregates(results)
        await self._schedule_next(
            [
                o
                for o, r in zip(observations, results, strict=True)
                if r.applied and o.status is not Status.ERROR
            ]
        )
        self.applied += sum(r.applied for r in results)
        self.changes += len(changes)
        return results

    async def _schedule_next(self, done: list[Observation]) -> None:
        if not done:
            return
        works = await self.store.get_works(sorted({o.work_id for o in done}))
        learned = learned_works(done, works)
        if learned:
            await self.store.register(learned)
            works.update({w.work_id: w for w in learned})
        now = self.clock()
        by_source: dict[str, list[DueEntry]] = {}
        for obs in done:
            work = works.get(obs.work_id)
            issued = work.issued if work else None
            when = next_refresh(
                issued, obs.retrieved_at, now, self.policy, self.rng.random(), obs.source
            )
            by_source.setdefault(obs.source, []).append(DueEntry(obs.work_id, when, 1))
        for source, entries in by_source.items():
            await self.store.set_due(source, entries)


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
