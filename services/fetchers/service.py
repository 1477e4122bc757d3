"""The fetcher service of one source: consume refresh requests, fetch them in upstream-sized
batches, publish observations, route failures to retry or dead letter, keep raw responses.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any, Protocol

import structlog

from services.core.activity import ActivityStore, FetchWindow, hour_of
from services.core.deadletters import unreadable
from services.core.events import (
    PACK_OBSERVATIONS,
    TOPIC_DEADLETTER,
    TOPIC_RAW,
    TOPIC_RETRY,
    FailedRefresh,
    Observation,
    RefreshRequest,
    Status,
    refresh_topic,
)
from services.core.failures import describe, permanent
from services.core.health import ErrorWindow, SourceStatus
from services.core.ports import Bus, Message, RawResponses, SourceControl
from services.core.provenance import RawResponse
from services.core.schema_check import SchemaViolation, check
from services.core.sources import SourceConfig
from services.core.staleness import Policy, retry_at
from services.fetchers.base import Source
from services.fetchers.engine import BatchResult, Caller, fetch_batch
from services.fetchers.outcomes import well_formed
from services.fetchers.telemetry import OBSERVATIONS, SOURCE_PAUSED
from services.telemetry.pipeline import FAILED_REFRESHES, REJECTED_EVENTS

log = structlog.get_logger("alm.fetcher")
MIN_POLL = 64  # requests taken per poll even for one-work-a-call sources; the gate paces them
STATUS_TTL = 5.0  # seconds a read of the source's paused status is trusted


class FetcherStore(RawResponses, SourceControl, Protocol):
    """The store's ports a fetcher uses: the raw responses it keeps, its source's status."""


class FetcherService:
    """Runs one source's plug-in against the bus."""

    def __init__(
        self,
        source: Source,
        bus: Bus,
        store: FetcherStore,
        caller: Caller,
        config: SourceConfig,
        policy: Policy,
        clock: Callable[[], datetime],
        # Upstream calls' worth of requests taken per step (the caller's concurrency cap still
        # paces them). A step ends by writing the raw responses and committing, which costs
        # about the same for 4 calls as for 8: with 8, Crossref (one call at a time) went from
        # about 1,800 to 2,700-3,900 refreshes/s in bench/distributed.py.
        batches_in_flight: int = 8,
        rng: random.Random | None = None,
        activity: ActivityStore | None = None,
        failure_limit: int = 200,
    ) -> None:
        self.source = source
        self.bus = bus
        self.store = store
        self.caller = caller
        self.config = config
        self.policy = policy
        self.clock = clock
        self.batches_in_flight = batches_in_flight
        self.rng = rng or random.Random()
        self.consumer = bus.consumer([refresh_topic(source.name)], self.group_of(source.name))
        self.log = log.bind(source=source.name)
        self.refreshed = 0
        self.errors = 0
        self.calls = 0
        self.failures = ErrorWindow(limit=failure_limit)  # failed calls in 24 h before pausing
        self._status = SourceStatus(source.name)
        self._status_read: datetime | None = None
        # this process's calls and refreshes of the hour under way, for the periodic checks
        self.activity = activity
        self.instance = uuid.uuid4().hex[:12]
        self.window: FetchWindow | None = None

    @staticmethod
    def group_of(source: str) -> str:
        """The consumer group of `source`'s fetchers."""
        return f"alm-fetcher-{source}"

    async def paused(self) -> SourceStatus | None:
        """The source's status if an operator or the error window paused it, else None."""
        now = self.clock()
        if self._status_read is None or (now - self._status_read).total_seconds() >= STATUS_TTL:
            statuses = await self.store.source_statuses()
            was_paused = self._status.paused
            self._status = statuses.get(self.source.name, SourceStatus(self.source.name))
            self._status_read = now
            if was_paused and not self._status.paused:
                self.failures.reset()
            SOURCE_PAUSED.labels(self.source.name).set(int(self._status.paused))
        return self._status if self._status.paused else None

    async def pause(self, reason: str) -> None:
        """Pause the source with a visible reason; `alm sources resume` undoes it."""
        self._status = SourceStatus(self.source.name, True, reason, self.clock())
        await self.store.set_source_status(self._status)
        SOURCE_PAUSED.labels(self.source.name).set(1)
        self.log.error("source_paused", reason=reason)

    async def step(self, timeout: float) -> int:
        """Fetch one polled batch of requests; returns how many requests it consumed."""
        if await self.paused():
            if timeout > 0:
                await asyncio.sleep(min(timeout, STATUS_TTL))
            return 0
        wanted = max(self.source.batch_size * self.batches_in_flight, MIN_POLL)
        messages = await self.consumer.poll(wanted, timeout)
        if not messages:
            return 0
        try:
            await self._handle(messages)
        except Exception:
            # Nothing of the batch is committed: the next step polls it again from the last
            # committed offset (what was already published is published again; every write is
            # idempotent).
            await self.consumer.rewind()
            raise
        await self.consumer.commit()
        return len(messages)

    async def _handle(self, messages: list[Message]) -> None:
        requests: dict[str, RefreshRequest] = {}
        dead = []
        for message in messages:
            try:
                req = RefreshRequest.from_dict(check("refresh_request", message.value))
            except (SchemaViolation, KeyError, TypeError, ValueError) as exc:
                REJECTED_EVENTS.labels(f"fetcher-{self.source.name}").inc()
                self.log.error("bad_refresh_request", key=message.key, error=str(exc))
                letter = unreadable(message.topic, message.key, message.value, exc, self.clock())
                dead.append((letter["work_id"], letter))
                continue
            if req.work.work_id not in requests or requests[req.work.work_id].attempt < req.attempt:
                requests[req.work.work_id] = req
        await self._fetch(list(requests.values()))
        if dead:
            await self.bus.publish(TOPIC_DEADLETTER, dead)

    async def _fetch(self, requests: list[RefreshRequest]) -> None:
        size = self.source.batch_size
        config = replace(self.config, today=self.clock().date())
        chunks = [requests[i : i + size] for i in range(0, len(requests), size)]
        results = await asyncio.gather(
            *(
                fetch_batch(self.source, [r.work for r in chunk], config, self.caller, self.clock)
                for chunk in chunks
            )
        )
        by_work = {r.work.work_id: r for r in requests}
        checked: list[tuple[Observation, dict[str, Any]]] = []
        raw = []
        for result in results:
            checked.extend(well_formed(o) for o in result.observations)
            raw.extend(result.raw)
            self.calls += result.calls
        observations: list[Observation] = [o for o, _ in checked]
        window = self._count(results, observations)
        # Independent writes, together: the observations, the failures' retries or dead
        # letters, the raw responses (a few large rows, the slowest of them) and this hour's
        # activity. All are done before the step commits its requests.
        await asyncio.gather(
            self._publish([(o.work_id, event) for o, event in checked], by_work),
            self._route_failures([o for o in observations if o.status is Status.ERROR], by_work),
            self._keep_raw(raw),
            self.activity.record_activity([window]) if self.activity else asyncio.sleep(0),
        )
        for o in observations:
            OBSERVATIONS.labels(self.source.name, o.status.value).inc()
        self.refreshed += sum(o.status is not Status.ERROR for o in observations)
        self.errors += sum(o.status is Status.ERROR for o in observations)
        await self._watch_failures(observations)

    def _count(self, results: list[BatchResult], observations: list[Observation]) -> FetchWindow:
        """This hour's window with the step's calls and refreshes added (a new window when
        the hour changed). A refused identifier is not a failed refresh."""
        hour = hour_of(self.clock())
        if self.window is None or self.window.hour != hour:
            self.window = FetchWindow(self.source.name, hour, self.instance)
        window = self.window
        for result in results:
            window = window.with_calls(result.latencies, result.calls, result.unanswered)
        failed = [o for o in observations if o.status is Status.ERROR]
        refused = sum(o.error is not None and o.error.kind == "rejected" for o in failed)
        ok_times = [o.retrieved_at for o in observations if o.status is not Status.ERROR]
        window = window.with_refreshes(
            len(ok_times), len(failed) - refused, max(ok_times, default=None)
        )
        self.window = window
        return window

    async def _publish(
        self,
        items: list[tuple[str, dict[str, Any]]],
        requests: dict[str, RefreshRequest],
    ) -> None:
        """Publish checked observations (`well_formed` turned any a plug-in got wrong into a
        parse error) to `alm.metrics.raw`. One that can never be published (its record is too
        large for the broker) is found by halves and its request dead-lettered with the reason;
        the others go out."""
        dead: list[tuple[str, dict[str, object]]] = []
        await self._publish_valid(items, requests, dead)
        await self.bus.publish(TOPIC_DEADLETTER, dead)

    async def _publish_valid(
        self,
        items: list[tuple[str, dict[str, Any]]],
        requests: dict[str, RefreshRequest],
        dead: list[tuple[str, dict[str, object]]],
    ) -> None:
        try:
            await self.bus.publish(TOPIC_RAW, items, pack=PACK_OBSERVATIONS)
        except Exception as exc:
            if not items or not permanent(exc):
                raise
            if len(items) == 1:
                dead.append(self._dead_letter(requests[items[0][0]], describe(exc)))
                return
            half = len(items) // 2
            await self._publish_valid(items[:half], requests, dead)
            await self._publish_valid(items[half:], requests, dead)

    def _dead_letter(self, req: RefreshRequest, reason: str) -> tuple[str, dict[str, object]]:
        self.log.error("observation_dead_lettered", work=req.work.work_id, reason=reason)
        letter = FailedRefresh(req, f"fetcher: {reason}", self.clock()).to_dict()
        return req.work.work_id, dict(check("failed_refresh", letter))

    async def _keep_raw(self, raws: list[RawResponse]) -> None:
        """Keep the raw responses; one the store refuses for good (a body too large) is
        logged and left out rather than holding up the observations."""
        if not raws:
            return
        try:
            await self.store.add_raw_responses(raws)
        except Exception as exc:
            if not permanent(exc):
                raise
            if len(raws) == 1:
                self.log.error("raw_response_not_kept", url=raws[0].url, error=describe(exc))
                return
            half = len(raws) // 2
            await self._keep_raw(raws[:half])
            await self._keep_raw(raws[half:])

    async def _watch_failures(self, observations: list[Observation]) -> None:
        """Count failed upstream calls towards pausing the source (ALM: more than 200 in
        24 h): one per call, not one per work it was for (a batch source's failed call fails
        50 works at once)."""
        reason = None
        calls = {(o.request_url, o.error): o for o in observations if o.error is not None}
        for (_, error), obs in calls.items():
            if error is not None:
                reason = self.failures.record(error, obs.retrieved_at) or reason
        if reason is not None and not self._status.paused:
            await self.pause(reason)

    async def _route_failures(
        self, failed: list[Observation], requests: dict[str, RefreshRequest]
    ) -> None:
        retry, dead = [], []
        now = self.clock()
        for obs in failed:
            if obs.error is not None and obs.error.kind == "rejected":
                # the upstream refuses this identifier: its error is stored with the work and
                # the aggregator schedules its next routine refresh; no retry, no dead letter
                continue
            req = requests[obs.work_id]
            reason = f"{obs.error.kind}: {obs.error.message}" if obs.error else "fetch failed"
            when = retry_at(req.attempt, now, self.policy, self.rng.random())
            if obs.error is not None and obs.error.retryable and when is not None:
                again = RefreshRequest(
                    req.work, req.source, now, "retry", req.priority, req.attempt, when
                )
                retry.append((obs.work_id, FailedRefresh(again, reason, now).to_dict()))
            else:
                dead.append((obs.work_id, FailedRefresh(req, reason, now).to_dict()))
                self.log.warning(
                    "refresh_failed_for_good", work=obs.work_id, reason=reason, attempt=req.attempt
                )
        FAILED_REFRESHES.labels(self.source.name, "retry").inc(len(retry))
        FAILED_REFRESHES.labels(self.source.name, "dead_letter").inc(len(dead))
        await self.bus.publish(
            TOPIC_RETRY, [(k, dict(check("failed_refresh", v))) for k, v in retry]
        )
        await self.bus.publish(
            TOPIC_DEADLETTER, [(k, dict(check("failed_refresh", v))) for k, v in dead]
        )
