"""API keys in Cassandra and across API replicas.

The KeyStore contract (tests/contracts/keys.py) runs against Cassandra (this run's keyspace);
its SQLite run is tests/unit/test_keys_store_contract.py. Then the distributed mode as
deployed: two `alm api` processes over one Cassandra keyspace, a key made by `alm keys
create`, a bootstrap admin key from ALM_API_ADMIN_KEY that both replicas store once, a
revocation through one replica refused by the other within its key cache time.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from services.adapters.cassandra import CassandraStore
from services.adapters.cassandra.keys import CassandraKeyStore
from services.adapters.kafka import ensure_topics
from services.core.keys import KeyStore, Role, new_secret_key, split_key
from services.fetchers.registry import SOURCES
from tests.contracts.keys import *  # noqa: F403  (the contract's tests, run here)
from tests.contracts.keys import T0
from tests.integration.conftest import Infra
from tests.integration.stack import Stack, eventually, free_port, service_env

pytestmark = pytest.mark.integration


@pytest.fixture
async def keys(infra: Infra) -> AsyncIterator[KeyStore]:
    """CassandraKeyStore over this run's migrated keyspace."""
    store = CassandraStore([infra.cassandra_host], infra.cassandra_port, infra.keyspace)
    await store.migrate()
    yield CassandraKeyStore(store)
    await store.close()


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
