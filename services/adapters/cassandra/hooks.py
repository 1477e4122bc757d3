"""Cassandra adapter of the HookStore port (distributed mode), in the store's keyspace
(migration 008_webhooks.cql) over the store's session (`CassandraStore.session`).

- `webhooks` and `webhook_health` are small (at most MAX_HOOKS rows) and read whole.
- The delivery log of a hook is one partition, newest first, trimmed to the newest `keep` by
  one range delete once this process added `keep / 2` entries to it (so a partition holds at
  most about 1.5 x `keep` rows and a range tombstone or two), with a 30-day TTL as a backstop.
- A hook's queue is a queue in Cassandra, the pattern that fails on tombstones when rows are
  deleted one by one and read from the start. Here a partition is one hook's minute of
  queueing (`bucket`), listed in `webhook_queue_buckets`; a reader starts after the last seq it
  took (`seq > after`), so it never reads past what was dequeued; a drained minute is dropped
  as a whole partition, the current one with one range delete per dequeue. Rows expire after
  7 days (a hook disabled longer loses what it had queued: docs/changes.md).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from services.adapters.cassandra import CassandraStore
from services.adapters.cassandra.extension import Extension
from services.core.change_filter import ChangeFilter
from services.core.webhooks import MAX_HOOKS, Attempt, Hook, HookHealth, Outcome, Queued

BUCKET = 60 * 1_000_000_000  # seq units (nanoseconds) in one queue partition: a minute
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_HOOK = (
    "hook_id, url, secret, filter, description, created_at, enabled_at, enabled,"
    " disabled_reason, disabled_at"
)
_HEALTH = (
    "hook_id, consecutive_failures, last_success_at, last_failure_at, last_error, queued, retry_at"
)
_ATTEMPT = "hook_id, seq, event_id, attempt, at, outcome, status, error, duration_ms, next_at"

STATEMENTS = {
    "hook_put": f"INSERT INTO webhooks ({_HOOK}) VALUES (?,?,?,?,?,?,?,?,?,?)",
    "hook_all": f"SELECT {_HOOK} FROM webhooks LIMIT {MAX_HOOKS}",
    "hook_get": f"SELECT {_HOOK} FROM webhooks WHERE hook_id=?",
    "hook_del": "DELETE FROM webhooks WHERE hook_id=?",
    "hook_enable": "UPDATE webhooks SET enabled=true, enabled_at=?, disabled_reason=null,"
    " disabled_at=null WHERE hook_id=?",
    "hook_disable": "UPDATE webhooks SET enabled=false, disabled_reason=?, disabled_at=?"
    " WHERE hook_id=?",
    "hook_health_put": f"INSERT INTO webhook_health ({_HEALTH}) VALUES (?,?,?,?,?,?,?)",
    "hook_health_in": f"SELECT {_HEALTH} FROM webhook_health WHERE hook_id IN ?",
    "hook_health_reset": "UPDATE webhook_health SET consecutive_failures=0, retry_at=null"
    " WHERE hook_id=?",
    "hook_health_del": "DELETE FROM webhook_health WHERE hook_id=?",
    "hook_attempt_put": f"INSERT INTO webhook_attempts ({_ATTEMPT}) VALUES (?,?,?,?,?,?,?,?,?,?)",
    "hook_attempts": f"SELECT {_ATTEMPT} FROM webhook_attempts WHERE hook_id=? LIMIT ?",
    "hook_attempt_seqs": "SELECT seq FROM webhook_attempts WHERE hook_id=? LIMIT ?",
    "hook_attempts_trim": "DELETE FROM webhook_attempts WHERE hook_id=? AND seq<?",
    "hook_attempts_del": "DELETE FROM webhook_attempts WHERE hook_id=?",
    "hook_queue_put": "INSERT INTO webhook_queue (hook_id, bucket, seq, event_id, body)"
    " VALUES (?,?,?,?,?)",
    "hook_bucket_put": "INSERT INTO webhook_queue_buckets (hook_id, bucket) VALUES (?,?)",
    "hook_buckets": "SELECT bucket FROM webhook_queue_buckets WHERE hook_id=? AND bucket>=?",
    "hook_buckets_upto": "SELECT bucket FROM webhook_queue_buckets WHERE hook_id=? AND bucket<=?",
    "hook_queue_read": "SELECT seq, event_id, body FROM webhook_queue WHERE hook_id=?"
    " AND bucket=? AND seq>? LIMIT ?",
    "hook_queue_trim": "DELETE FROM webhook_queue WHERE hook_id=? AND bucket=? AND seq<=?",
    "hook_queue_drop": "DELETE FROM webhook_queue WHERE hook_id=? AND bucket=?",
    "hook_bucket_del": "DELETE FROM webhook_queue_buckets WHERE hook_id=? AND bucket=?",
    "hook_buckets_del": "DELETE FROM webhook_queue_buckets WHERE hook_id=?",
}


def _us(moment: datetime | None) -> int | None:
    return None if moment is None else (moment - EPOCH) // timedelta(microseconds=1)


def _dt(us: int | None) -> datetime | None:
    return None if us is None else EPOCH + timedelta(microseconds=us)


def _req(us: int | None) -> datetime:
    found = _dt(us)
    if found is None:
        raise ValueError("a required time is missing")
    return found


def _hook(r: Any) -> Hook:
    return Hook(
        hook_id=r.hook_id,
        url=r.url,
        secret=r.secret,
        filter=ChangeFilter.from_dict(json.loads(r.filter)),
        created_at=_req(r.created_at),
        enabled_at=_req(r.enabled_at),
        description=r.description or "",
        enabled=bool(r.enabled),
        disabled_reason=r.disabled_reason,
        disabled_at=_dt(r.disabled_at),
    )


def _attempt(r: Any) -> Attempt:
    return Attempt(
        hook_id=r.hook_id,
        seq=r.seq,
        event_id=r.event_id,
        attempt=r.attempt,
        at=_req(r.at),
        outcome=Outcome(r.outcome),
        status=r.status,
        error=r.error,
        duration_ms=r.duration_ms or 0,
        next_at=_dt(r.next_at),
    )


class CassandraHooks(Extension):
    """Webhooks, their health, delivery logs and queues in the store's keyspace."""

    def __init__(self, store: CassandraStore) -> None:
        super().__init__(store, STATEMENTS)
        self._since_trim: dict[str, int] = {}  # log entries added per hook since its trim

    async def add_hook(self, hook: Hook) -> None:
        """Store a new webhook."""
        cql = await self._cql()
        await cql.run(
            "hook_put",
            (
                hook.hook_id,
                hook.url,
                hook.secret,
                json.dumps(hook.filter.to_dict()),
                hook.description,
                _us(hook.created_at),
                _us(hook.enabled_at),
                hook.enabled,
                hook.disabled_reason,
                _us(hook.disabled_at),
            ),
        )

    async def hooks(self) -> list[Hook]:
        """Every webhook, oldest first."""
        rows = await (await self._cql()).run("hook_all", ())
        return sorted((_hook(r) for r in rows), key=lambda h: (h.created_at, h.hook_id))

    async def get_hook(self, hook_id: str) -> Hook | None:
        """One webhook by id."""
        rows = await (await self._cql()).run("hook_get", (hook_id,))
        return _hook(rows[0]) if rows else None

    async def delete_hook(self, hook_id: str) -> bool:
        """Remove a webhook, then its health, log and queue."""
        cql = await self._cql()
        if not await cql.run("hook_get", (hook_id,)):
            return False
        await cql.run("hook_del", (hook_id,))
        buckets = await cql.run("hook_buckets", (hook_id, 0))
        await cql.run_many(
            [
                ("hook_health_del", (hook_id,)),
                ("hook_attempts_del", (hook_id,)),
                *(("hook_queue_drop", (hook_id, b.bucket)) for b in buckets),
                ("hook_buckets_del", (hook_id,)),
            ]
        )
        return True

    async def set_enabled(
        self, hook_id: str, enabled: bool, reason: str | None, at: datetime
    ) -> Hook | None:
        """Disable with a reason, or enable again (resetting failures and the retry time)."""
        cql = await self._cql()
        if not await cql.run("hook_get", (hook_id,)):
            return None
        if enabled:
            await cql.run("hook_enable", (_us(at), hook_id))
            await cql.run("hook_health_reset", (hook_id,))
        else:
            await cql.run("hook_disable", (reason, _us(at), hook_id))
        return await self.get_hook(hook_id)

    async def health(self, hook_ids: Sequence[str]) -> dict[str, HookHealth]:
        """The recorded health of each hook that has one."""
        if not hook_ids:
            return {}
        cql = await self._cql()
        out = {}
        for start in range(0, len(hook_ids), 50):
            rows = await cql.run("hook_health_in", (list(hook_ids[start : start + 50]),))
            for r in rows:
                out[r.hook_id] = HookHealth(
                    r.hook_id,
                    r.consecutive_failures or 0,
                    _dt(r.last_success_at),
                    _dt(r.last_failure_at),
                    r.last_error,
                    r.queued or 0,
                    _dt(r.retry_at),
                )
        return out

    async def set_health(self, health: HookHealth) -> None:
        """Record a hook's health (replacing what was recorded)."""
        await (await self._cql()).run(
            "hook_health_put",
            (
                health.hook_id,
                health.consecutive_failures,
                _us(health.last_success_at),
                _us(health.last_failure_at),
                health.last_error,
                health.queued,
                _us(health.retry_at),
            ),
        )

    async def log_attempts(self, attempts: Sequence[Attempt], keep: int) -> None:
        """Add attempts; a hook's log is trimmed to its newest `keep` every `keep / 2` adds."""
        if not attempts:
            return
        cql = await self._cql()
        await cql.run_many(
            cql.batches(
                [
                    (
                        "hook_attempt_put",
                        (
                            a.hook_id,
                            a.seq,
                            a.event_id,
                            a.attempt,
                            _us(a.at),
                            a.outcome.value,
                            a.status,
                            a.error,
                            a.duration_ms,
                            _us(a.next_at),
                        ),
                    )
                    for a in attempts
                ]
            )
        )
        for a in attempts:
            self._since_trim[a.hook_id] = self._since_trim.get(a.hook_id, 0) + 1
        for hook_id in {a.hook_id for a in attempts}:
            if self._since_trim[hook_id] >= max(1, keep // 2):
                self._since_trim[hook_id] = 0
                rows = await cql.run("hook_attempt_seqs", (hook_id, keep))
                if len(rows) == keep:
                    await cql.run("hook_attempts_trim", (hook_id, rows[-1].seq))

    async def attempts(self, hook_id: str, limit: int) -> list[Attempt]:
        """A hook's newest attempts, newest first."""
        rows = await (await self._cql()).run("hook_attempts", (hook_id, limit))
        return [_attempt(r) for r in rows]

    async def enqueue(self, items: Sequence[Queued]) -> None:
        """Append deliveries (and the minutes they fall in) to their hooks' queues."""
        if not items:
            return
        cql = await self._cql()
        buckets = {(q.hook_id, q.seq // BUCKET) for q in items}
        await cql.run_many(
            [
                *(("hook_bucket_put", key) for key in sorted(buckets)),
                *(
                    ("hook_queue_put", (q.hook_id, q.seq // BUCKET, q.seq, q.event_id, q.body))
                    for q in items
                ),
            ]
        )

    async def queued(self, hook_id: str, after: int, limit: int) -> list[Queued]:
        """A hook's waiting deliveries after seq `after`, oldest first."""
        cql = await self._cql()
        out: list[Queued] = []
        for b in await cql.run("hook_buckets", (hook_id, after // BUCKET)):
            rows = await cql.run("hook_queue_read", (hook_id, b.bucket, after, limit - len(out)))
            out += [Queued(hook_id, r.seq, r.event_id, r.body) for r in rows]
            if len(out) >= limit:
                break
        return out

    async def dequeue(self, hook_id: str, upto: int) -> None:
        """Drop a hook's deliveries up to seq `upto`: older minutes whole, the last in part."""
        cql = await self._cql()
        last = upto // BUCKET
        calls: list[tuple[str, Sequence[Any]]] = []
        for b in await cql.run("hook_buckets_upto", (hook_id, last)):
            if b.bucket < last:
                calls += [
                    ("hook_queue_drop", (hook_id, b.bucket)),
                    ("hook_bucket_del", (hook_id, b.bucket)),
                ]
        calls.append(("hook_queue_trim", (hook_id, last, upto)))
        await cql.run_many(calls)
