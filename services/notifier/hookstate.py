"""What the notifier keeps per enabled hook, and one delivery of a change to a hook."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime

from services.core.webhooks import Hook, HookHealth

PER_HOOK = 16  # deliveries in flight to one receiver


@dataclass
class HookState:
    """What the notifier knows of one enabled hook."""

    hook: Hook
    failures: int = 0  # consecutive failed attempts
    queued: int = 0  # deliveries waiting (about)
    queue_mode: bool = False  # the receiver failed: deliveries queue behind the waiting ones
    retry_at: float = 0.0  # unix time the oldest waiting delivery is tried again
    head: int = 0  # the last seq taken off the queue
    head_attempt: int = 0  # failed tries of the oldest waiting delivery
    enqueuing: int = 0  # queue writes in flight
    last_success_at: datetime | None = None
    last_failure_at: datetime | None = None
    last_error: str | None = None
    dirty: bool = False  # health to record
    draining: asyncio.Task[None] | None = None
    gate: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(PER_HOOK))

    def health(self) -> HookHealth:
        """The recordable health."""
        retry = datetime.fromtimestamp(self.retry_at, UTC) if self.queue_mode else None
        return HookHealth(
            self.hook.hook_id,
            self.failures,
            self.last_success_at,
            self.last_failure_at,
            self.last_error,
            self.queued,
            retry,
        )


@dataclass(frozen=True, slots=True)
class Delivery:
    """One change for one hook: its event id and the JSON body sent."""

    event_id: str
    body: bytes
