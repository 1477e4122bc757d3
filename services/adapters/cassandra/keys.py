"""Cassandra adapter of the KeyStore port: the `api_keys` table (migration 011) in the store's
keyspace, so every API replica sees the same keys.

A new key is inserted with `IF NOT EXISTS` and a revocation is `IF revoked_at = null`
(lightweight transactions, LOCAL_SERIAL): two replicas can neither give one id to two keys
nor move a revocation's time. Keys are written rarely, so the Paxos round costs nothing that
matters; reads are plain LOCAL_QUORUM reads of one partition.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cassandra.query import UNSET_VALUE

from services.adapters.cassandra import CassandraStore
from services.adapters.cassandra.extension import Extension
from services.adapters.cassandra.session import Row
from services.core.keys import ApiKey, Role, by_creation

_COLS = "key_id, name, role, secret_hash, created_at, revoked_at, rate_per_minute, email"
STATEMENTS = {
    "keys_insert": f"INSERT INTO api_keys ({_COLS}) VALUES (?,?,?,?,?,?,?,?) IF NOT EXISTS",
    "keys_get": f"SELECT {_COLS} FROM api_keys WHERE key_id=?",
    "keys_all": f"SELECT {_COLS} FROM api_keys",
    "keys_revoke": "UPDATE api_keys SET revoked_at=? WHERE key_id=? IF revoked_at = null",
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _us(moment: datetime) -> int:
    delta = moment.astimezone(UTC) - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _at(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _key(row: Row) -> ApiKey:
    return ApiKey(
        key_id=row.key_id,
        name=row.name,
        role=Role(row.role),
        secret_hash=row.secret_hash,
        created_at=_at(row.created_at),
        revoked_at=_at(row.revoked_at) if row.revoked_at is not None else None,
        rate_per_minute=row.rate_per_minute,
        email=row.email,
    )


class CassandraKeyStore(Extension):
    """API keys in the distributed store's keyspace."""

    def __init__(self, store: CassandraStore) -> None:
        super().__init__(store, STATEMENTS)

    async def add_key(self, key: ApiKey) -> bool:
        """Store a new key; False (nothing written) when a key with its id exists."""
        values = [
            key.key_id,
            key.name,
            key.role.value,
            key.secret_hash,
            _us(key.created_at),
            _us(key.revoked_at) if key.revoked_at else UNSET_VALUE,
            key.rate_per_minute if key.rate_per_minute is not None else UNSET_VALUE,
            key.email if key.email is not None else UNSET_VALUE,
        ]
        rows = await (await self._cql()).run("keys_insert", values)
        return bool(rows[0][0])

    async def get_key(self, key_id: str) -> ApiKey | None:
        """The key with this id, revoked or not."""
        rows = await (await self._cql()).run("keys_get", (key_id,))
        return _key(rows[0]) if rows else None

    async def list_keys(self) -> list[ApiKey]:
        """Every key, revoked ones too, oldest first (one read of the whole table)."""
        rows = await (await self._cql()).run("keys_all", ())
        return by_creation([_key(r) for r in rows])

    async def revoke_key(self, key_id: str, at: datetime) -> ApiKey | None:
        """Mark the key revoked at `at` unless it already is; the key as it is now."""
        key = await self.get_key(key_id)
        if key is None or key.revoked_at is not None:
            return key
        await (await self._cql()).run("keys_revoke", (_us(at), key_id))
        return await self.get_key(key_id)
