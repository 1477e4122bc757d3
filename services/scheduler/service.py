"""The scheduler: turns the due-index into refresh requests, paced per source, and keeps the
index up to date from new works, retries and dead letters.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from services.adapters.failures import describe, permanent
from services.core.events import (
    PACK_REQUESTS,
    SCHEMA_VERSION,
    TOPIC_DEADLETTER,
    TOPIC_RETRY,
    TOPIC_WORKS,
    FailedRefresh,
    RefreshRequest,
    refresh_topic,
)
from services.core.ports import Bus, DueEntry, Message, Store
from services.core.schema_check import check
from services.core.staleness import Policy, next_refresh
from services.core.timeutil import to_iso
from services.core.works import Work, WorkRef
from services.fetchers.base import Source

log = structlog.get_logger("alm.scheduler")


@dataclass(frozen=True, slots=True)
class SchedulerSettings:
    """Pacing: how many requests a source gets per tick, and how long a request may be lost."""

    per_source_per_tick: int = 5000
    lease: timedelta = timedelta(hours=1)
    tick_seconds: float = 30.0


class Scheduler:
    """Emits refresh requests for due works; consumes works, retries and dead letters."""

    GROUP = "alm-scheduler"

    def __init__(
        self,
        sources: Sequence[Source],
        bus: Bus,
        store: Store,
        policy: Policy,
        settings: SchedulerSettings,
        clock: Callable[[], datetime],
        rng: random.Random | None = None,
    ) -> None:
        self.sources = list(sources)
        self.bus = bus
        self.store = store
        self.policy = policy
        self.settings = settings
        self.clock = clock
        self.rng = rng or random.Random()
        self.consumer = bus.consumer([TOPIC_WORKS, TOPIC_RETRY, TOPIC_DEADLETTER], self.GROUP)
        self.emitted = 0
        self.dead = 0

    async def tick(self) -> int:
        """Emit refresh requests for every due (work, source); returns how many."""
        now = self.clock()
        total = 0
        statuses = await self.store.source_statuses()
        for source in self.sources:
            status = statuses.get(source.name)
            if status is not None and status.paused:
                continue  # due works stay due; they are emitted once the source resumes
            entries = await self.store.due(source.name, now, self.settings.per_source_per_tick)
            if not entries:
                continue
            works = await self.store.get_works([e.work_id for e in entries])
            requests = []
            for entry in entries:
                work = works.get(entry.work_id)
                if work is None:
                    continue
                reason = "retry" if entry.attempt > 1 else "scheduled"
                req = RefreshRequest(
                    WorkRef.of(work), source.name, now, reason, attempt=entry.attempt
                )
                requests.append((work.work_id, dict(check("refresh_request", req.to_dict()))))
            await self.bus.publish(refresh_topic(source.name), requests, pack=PACK_REQUESTS)
            lease = [DueEntry(e.work_id, now + self.settings.lease, e.attempt) for e in entries]
            await self.store.set_due(source.name, lease)
            total += len(requests)
        self.emitted += total
        return total

    async def step(self, timeout: float) -> int:
        """Consume one batch of works, retries and dead letters into the due-index. An event
        that can never be applied is dead-lettered (or, read from the dead-letter topic, logged);
        any other failure leaves the batch uncommitted and the consumer back at the committed
        offsets, so the next step redoes it."""
        messages = await self.consumer.poll(1000, timeout)
        if not messages:
            return 0
        try:
            for message in messages:
                try:
                    await self._apply(message)
                except Exception as exc:
                    if not (permanent(exc) or isinstance(exc, KeyError)):
                        raise
                    await self._refuse(message, exc)
        except Exception:
            await self.consumer.rewind()
            raise
        await self.consumer.commit()
        return len(messages)

    async def _refuse(self, message: Message, exc: Exception) -> None:
        """Dead-letter an event that can never be applied (kept as received, with why)."""
        log.error("bad_event_skipped", topic=message.topic, key=message.key, error=str(exc))
        if message.topic == TOPIC_DEADLETTER:
            return  # a dead letter is not dead-lettered again
        letter = {
            "schema_version": SCHEMA_VERSION,
            "work_id": message.key,
            "bad_event": dict(message.value),
            "reason": f"scheduler: {describe(exc)}",
            "failed_at": to_iso(self.clock()),
        }
        checked = dict(check("failed_refresh", letter))
        await self.bus.publish(TOPIC_DEADLETTER, [(message.key, checked)])

    async def _apply(self, message: Message) -> None:
        now = self.clock()
        if message.topic == TOPIC_WORKS:
            event = check("work", message.value)
            if event["event"] == "registered":
                await self.schedule_new(Work.from_dict(event["work"]), now)
            return
        event = check("failed_refresh", message.value)
        if "bad_event" in event:
            self.dead += 1
            log.error("unreadable_request_dead_lettered", key=message.key, reason=event["reason"])
            return
        failed = FailedRefresh.from_dict(event)
        req = failed.request
        if message.topic == TOPIC_RETRY:
            when = req.not_before or now
            await self.store.set_due(
                req.source, [DueEntry(req.work.work_id, when, req.attempt + 1)]
            )
            return
        self.dead += 1
        work = await self.store.get_work(req.work.work_id)
        issued = work.issued if work else None
        when = next_refresh(issued, now, now, self.policy, self.rng.random(), req.source)
        await self.store.set_due(req.source, [DueEntry(req.work.work_id, when, 1)])
        log.warning(
            "refresh_dead_lettered",
            source=req.source,
            work=req.work.work_id,
            reason=failed.reason,
            next_due=when.isoformat(),
        )

    async def schedule_new(self, work: Work, now: datetime) -> None:
        """Make a new work due now (or on its future publication date) from every source that
        can look it up."""
        ref = WorkRef.of(work)
        for source in self.sources:
            if source.fetchable(ref):
                when = next_refresh(work.issued, None, now, self.policy, 0.0, source.name)
                await self.store.set_due(source.name, [DueEntry(work.work_id, when, 1)])
