"""API keys in both stores and across API replicas.

The KeyStore contract runs against SQLite and Cassandra (this run's keyspace): same calls, same
answers, and only a digest of each key on disk. Then the distributed mode as deployed: two
`alm api` processes over one Cassandra keyspace, a key made by `alm keys create`, a bootstrap
admin key from ALM_API_ADMIN_KEY that both replicas store once, a revocation through one
replica refused by the other within its key cache time.
"""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from services.adapters.cassandra import CassandraStore
from services.adapters.cassandra.keys import CassandraKeyStore
from services.adapters.kafka_bus import ensure_topics
from services.adapters.sqlite_keys import SqliteKeyStore
from services.adapters.sqlite_store import SqliteStore
from services.core.keys import ApiKey, KeyStore, Role, issue, new_secret_key, split_key
from services.fetchers.registry import SOURCES
from tests.integration.conftest import Infra
from tests.integration.stack import Stack, eventually, free_port, service_env

T0 = datetime(2026, 11, 29, 12, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture(
    params=["sqlite", pytest.param("cassandra", marks=pytest.mark.integration)],
)
async def keys(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[KeyStore]:
    """Each KeyStore adapter in turn, over a migrated store."""
    if request.param == "sqlite":
        sqlite = SqliteStore(tmp_path / "alm.sqlite")
        await sqlite.migrate()
        yield SqliteKeyStore(sqlite)
        await sqlite.close()
    else:
        infra: Infra = request.getfixturevalue("infra")
        store = CassandraStore([infra.cassandra_host], infra.cassandra_port, infra.keyspace)
        await store.migrate()
        yield CassandraKeyStore(store)
        await store.close()


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
    cql = await keys._store.session()
    rows = await cql.query("SELECT * FROM api_keys WHERE key_id=%s", (key_id,))
    return [str(v) for v in rows[0]]


# -- two `alm api` replicas over Cassandra -------------------------------------------------


async def _status(http: aiohttp.ClientSession, url: str, key: str | None, **kw: object) -> int:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    method = "POST" if "json" in kw else "GET"
    async with http.request(method, url, headers=headers, **kw) as resp:  # type: ignore[arg-type]
        await resp.read()
        return resp.status


@pytest.mark.integration
@pytest.mark.timeout(300)
async def test_keys_across_two_api_replicas(infra: Infra, tmp_path: Path) -> None:
    """Both replicas store the bootstrap admin key once and accept it; a key made by `alm keys
    create` works on both; revoked through replica A it is refused by A at once and by B
    within ALM_API_KEY_CACHE_SECONDS (1 s here); a reader key is a 403 on writes."""
    prefix = f"{infra.prefix}keys{secrets.token_hex(2)}."
    await ensure_topics(infra.kafka, sorted(SOURCES), 1, prefix=prefix)
    boot = new_secret_key()
    env = service_env(
        infra,
        prefix,
        tmp_path / "data",
        ALM_API_ADMIN_KEY=boot,
        ALM_API_KEY_CACHE_SECONDS="1",
        ALM_SOURCES="crossref",
    )
    stack = Stack(env, tmp_path)
    ports = [free_port(), free_port()]
    try:
        await stack.run("db", "migrate")
        for n, port in enumerate(ports):
            stack.start(f"api-{n}", "api", "--port", str(port))
        a, b = (f"http://127.0.0.1:{p}" for p in ports)
        async with aiohttp.ClientSession() as http:

            async def ready() -> bool:
                try:
                    return all([await _status(http, f"{u}/readyz", None) == 200 for u in (a, b)])
                except aiohttp.ClientError:
                    return False

            await eventually(ready, 60, "both API replicas", stack)
            output = await stack.run("keys", "create", "--name", "site", "--role", "reader")
            reader = output.strip().splitlines()[-1]
            listing = await stack.run("keys", "list")
            # stored once, not twice (other tests of the session bootstrap keys of their own)
            boot_id = boot.split("_")[1]
            assert sum(line.startswith(boot_id) for line in listing.splitlines()) == 1, listing
            for url in (a, b):
                assert await _status(http, f"{url}/api/v1/works", reader) == 200
                works = f"{url}/api/v1/works"
                assert await _status(http, works, reader, json=["10.1234/x"]) == 403
                assert await _status(http, works, None, json=["10.1234/x"]) == 401
                assert await _status(http, works, boot, json=["10.1234/x"]) == 200
            key_id = (split_key(reader) or ("", ""))[0]
            revoke = f"{a}/api/v1/keys/{key_id}/revoke"
            assert await _status(http, revoke, boot, json=None) == 200
            revoked_at = time.monotonic()
            assert await _status(http, f"{a}/api/v1/works", reader) == 401

            async def refused_by_b() -> bool:
                return await _status(http, f"{b}/api/v1/works", reader) == 401

            await eventually(refused_by_b, 10, "replica B to refuse the revoked key", stack)
            assert time.monotonic() - revoked_at < 1 + 1.5  # the cache time, plus a poll
            listing = await stack.run("keys", "list")
            row = next(line for line in listing.splitlines() if line.startswith(key_id))
            assert row.split()[3] != "-"  # the REVOKED column
        stack.check_alive()
    finally:
        await stack.stop_all()


@pytest.mark.integration
async def test_replicas_storing_one_bootstrap_key_at_once_make_one_row(infra: Infra) -> None:
    """Eight concurrent `ensure_key`s of the same key through separate sessions: one row."""
    from services.keyring import ensure_key

    stores = [
        CassandraStore([infra.cassandra_host], infra.cassandra_port, infra.keyspace)
        for _ in range(4)
    ]
    try:
        await stores[0].migrate()
        key = new_secret_key()
        made = await asyncio.gather(
            *(ensure_key(CassandraKeyStore(s), key, "boot", Role.ADMIN, T0) for s in stores * 2)
        )
        assert len({m.key_id for m in made}) == 1
        listed = await CassandraKeyStore(stores[0]).list_keys()
        assert sum(k.key_id == made[0].key_id for k in listed) == 1
    finally:
        await asyncio.gather(*(s.close() for s in stores))
