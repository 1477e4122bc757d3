"""The store a bench measures (`--store sqlite|cassandra`), shared by the benches that run as
scripts from this folder (it is first on their `sys.path`)."""

from __future__ import annotations

import secrets
from pathlib import Path

from services.core.ports import Store
from services.settings import Settings


async def bench_store(kind: str, tmp: Path, settings: Settings) -> Store:
    """A new SQLite file in `tmp`, or a Cassandra keyspace of the bench's own (the caller
    migrates it, and drops a Cassandra one at the end)."""
    if kind == "sqlite":
        from services.adapters.sqlite import SqliteStore

        return SqliteStore(tmp / "alm.sqlite")
    from services.adapters.cassandra import CassandraConnection, CassandraStore

    return CassandraStore(
        settings.cassandra_hosts,
        settings.cassandra_port,
        f"alm_bench_{secrets.token_hex(3)}",
        connection=CassandraConnection.from_env(settings.cassandra_env),
    )
