"""The notifier: every metric change to every webhook whose filter it passes, at least once.

It consumes `alm.metrics.changed` in its own group (`alm-notifier`) and commits a batch only
once each of its deliveries is done: delivered, failed for good (a 4xx), or written to the
hook's queue in the store to be retried. Killed at any moment, it loses nothing: what was not
committed is read again and delivered again (receivers drop the duplicate by `ALM-Event-Id`).

Per hook, two modes:
- direct: a batch's deliveries are sent at once (PER_HOOK at a time). A delivery that fails
  in a way worth retrying (5xx, 408, 429, timeout, no connection) goes to the hook's queue, and
  the hook switches to queue mode;
- queue mode: the receiver is failing, so new deliveries are queued behind the waiting ones
  instead of being sent, and the drainer tries the oldest one when its backoff is over (1 try
  per backoff, not one per change: a receiver that is down is not hammered). Once it succeeds
  the drainer sends the rest, oldest first, and when the queue is empty the hook is direct
  again.

Every attempt is logged (the hook's delivery log keeps its newest ALM_WEBHOOK_LOG_SIZE), and
ALM_WEBHOOK_MAX_FAILURES consecutive failed attempts disable the hook with the reason; what
it had queued waits for it to be enabled again. A hook whose queue would pass
ALM_WEBHOOK_QUEUE_LIMIT is disabled too (the store is not a buffer without bound).

Run it once: the queues and the health of the hooks are this process's (`alm notifier` has one
replica, replaced, never rolled; `alm run` runs it in its one process).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog

from services.core.change_filter import MetricGroups
from services.core.change_publishers import PublisherLookup
from services.core.delivery import retry_delay
from services.core.events import TOPIC_CHANGED, change_event_id
from services.core.ports import Bus, Message, WorkStore
from services.core.schema_check import SchemaViolation, check
from services.core.webhooks import Attempt, Hook, HookHealth, HookStore, Outcome, Queued
from services.notifier.hookstate import Delivery, HookState
from services.notifier.sender import Sender, Sent
from services.notify_settings import NotifySettings
from services.telemetry.changes import (
    WEBHOOK_ATTEMPTS,
    WEBHOOK_DURATION,
    WEBHOOK_QUEUED,
    WEBHOOKS_DISABLED,
)
from services.telemetry.pipeline import REJECTED_EVENTS

log = structlog.get_logger("alm.notifier")

BATCH = 500  # changes polled at once
DRAIN_BATCH = 100  # queued deliveries read at once
RELOAD = 1.0  # seconds between reads of the registered hooks
STEP_RETRY = (0.5, 30.0)  # first and longest pause before a failed batch is tried again


class Notifier:
    """Delivers changes to webhooks (see the module docstring)."""

    GROUP = "alm-notifier"

    def __init__(
        self,
        bus: Bus,
        hooks: HookStore,
        works: WorkStore,
        sender: Sender,
        settings: NotifySettings,
        catalog: MetricGroups,
        now: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.hooks = hooks
        self.sender = sender
        self.settings = settings
        self.catalog = catalog
        self.now = now
        self.rng = rng or random.Random()
        self.consumer = bus.consumer([TOPIC_CHANGED], self.GROUP)
        self.publishers = PublisherLookup(works)
        self.states: dict[str, HookState] = {}
        self._loaded = float("-inf")
        self._reload_lock = asyncio.Lock()
        self._seq = 0
        self._log: list[Attempt] = []
        self._disable: dict[str, str] = {}  # hook id -> reason, recorded at the next flush
        self.delivered = 0  # attempts that were delivered (tests, benchmarks)

    # -- hooks -------------------------------------------------------------------------------

    async def reload(self, force: bool = False) -> None:
        """Read the registered hooks (at most every RELOAD seconds): new ones start direct, or
        in queue mode if they have deliveries waiting; disabled and deleted ones stop; one
        enabled again starts over (failures 0, its queue tried at once)."""
        async with self._reload_lock:
            if not force and time.monotonic() - self._loaded < RELOAD:
                return
            self._loaded = time.monotonic()
            hooks = {h.hook_id: h for h in await self.hooks.hooks() if h.enabled}
            for hook_id in set(self.states) - set(hooks):
                self._drop(hook_id)
            fresh = [h for h in hooks.values() if self._changed(h)]
            health = await self.hooks.health([h.hook_id for h in fresh])
            for hook in fresh:
                self._drop(hook.hook_id)
                self.states[hook.hook_id] = await self._state(hook, health.get(hook.hook_id))
            for hook in hooks.values():
                self.states[hook.hook_id].hook = hook
            self._export_queued()

    def _changed(self, hook: Hook) -> bool:
        state = self.states.get(hook.hook_id)
        return state is None or state.hook.enabled_at != hook.enabled_at

    async def _state(self, hook: Hook, health: HookHealth | None) -> HookState:
        state = HookState(hook)
        if health is not None:
            state.failures = health.consecutive_failures
            state.last_success_at, state.last_failure_at = (
                health.last_success_at,
                health.last_failure_at,
            )
            state.last_error = health.last_error
        if await self.hooks.queued(hook.hook_id, 0, 1):
            state.queue_mode = True
            state.queued = max(1, health.queued if health else 1)
            retry = health.retry_at if health else None
            state.retry_at = retry.timestamp() if retry else self.now()
        return state

    def _drop(self, hook_id: str) -> None:
        state = self.states.pop(hook_id, None)
        task = state.draining if state is not None else None
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    def _export_queued(self) -> None:
        WEBHOOK_QUEUED.set(sum(s.queued for s in self.states.values()))

    # -- consuming -----------------------------------------------------------------------------

    async def step(self, timeout: float) -> int:
        """Deliver one polled batch of changes, then commit it; how many changes it read. A
        failure (the store away) is retried on the same batch until it passes; a commit that
        fails leaves the consumer back at the committed offsets, so the next step redoes it."""
        messages = await self.consumer.poll(BATCH, timeout)
        if not messages:
            await self.flush()
            return 0
        pause = STEP_RETRY[0]
        while True:
            try:
                await self.process(messages)
                break
            except Exception:
                log.exception("notifier_batch_failed_retrying", changes=len(messages))
                await asyncio.sleep(pause)
                pause = min(pause * 2, STEP_RETRY[1])
        try:
            await self.consumer.commit()
        except Exception:
            # Kafka away: the batch is polled again and delivered again (receivers drop the
            # duplicates by ALM-Event-Id), never skipped
            await self.consumer.rewind()
            raise
        return len(messages)

    async def process(self, messages: Sequence[Message]) -> None:
        """Match each change against the hooks and deliver (or queue) it."""
        await self.reload()
        changes = [c for c in (self._decode(m) for m in messages) if c is not None]
        states = list(self.states.values())
        if not changes or not states:
            return
        publishers: list[str | None] = [None] * len(changes)
        if any(s.hook.filter.needs_publisher for s in states):
            publishers = await self.publishers.resolve(changes)
        todo: dict[str, list[Delivery]] = {}
        for change, publisher in zip(changes, publishers, strict=True):
            delivery: Delivery | None = None
            for state in states:
                if state.hook.filter.matches(change, publisher, self.catalog):
                    delivery = delivery or Delivery(str(change["event_id"]), orjson.dumps(change))
                    todo.setdefault(state.hook.hook_id, []).append(delivery)
        await asyncio.gather(*(self._deliver(self.states[h], d) for h, d in todo.items()))
        await self.flush()

    def _decode(self, message: Message) -> dict[str, Any] | None:
        """The change, with its event id (computed for events older than the field)."""
        try:
            change = dict(check("metric_changed", message.value))
            if "event_id" not in change:
                change["event_id"] = change_event_id(
                    change["work_id"], change["source"], change["at"]
                )
            return change
        except (SchemaViolation, KeyError, TypeError) as exc:
            REJECTED_EVENTS.labels("notifier").inc()
            log.error("bad_change", key=message.key, error=str(exc))
            return None

    async def _deliver(self, state: HookState, deliveries: list[Delivery]) -> None:
        if state.queue_mode:
            await self._enqueue(state, deliveries)
            return

        async def one(delivery: Delivery) -> Sent:
            async with state.gate:
                sent = await self.sender.send(state.hook, delivery.event_id, delivery.body, 1)
            self._record(state, delivery.event_id, 1, sent, self._next_retry(state, 1, sent))
            return sent

        results = await asyncio.gather(*(one(d) for d in deliveries))
        again = [d for d, s in zip(deliveries, results, strict=True) if s.outcome is Outcome.RETRY]
        if again:
            first = next(s for s in results if s.outcome is Outcome.RETRY)
            state.head_attempt = 1
            state.retry_at = self.now() + self._delay(1, first)
            await self._enqueue(state, again)

    async def _enqueue(self, state: HookState, deliveries: list[Delivery]) -> None:
        """Queue deliveries behind the hook's waiting ones (durable when this returns)."""
        limit = self.settings.queue_limit
        if state.queued + len(deliveries) > limit:
            self._disable.setdefault(
                state.hook.hook_id, f"more than {limit} deliveries waiting for the receiver"
            )
            deliveries = deliveries[: max(0, limit - state.queued)]
        if not state.queue_mode:
            state.queue_mode = True
            state.retry_at = state.retry_at or self.now()
        items = [
            Queued(state.hook.hook_id, self._next_seq(), d.event_id, d.body.decode())
            for d in deliveries
        ]
        state.enqueuing += 1
        state.queued += len(items)
        state.dirty = True
        try:
            await self.hooks.enqueue(items)
        finally:
            state.enqueuing -= 1
        self._export_queued()

    def _next_seq(self) -> int:
        """An increasing sequence number from the clock (ns), unique in this process."""
        self._seq = max(self._seq + 1, time.time_ns())
        return self._seq

    # -- the queues ------------------------------------------------------------------------

    async def keep_draining(self, stop: asyncio.Event, tick: float = 0.05) -> None:
        """Until `stop`: start a drain of every hook whose retry time came."""
        while not stop.is_set():
            try:
                await self.reload()
                now = self.now()
                for state in list(self.states.values()):
                    busy = state.draining is not None and not state.draining.done()
                    if state.queue_mode and state.retry_at <= now and not busy:
                        state.draining = asyncio.create_task(self.drain(state))
            except Exception:
                log.exception("notifier_drain_loop_failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), tick)
        for state in self.states.values():
            if state.draining is not None:
                state.draining.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await state.draining

    async def drain(self, state: HookState) -> None:
        """Try the oldest waiting delivery of a hook; if the receiver takes it, send the rest
        of a batch and take what was done off the queue."""
        try:
            await self._drain(state)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("webhook_drain_failed", hook=state.hook.hook_id)
            state.retry_at = self.now() + STEP_RETRY[1]
        await self.flush()

    async def _drain(self, state: HookState) -> None:
        batch = await self.hooks.queued(state.hook.hook_id, state.head, DRAIN_BATCH)
        if not batch:
            if state.enqueuing == 0:
                state.queue_mode, state.queued, state.head_attempt = False, 0, 0
                state.dirty = True
            return
        head = batch[0]
        sent = await self._try(state, head, state.head_attempt + 1)
        if sent.outcome is Outcome.RETRY:
            state.head_attempt += 1
            state.retry_at = self.now() + self._delay(state.head_attempt, sent)
            return
        done, state.head_attempt = head.seq, 0
        rest = await asyncio.gather(*(self._try(state, q, 1) for q in batch[1:]))
        for item, result in zip(batch[1:], rest, strict=True):
            if result.outcome is Outcome.RETRY:  # the next try starts with this one
                state.head_attempt = 1
                state.retry_at = self.now() + self._delay(1, result)
                break
            done = item.seq
        else:
            state.retry_at = self.now()
        taken = sum(1 for q in batch if q.seq <= done)
        await self.hooks.dequeue(state.hook.hook_id, done)
        state.head = done
        state.queued = max(0, state.queued - taken)
        state.dirty = True
        self._export_queued()

    async def _try(self, state: HookState, item: Queued, attempt: int) -> Sent:
        async with state.gate:
            sent = await self.sender.send(state.hook, item.event_id, item.body.encode(), attempt)
        self._record(state, item.event_id, attempt, sent, self._next_retry(state, attempt, sent))
        return sent

    # -- bookkeeping ---------------------------------------------------------------------------

    def _delay(self, attempt: int, sent: Sent) -> float:
        s = self.settings
        return retry_delay(attempt, s.retry_base, s.retry_max, self.rng.random(), sent.retry_after)

    def _next_retry(self, state: HookState, attempt: int, sent: Sent) -> datetime | None:
        """When a failed attempt is tried again, as logged (about: the drainer decides)."""
        if sent.outcome is not Outcome.RETRY:
            return None
        ceiling = min(self.settings.retry_max, self.settings.retry_base * 2 ** min(attempt - 1, 62))
        return datetime.fromtimestamp(self.now() + ceiling, UTC)

    def _record(
        self, state: HookState, event_id: str, attempt: int, sent: Sent, next_at: datetime | None
    ) -> None:
        """Log an attempt and count it towards the hook's consecutive failures."""
        at = datetime.fromtimestamp(self.now(), UTC)
        self._log.append(
            Attempt(
                state.hook.hook_id,
                self._next_seq(),
                event_id,
                attempt,
                at,
                sent.outcome,
                sent.status,
                sent.error,
                int(sent.duration * 1000),
                next_at,
            )
        )
        WEBHOOK_ATTEMPTS.labels(sent.outcome.value).inc()
        if sent.status is not None:
            WEBHOOK_DURATION.observe(sent.duration)
        state.dirty = True
        if sent.outcome is Outcome.DELIVERED:
            self.delivered += 1
            state.failures, state.last_success_at = 0, at
            return
        state.failures += 1
        state.last_failure_at, state.last_error = at, sent.error
        if state.failures >= self.settings.max_failures:
            self._disable.setdefault(
                state.hook.hook_id,
                f"{state.failures} consecutive failed deliveries; the last: {sent.error}",
            )

    async def flush(self) -> None:
        """Record the attempts, the changed health of hooks, and disable what must be."""
        attempts, self._log = self._log, []
        if attempts:
            await self.hooks.log_attempts(attempts, self.settings.log_size)
        for state in list(self.states.values()):
            if state.dirty:
                state.dirty = False
                await self.hooks.set_health(state.health())
        disable, self._disable = self._disable, {}
        for hook_id, reason in disable.items():
            await self.hooks.set_enabled(hook_id, False, reason, datetime.now(UTC))
            WEBHOOKS_DISABLED.inc()
            log.warning("webhook_disabled", hook=hook_id, reason=reason)
            self._drop(hook_id)
