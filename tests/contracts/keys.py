"""The KeyStore contract: same calls, same answers from SQLite and Cassandra, and only a digest of
each key on disk. tests/unit/test_keys_store_contract.py runs it against SQLite,
tests/integration/test_keys.py against Cassandra; each gives the `keys` fixture."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

from services.adapters.cassandra.keys import CassandraKeyStore
from services.adapters.sqlite.keys import SqliteKeyStore
from services.core.keys import ApiKey, KeyStore, Role, issue

T0 = datetime(2026, 11, 29, 12, 0, 0, 123456, tzinfo=UTC)


def _new(role: Role = Role.READER, **fields: object) -> tuple[ApiKey, str]:
    return issue("contract", role, T0, **fields)  # type: ignore[arg-type]


async def test_a_key_round_trips_and_ids_are_unique(keys: KeyStore) -> None:
    """add/get give back the same record; a second key with a taken id is refused."""
    record, secret = _new(Role.ADMIN, rate_per_minute=0, email="ops@example.org")
    assert await keys.add_key(record)
    assert await keys.get_key(record.key_id) == record
    twin, _ = issue("twin", Role.READER, T0)
    clash = ApiKey(record.key_id, "twin", Role.READER, twin.secret_hash, T0)
    assert not await keys.add_key(clash)
    stored = await keys.get_key(record.key_id)
    assert stored == record and stored.matches(secret.split("_", 2)[2])
    assert await keys.get_key("0" * 12) is None


async def test_listing_is_oldest_first_with_revoked_keys(keys: KeyStore) -> None:
    """list_keys returns every key, revoked ones too, oldest first."""
    made = []
    for n in range(3):
        record, _ = issue(f"k{n}", Role.READER, T0 + timedelta(seconds=n))
        assert await keys.add_key(record)
        made.append(record)
    await keys.revoke_key(made[1].key_id, T0)
    listed = [k for k in await keys.list_keys() if k.key_id in {m.key_id for m in made}]
    assert [k.key_id for k in listed] == [m.key_id for m in made]
    assert [k.active for k in listed] == [True, False, True]


async def test_revocation_keeps_its_first_time(keys: KeyStore) -> None:
    """A key revoked twice keeps the first time; an unknown id gives None."""
    record, _ = _new()
    await keys.add_key(record)
    first = await keys.revoke_key(record.key_id, T0 + timedelta(minutes=1))
    second = await keys.revoke_key(record.key_id, T0 + timedelta(minutes=2))
    assert first is not None and first.revoked_at == T0 + timedelta(minutes=1)
    assert second == first and not second.active
    assert await keys.revoke_key("f" * 12, T0) is None


async def test_only_the_digest_is_stored(keys: KeyStore) -> None:
    """The table holds the key's id and digest; neither the key nor its secret is anywhere in
    the row."""
    record, key = _new()
    await keys.add_key(record)
    secret = key.split("_", 2)[2]
    row = await _raw_row(keys, record.key_id)
    assert record.secret_hash in row and record.key_id in row
    assert all(secret not in value and key not in value for value in row)


async def _raw_row(keys: KeyStore, key_id: str) -> list[str]:
    """Every column of the key's row, as text, read past the adapter."""
    if isinstance(keys, SqliteKeyStore):

        def read(conn: sqlite3.Connection) -> list[str]:
            row = conn.execute("SELECT * FROM api_keys WHERE key_id=?", (key_id,)).fetchone()
            return [str(v) for v in row]

        return await keys._store.run(read)
    assert isinstance(keys, CassandraKeyStore)
    cql = await keys.store.session()
    rows = await cql.query("SELECT * FROM api_keys WHERE key_id=%s", (key_id,))
    return [str(v) for v in rows[0]]
