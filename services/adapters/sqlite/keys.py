"""SQLite adapter of the KeyStore port: the `api_keys` table (migrations.py) in
the embedded store's file, on the store's own thread, so `alm keys` and a running `alm run`
see the same keys."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

from services.adapters.sqlite.connection import SqliteFile
from services.core.keys import ApiKey, Role, by_creation
from services.core.timeutil import from_iso, to_iso

_COLS = "key_id, name, role, secret_hash, created_at, revoked_at, rate_per_minute, email"


def _key(row: Any) -> ApiKey:
    key_id, name, role, secret_hash, created, revoked, rate, email = row
    return ApiKey(
        key_id=str(key_id),
        name=str(name),
        role=Role(str(role)),
        secret_hash=str(secret_hash),
        created_at=from_iso(str(created)),
        revoked_at=from_iso(str(revoked)) if revoked is not None else None,
        rate_per_minute=int(rate) if rate is not None else None,
        email=str(email) if email is not None else None,
    )


def _get(conn: sqlite3.Connection, key_id: str) -> ApiKey | None:
    row = conn.execute(f"SELECT {_COLS} FROM api_keys WHERE key_id=?", (key_id,)).fetchone()
    return _key(row) if row else None


class SqliteKeyStore:
    """API keys in the embedded store's SQLite file."""

    def __init__(self, store: SqliteFile) -> None:
        self._store = store

    async def add_key(self, key: ApiKey) -> bool:
        """Store a new key; False (nothing written) when a key with its id exists."""
        row = (
            key.key_id,
            key.name,
            key.role.value,
            key.secret_hash,
            to_iso(key.created_at),
            to_iso(key.revoked_at) if key.revoked_at else None,
            key.rate_per_minute,
            key.email,
        )

        def write(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                f"INSERT OR IGNORE INTO api_keys ({_COLS}) VALUES (?,?,?,?,?,?,?,?)", row
            )
            return cursor.rowcount == 1

        return await self._store.run(write)

    async def get_key(self, key_id: str) -> ApiKey | None:
        """The key with this id, revoked or not."""
        return await self._store.run(lambda conn: _get(conn, key_id))

    async def list_keys(self) -> list[ApiKey]:
        """Every key, revoked ones too, oldest first."""

        def read(conn: sqlite3.Connection) -> list[ApiKey]:
            return [_key(r) for r in conn.execute(f"SELECT {_COLS} FROM api_keys")]

        return by_creation(await self._store.run(read))

    async def revoke_key(self, key_id: str, at: datetime) -> ApiKey | None:
        """Mark the key revoked at `at` unless it already is; the key as it is now."""

        def write(conn: sqlite3.Connection) -> ApiKey | None:
            conn.execute(
                "UPDATE api_keys SET revoked_at=? WHERE key_id=? AND revoked_at IS NULL",
                (to_iso(at), key_id),
            )
            return _get(conn, key_id)

        return await self._store.run(write)
