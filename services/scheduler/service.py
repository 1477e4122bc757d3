"""The scheduler: turns the due-index into refresh requests, paced per source, and keeps the
index up to date from retries and dead letters. Registration writes a work's first entries
itself, or (in bulk) an intake row the scheduler's tick takes in (services/registration.py),
in the same write as the work; so no work depends on an `alm.works` event being read to be
refreshed: the scheduler reads that topic only to dead-letter what is unreadable on it (a
million works imported would otherwise have their entries looked up a second time), and its
periodic reconcile adds the entries a work lacks, closing any gap (data from before that
rule, a crash halfway through a Cassandra registration, a source enabled later) in a pass.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

import structlog

from services.core.deadletters import refused, unreadable
from services.core.events import (
    PACK_REQUESTS,
    TOPIC_DEADLETTER,
    TOPIC_RETRY,
    TOPIC_WORKS,
    FailedRefresh,
    RefreshRequest,
    refresh_topic,
)
from services.core.failures import permanent
from services.core.ports import Bus, DueEntry, DueIndex, Handoff, Message, SourceControl, WorkStore
from services.core.schema_check import check
from services.core.staleness import Policy, next_refresh
from services.core.works import Work, WorkRef
from services.fetchers.base import Source
from services.registration import Scheduling
from services.telemetry.pipeline import INTAKE_WORKS, REFRESH_REQUESTS, REJECTED_EVENTS

log = structlog.get_logger("alm.scheduler")

# what reading an event that is not what its topic carries raises (schema, fields, types)
UNREADABLE = (KeyError, TypeError, ValueError)


@dataclass(frozen=True, slots=True)
class SchedulerSettings:
    """Pacing: how many requests a source gets per tick, how long a request may be lost, how
    often the due index is scanned, how many works a reconcile reads at a time, and how many
    requests may wait for a source's fetchers (its queue: `queued_calls` upstream calls' worth,
    or two ticks' worth of calls at the source's rate limit if that is more)."""

    per_source_per_tick: int = 5000
    # requests a tick reads, builds and emits at a time: a source's share of a tick goes in
    # rounds of this many, so what a tick holds (due entries, works, requests, a lease write,
    # a publish) does not grow with the backlog of due works, only the number of rounds does
    emit_round: int = 1000
    # works taken from the intake (bulk registrations) at a time: a few seconds on a busy 2-core
    # box, so a tick taking them in holds emission up for no longer (50,000 held it ~60 s in
    # bench/scale.py); the long-running services take them in a loop of their own
    intake_per_tick: int = 5_000
    lease: timedelta = timedelta(hours=1)
    tick_seconds: float = 5.0
    reconcile_page: int = 1000
    queued_calls: int = 40  # a source's queue: this many calls' worth (batch size x this)
    min_queue: int = 128
    rates: Mapping[str, float] = field(default_factory=dict)  # calls/s by source (ALM_*_RATE)

    def queue(self, source: Source) -> int:
        """How many refresh requests of `source` may wait for its fetchers: `queued_calls`
        calls' worth, or more where two ticks of calls at the upstream's rate limit need more
        (up to one tick's `per_source_per_tick`), so they never run dry between ticks, and no
        more: a request waits seconds, not the lease's hour (it is never handed out twice),
        and the in-process bus holds a bounded number of them."""
        rate = self.rates.get(source.name, source.limits.requests_per_second)
        by_rate = source.batch_size * math.ceil(rate * 2 * self.tick_seconds)
        calls = source.batch_size * self.queued_calls
        return max(self.min_queue, calls, min(by_rate, self.per_source_per_tick))


@dataclass(frozen=True, slots=True)
class ReconcileStep:
    """What one page of a reconcile pass did."""

    works: int  # works read
    added: int  # due entries that were missing and are now written
    done: bool  # the pass reached the last work (the next step starts over)


# source -> the requests that may wait for it, to source -> how many of its refresh requests
# its fetchers have not taken, counted up to that (the bus's QueueDepth)
Backlog = Callable[[Mapping[str, int]], Awaitable[Mapping[str, int]]]


class SchedulerStore(WorkStore, DueIndex, SourceControl, Protocol):
    """The store's ports the scheduler uses: the due index it scans and leases, the works it
    pages through (reconcile) and reads (dead letters), the sources' paused status."""


class Scheduler:
    """Emits refresh requests for due works; consumes works, retries and dead letters."""

    GROUP = "alm-scheduler"

    def __init__(
        self,
        sources: Sequence[Source],
        bus: Bus,
        store: SchedulerStore,
        policy: Policy,
        settings: SchedulerSettings,
        clock: Callable[[], datetime],
        rng: random.Random | None = None,
        backlog: Backlog | None = None,
    ) -> None:
        self.sources = list(sources)
        self.bus = bus
        self.store = store
        self.policy = policy
        self.settings = settings
        self.clock = clock
        self.rng = rng or random.Random()
        self.scheduling = Scheduling(tuple(sources), policy)
        # None: the lease and `per_source_per_tick` pace emission alone
        self.backlog = backlog
        self.consumer = bus.consumer([TOPIC_WORKS, TOPIC_RETRY, TOPIC_DEADLETTER], self.GROUP)
        self.emitted = 0
        self.dead = 0
        self.unreadable_dead_letters = 0  # records on alm.deadletter it could not read
        self.reconciled = 0  # missing due entries the reconcile wrote
        self.taken_in = 0  # works taken from the intake
        self._reconcile_after: str | None = None  # where the current pass continues

    async def _rooms(self, sources: Sequence[Source]) -> dict[str, int]:
        """How many requests each source may get now: its tick's share, and no more than its
        queue has room for (what its fetchers have not taken yet fills it), read once a tick.
        A source whose fetchers stall, or run slower than the queue assumes, gets nothing
        more until they take what waits: its due works stay due in the index, not in the
        topic. A backlog that cannot be read fails the tick before anything is emitted."""
        share = self.settings.per_source_per_tick
        if self.backlog is None or not sources:
            return {s.name: share for s in sources}
        queues = {s.name: self.settings.queue(s) for s in sources}
        waiting = await self.backlog(queues)
        return {n: min(share, q - waiting.get(n, 0)) for n, q in queues.items()}

    async def intake(self) -> int:
        """Give works registered in bulk their due entries: up to `intake_per_tick` works
        taken from the store's intake, each with the entries it lacks from the sources that
        can fetch it now; how many works were taken."""
        taken = await self.store.take_intake(
            self.settings.intake_per_tick,
            lambda works: self.scheduling.per_source(works, self.clock()),
        )
        if taken:
            INTAKE_WORKS.inc(taken)
            self.taken_in += taken
            log.info("intake_scheduled", works=taken)
        return taken

    async def tick(self, intake: bool = True) -> int:
        """Take in the intake's works (their entries written) unless a loop of its own does
        (`intake` False: services/embedded.py's keep_taking_in), then emit refresh requests
        for every due (work, source) and lease them; returns how many requests."""
        if intake:
            await self.intake()
        now = self.clock()
        total = 0
        statuses = await self.store.source_statuses()
        running = [
            s for s in self.sources if (st := statuses.get(s.name)) is None or not st.paused
        ]  # a paused source's due works stay due; they are emitted once it resumes
        rooms = await self._rooms(running)
        for source in running:
            room = rooms[source.name]
            while room > 0:
                want = min(room, self.settings.emit_round)
                read, emitted = await self._round(source.name, now, want)
                total += emitted
                self.emitted += emitted
                room -= read
                if read < want:  # no more due now
                    break
        return total

    async def _round(self, source: str, now: datetime, want: int) -> tuple[int, int]:
        """Emit and lease up to `want` due entries of `source`: how many entries were read,
        and how many requests emitted (an entry whose work is gone emits none)."""
        handoff = Handoff()  # what `due` read that leasing the entries needs
        entries = await self.store.due(source, now, want, handoff)
        if not entries:
            return 0, 0
        works = await self.store.get_works([e.work_id for e in entries])
        requests = []
        for entry in entries:
            work = works.get(entry.work_id)
            if work is None:
                continue
            reason = "retry" if entry.attempt > 1 else "scheduled"
            req = RefreshRequest(WorkRef.of(work), source, now, reason, attempt=entry.attempt)
            requests.append((work.work_id, dict(check("refresh_request", req.to_dict()))))
        del works
        await self._emit(source, entries, requests, now, handoff)
        return len(entries), len(requests)

    async def _emit(
        self,
        source: str,
        entries: list[DueEntry],
        requests: list[tuple[str, dict[str, Any]]],
        now: datetime,
        handoff: Handoff | None = None,
    ) -> None:
        """Lease the entries, then publish their requests. The lease goes first: a refresh can
        be fetched and aggregated before the publish returns (a broker restart acknowledges
        late), and a lease written after it would replace the work's next due time with the
        lease, leaving the work unrefreshed for the lease's length. A lease write that fails
        may still have written some leases (a store that stalls mid-write), so the requests
        are published all the same (the entries not leased are emitted again by the next
        tick: a duplicate, never a loss), then the failure is raised. A publish that fails
        makes the entries due now again (the next tick emits them)."""
        lease = [
            DueEntry(e.work_id, now + self.settings.lease, e.attempt, leased=True) for e in entries
        ]
        leasing: Exception | None = None
        try:
            await self.store.set_due(source, lease, handoff)
        except Exception as exc:
            leasing = exc
        try:
            await self.bus.publish(refresh_topic(source), requests, pack=PACK_REQUESTS)
        except BaseException:
            back = [DueEntry(e.work_id, max(self.clock(), now), e.attempt) for e in entries]
            await asyncio.shield(self.store.set_due(source, back))
            raise
        REFRESH_REQUESTS.labels(source).inc(len(requests))
        if leasing is not None:
            raise leasing

    async def step(self, timeout: float) -> int:
        """Consume one batch of works (checked only: registration scheduled them), retries
        and dead letters into the due-index. An event that can never be applied is
        dead-lettered (or, read from the dead-letter topic, counted); any other failure leaves
        the batch uncommitted and the consumer back at the committed offsets, so the next step
        redoes it."""
        messages = await self.consumer.poll(1000, timeout)
        if not messages:
            return 0
        try:
            dead: list[tuple[str, dict[str, Any]]] = []
            for message in messages:
                try:
                    if message.topic == TOPIC_WORKS:
                        Work.from_dict(check("work", message.value)["work"])
                    else:
                        await self._apply(message)
                except Exception as exc:
                    if not (permanent(exc) or isinstance(exc, UNREADABLE)):
                        raise
                    self._refuse(message, exc, dead)
            if dead:
                await self.bus.publish(TOPIC_DEADLETTER, dead)
        except Exception:
            await self.consumer.rewind()
            raise
        await self.consumer.commit()
        return len(messages)

    def _refuse(
        self, message: Message, exc: Exception, dead: list[tuple[str, dict[str, Any]]]
    ) -> None:
        """Dead-letter an event that can never be applied (kept as received, with its topic and
        why); one read from the dead-letter topic is only counted: no loop."""
        REJECTED_EVENTS.labels("scheduler").inc()
        log.error("bad_event", topic=message.topic, key=message.key, error=str(exc))
        if message.topic == TOPIC_DEADLETTER:
            self.unreadable_dead_letters += 1
            return
        if not isinstance(exc, UNREADABLE):  # readable, but the store refuses it for good
            reason = f"scheduler: {type(exc).__name__}: {exc}"
            letter = refused(message.topic, message.key, message.value, reason, self.clock())
        else:
            letter = unreadable(message.topic, message.key, message.value, exc, self.clock())
        dead.append((letter["work_id"], letter))

    async def _apply(self, message: Message) -> None:
        now = self.clock()
        event = check("failed_refresh", message.value)
        if "bad_event" in event:
            self.dead += 1
            log.error("unreadable_request_dead_lettered", key=message.key, reason=event["reason"])
            return
        failed = FailedRefresh.from_dict(event)
        req = failed.request
        if message.topic == TOPIC_RETRY:
            # a retry read late is due now, not behind the present (see next_refresh)
            when = max(req.not_before or now, now)
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

    async def reconcile(self) -> ReconcileStep:
        """One page of a reconcile pass: the next `reconcile_page` works in id order each get
        the entries they lack from the enabled sources that can fetch them. Memory holds one
        page and the id to continue after; a pass ends at the last work and starts over."""
        works = await self.store.works_after(self._reconcile_after, self.settings.reconcile_page)
        added = 0
        if works:
            added = await self.store.add_missing_due(
                self.scheduling.per_source(works, self.clock())
            )
        done = len(works) < self.settings.reconcile_page
        self._reconcile_after = None if done else works[-1].work_id
        self.reconciled += added
        if added:
            log.warning("reconcile_scheduled_missing", added=added, works=len(works))
        return ReconcileStep(len(works), added, done)

    async def due_now(self) -> bool:
        """Whether a running (not paused) source has an entry due now (the intake's works are
        taken in first: a work registered in bulk is due once it has its entries)."""
        while await self.intake():
            pass
        now = self.clock()
        statuses = await self.store.source_statuses()
        for source in self.sources:
            status = statuses.get(source.name)
            if (status is None or not status.paused) and await self.store.due(source.name, now, 1):
                return True
        return False
