"""SQLite adapter of the HookStore port (embedded mode), in the store's own file and thread
(`SqliteFile.run`); the tables are in migrations.py."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from services.adapters.sqlite.connection import SqliteFile
from services.core.change_filter import ChangeFilter
from services.core.timeutil import from_iso, to_iso
from services.core.webhooks import MAX_HOOKS, Attempt, Hook, HookHealth, Outcome, Queued

_HOOK_COLS = (
    "hook_id, url, secret, filter, description, created_at, enabled_at, enabled,"
    " disabled_reason, disabled_at"
)
_HEALTH_COLS = (
    "hook_id, consecutive_failures, last_success_at, last_failure_at, last_error, queued, retry_at"
)
_ATTEMPT_COLS = "hook_id, seq, event_id, attempt, at, outcome, status, error, duration_ms, next_at"


def _iso(moment: datetime | None) -> str | None:
    return to_iso(moment) if moment is not None else None


def _dt(text: str | None) -> datetime | None:
    return from_iso(text) if text else None


def _hook(row: Sequence[Any]) -> Hook:
    return Hook(
        hook_id=row[0],
        url=row[1],
        secret=row[2],
        filter=ChangeFilter.from_dict(json.loads(row[3])),
        description=row[4],
        created_at=from_iso(row[5]),
        enabled_at=from_iso(row[6]),
        enabled=bool(row[7]),
        disabled_reason=row[8],
        disabled_at=_dt(row[9]),
    )


def _attempt(row: Sequence[Any]) -> Attempt:
    return Attempt(
        hook_id=row[0],
        seq=row[1],
        event_id=row[2],
        attempt=row[3],
        at=from_iso(row[4]),
        outcome=Outcome(row[5]),
        status=row[6],
        error=row[7],
        duration_ms=row[8],
        next_at=_dt(row[9]),
    )


class SqliteHooks:
    """Webhooks, their health, delivery logs and queues in the embedded SQLite file."""

    def __init__(self, store: SqliteFile) -> None:
        self._store = store

    async def add_hook(self, hook: Hook) -> None:
        """Store a new webhook."""
        row = (
            hook.hook_id,
            hook.url,
            hook.secret,
            json.dumps(hook.filter.to_dict()),
            hook.description,
            to_iso(hook.created_at),
            to_iso(hook.enabled_at),
            int(hook.enabled),
            hook.disabled_reason,
            _iso(hook.disabled_at),
        )
        await self._store.run(
            lambda c: c.execute(
                f"INSERT INTO webhooks ({_HOOK_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?)", row
            )
        )

    async def hooks(self) -> list[Hook]:
        """Every webhook, oldest first."""

        def read(conn: sqlite3.Connection) -> list[Hook]:
            rows = conn.execute(
                f"SELECT {_HOOK_COLS} FROM webhooks ORDER BY created_at, hook_id LIMIT ?",
                (MAX_HOOKS,),
            )
            return [_hook(r) for r in rows]

        return await self._store.run(read)

    async def get_hook(self, hook_id: str) -> Hook | None:
        """One webhook by id."""

        def read(conn: sqlite3.Connection) -> Hook | None:
            row = conn.execute(
                f"SELECT {_HOOK_COLS} FROM webhooks WHERE hook_id=?", (hook_id,)
            ).fetchone()
            return _hook(row) if row else None

        return await self._store.run(read)

    async def delete_hook(self, hook_id: str) -> bool:
        """Remove a webhook, its health, log and queue (one transaction)."""

        def write(conn: sqlite3.Connection) -> bool:
            found = conn.execute("DELETE FROM webhooks WHERE hook_id=?", (hook_id,)).rowcount
            for table in ("webhook_health", "webhook_attempts", "webhook_queue"):
                conn.execute(f"DELETE FROM {table} WHERE hook_id=?", (hook_id,))
            return found > 0

        return await self._store.run(write)

    async def set_enabled(
        self, hook_id: str, enabled: bool, reason: str | None, at: datetime
    ) -> Hook | None:
        """Disable with a reason, or enable again (resetting failures and the retry time)."""

        def write(conn: sqlite3.Connection) -> Hook | None:
            if enabled:
                conn.execute(
                    "UPDATE webhooks SET enabled=1, enabled_at=?, disabled_reason=NULL,"
                    " disabled_at=NULL WHERE hook_id=?",
                    (to_iso(at), hook_id),
                )
                conn.execute(
                    "UPDATE webhook_health SET consecutive_failures=0, retry_at=NULL"
                    " WHERE hook_id=?",
                    (hook_id,),
                )
            else:
                conn.execute(
                    "UPDATE webhooks SET enabled=0, disabled_reason=?, disabled_at=?"
                    " WHERE hook_id=?",
                    (reason, to_iso(at), hook_id),
                )
            row = conn.execute(
                f"SELECT {_HOOK_COLS} FROM webhooks WHERE hook_id=?", (hook_id,)
            ).fetchone()
            return _hook(row) if row else None

        return await self._store.run(write)

    async def health(self, hook_ids: Sequence[str]) -> dict[str, HookHealth]:
        """The recorded health of each hook that has one."""

        def read(conn: sqlite3.Connection) -> dict[str, HookHealth]:
            marks = ",".join("?" * len(hook_ids))
            rows = conn.execute(
                f"SELECT {_HEALTH_COLS} FROM webhook_health WHERE hook_id IN ({marks})",
                list(hook_ids),
            )
            return {
                r[0]: HookHealth(r[0], r[1], _dt(r[2]), _dt(r[3]), r[4], r[5], _dt(r[6]))
                for r in rows
            }

        return await self._store.run(read) if hook_ids else {}

    async def set_health(self, health: HookHealth) -> None:
        """Record a hook's health (replacing what was recorded)."""
        row = (
            health.hook_id,
            health.consecutive_failures,
            _iso(health.last_success_at),
            _iso(health.last_failure_at),
            health.last_error,
            health.queued,
            _iso(health.retry_at),
        )
        await self._store.run(
            lambda c: c.execute(
                f"INSERT OR REPLACE INTO webhook_health ({_HEALTH_COLS}) VALUES (?,?,?,?,?,?,?)",
                row,
            )
        )

    async def log_attempts(self, attempts: Sequence[Attempt], keep: int) -> None:
        """Add attempts; each hook's log keeps its newest `keep`."""
        rows = [
            (
                a.hook_id,
                a.seq,
                a.event_id,
                a.attempt,
                to_iso(a.at),
                a.outcome.value,
                a.status,
                a.error,
                a.duration_ms,
                _iso(a.next_at),
            )
            for a in attempts
        ]

        def write(conn: sqlite3.Connection) -> None:
            conn.executemany(
                f"INSERT OR REPLACE INTO webhook_attempts ({_ATTEMPT_COLS})"
                " VALUES (?,?,?,?,?,?,?,?,?,?)",
                rows,
            )
            for hook_id in {a.hook_id for a in attempts}:
                conn.execute(
                    "DELETE FROM webhook_attempts WHERE hook_id=? AND seq < (SELECT seq FROM"
                    " webhook_attempts WHERE hook_id=? ORDER BY seq DESC LIMIT 1 OFFSET ?)",
                    (hook_id, hook_id, keep - 1),
                )

        if rows:
            await self._store.run(write)

    async def attempts(self, hook_id: str, limit: int) -> list[Attempt]:
        """A hook's newest attempts, newest first."""

        def read(conn: sqlite3.Connection) -> list[Attempt]:
            rows = conn.execute(
                f"SELECT {_ATTEMPT_COLS} FROM webhook_attempts WHERE hook_id=?"
                " ORDER BY seq DESC LIMIT ?",
                (hook_id, limit),
            )
            return [_attempt(r) for r in rows]

        return await self._store.run(read)

    async def enqueue(self, items: Sequence[Queued]) -> None:
        """Append deliveries to their hooks' queues (committed when this returns)."""
        rows = [(q.hook_id, q.seq, q.event_id, q.body) for q in items]
        if rows:
            await self._store.run(
                lambda c: c.executemany(
                    "INSERT OR REPLACE INTO webhook_queue VALUES (?,?,?,?)", rows
                )
            )

    async def queued(self, hook_id: str, after: int, limit: int) -> list[Queued]:
        """A hook's waiting deliveries after seq `after`, oldest first."""

        def read(conn: sqlite3.Connection) -> list[Queued]:
            rows = conn.execute(
                "SELECT hook_id, seq, event_id, body FROM webhook_queue"
                " WHERE hook_id=? AND seq>? ORDER BY seq LIMIT ?",
                (hook_id, after, limit),
            )
            return [Queued(*r) for r in rows]

        return await self._store.run(read)

    async def dequeue(self, hook_id: str, upto: int) -> None:
        """Drop a hook's waiting deliveries up to seq `upto`."""
        await self._store.run(
            lambda c: c.execute(
                "DELETE FROM webhook_queue WHERE hook_id=? AND seq<=?", (hook_id, upto)
            )
        )
