"""Webhooks: what a subscriber registers, what each delivery attempt did, what waits for a
receiver that failed, and the store port that keeps them (SQLite and Cassandra adapters).

The delivery rules themselves (signature, which answers are retried, backoff) are pure
functions in services/core/delivery.py; the notifier (services/notifier/) applies them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from services.core.change_filter import ChangeFilter

MAX_HOOKS = 1000  # webhooks one deployment keeps (each is matched against every change)


class Outcome(StrEnum):
    """What one delivery attempt came to."""

    DELIVERED = "delivered"  # the receiver answered 2xx
    RETRY = "retry"  # 5xx, 408, 429, a timeout or a connection failure: tried again later
    FAILED = "failed"  # another 4xx or a redirect: this event is not sent again
    REFUSED = "refused"  # never sent: the address is not allowed (private network)


@dataclass(frozen=True, slots=True)
class Hook:
    """A registered webhook. `secret` signs its deliveries and is shown once, at creation."""

    hook_id: str
    url: str
    secret: str = field(repr=False)
    filter: ChangeFilter
    created_at: datetime
    enabled_at: datetime  # last (re-)enabled: the notifier restarts its failure count then
    description: str = ""
    enabled: bool = True
    disabled_reason: str | None = None
    disabled_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class HookHealth:
    """How a webhook's deliveries go, as the notifier last recorded it."""

    hook_id: str
    consecutive_failures: int = 0
    last_success_at: datetime | None = None
    last_failure_at: datetime | None = None
    last_error: str | None = None
    queued: int = 0  # deliveries waiting for the receiver (about: counted by the notifier)
    retry_at: datetime | None = None  # when the oldest waiting delivery is tried next


@dataclass(frozen=True, slots=True)
class Attempt:
    """One delivery attempt, as the delivery log keeps it."""

    hook_id: str
    seq: int  # orders a hook's attempts (time-based, increasing)
    event_id: str
    attempt: int  # 1 for the first try of this event
    at: datetime
    outcome: Outcome
    status: int | None = None  # the receiver's HTTP status, if it answered
    error: str | None = None
    duration_ms: int = 0
    next_at: datetime | None = None  # when it is tried again (outcome retry)


@dataclass(frozen=True, slots=True)
class Queued:
    """A delivery waiting in a hook's queue (its receiver failed): the change's JSON as sent."""

    hook_id: str
    seq: int  # queue order (time-based, increasing)
    event_id: str
    body: str


class HookStore(Protocol):
    """Webhooks, their health, delivery logs and queues."""

    async def add_hook(self, hook: Hook) -> None: ...

    async def hooks(self) -> list[Hook]:
        """Every registered webhook (at most MAX_HOOKS)."""
        ...

    async def get_hook(self, hook_id: str) -> Hook | None: ...

    async def delete_hook(self, hook_id: str) -> bool:
        """Remove a webhook with its health, log and queue; whether it existed."""
        ...

    async def set_enabled(
        self, hook_id: str, enabled: bool, reason: str | None, at: datetime
    ) -> Hook | None:
        """Disable a webhook with its reason, or enable it again (its failure count and retry
        time reset); the webhook as it now is, None if unknown."""
        ...

    async def health(self, hook_ids: Sequence[str]) -> dict[str, HookHealth]:
        """The recorded health of each of `hook_ids` that has one."""
        ...

    async def set_health(self, health: HookHealth) -> None: ...

    async def log_attempts(self, attempts: Sequence[Attempt], keep: int) -> None:
        """Add attempts to their hooks' logs, each log keeping its newest `keep` entries."""
        ...

    async def attempts(self, hook_id: str, limit: int) -> list[Attempt]:
        """A webhook's newest logged attempts, newest first."""
        ...

    async def enqueue(self, items: Sequence[Queued]) -> None:
        """Append deliveries to their hooks' queues (durable when it returns)."""
        ...

    async def queued(self, hook_id: str, after: int, limit: int) -> list[Queued]:
        """Up to `limit` waiting deliveries of a hook with seq > `after`, oldest first."""
        ...

    async def dequeue(self, hook_id: str, upto: int) -> None:
        """Drop a hook's waiting deliveries with seq <= `upto` (done or given up)."""
        ...
