"""The keyspace's schema: creating it, applying migrations/*.cql in order, and the data
migrations that go with a schema change (004: due positions, 012: works by date, 013: the
search terms, 014: the works counter, 015: failed refreshes, 016: the per-source counts).

Applied migrations are recorded in `schema_migrations`; every process checks, before its first
statement, that the keyspace has every migration this code needs (`check_migrated`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from services.adapters.cassandra import failed, issued, search_terms, summary
from services.adapters.cassandra.rows import SHARDS, us
from services.adapters.cassandra.session import CqlSession, SchemaMissing

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
DUE_POSITION_MIGRATION = 4  # 004_due_position.cql, then `copy_due_lookup`
LOOKUP_ALL = "SELECT source, work_id, at, attempt FROM due_lookup"
WORKS_COUNT_MIGRATION = 14  # 014_works_count.cql, then `count_works_backfill`


def migration_files(directory: Path = MIGRATIONS_DIR) -> list[tuple[int, str, list[str]]]:
    """Every `NNN_name.cql` in `directory` as (version, name, statements), oldest first."""
    out = []
    for path in sorted(directory.glob("*.cql")):
        number, _, name = path.stem.partition("_")
        lines = [ln for ln in path.read_text().splitlines() if not ln.strip().startswith("--")]
        statements = [s.strip() for s in "\n".join(lines).split(";") if s.strip()]
        out.append((int(number), name, statements))
    return out


async def check_migrated(cql: CqlSession) -> None:
    """SchemaMissing naming the migrations this code needs that the keyspace lacks."""
    rows = await cql.query("SELECT version FROM schema_migrations")
    missing = sorted({v for v, _, _ in migration_files()} - {r.version for r in rows})
    if missing:
        raise SchemaMissing(
            f"Cassandra keyspace {cql.keyspace!r} lacks migration(s) "
            f"{', '.join(f'{v:03d}' for v in missing)}: run `alm db migrate`"
        )


async def migrate(
    cql: CqlSession,
    replication: Mapping[str, Any] | None,
    clock: Callable[[], datetime],
    copy_due_lookup: Callable[[CqlSession], Any],
) -> None:
    """Create the keyspace if needed and apply the migrations not yet recorded (`replication`
    None: NetworkTopologyStrategy, up to 3 replicas in the local data centre).
    `copy_due_lookup` is migration 004's data step (the due index's)."""
    replication = replication or {
        "class": "NetworkTopologyStrategy",
        await _local_dc(cql): min(3, await _nodes(cql)),
    }
    await cql.query(
        f"CREATE KEYSPACE IF NOT EXISTS {cql.keyspace} WITH replication = "
        + json.dumps(replication).replace('"', "'"),
        keyspace=None,
    )
    await cql.schema_change(
        [
            "CREATE TABLE IF NOT EXISTS schema_migrations"
            " (version int PRIMARY KEY, name text, applied_at timestamp)"
        ]
    )
    done = {r.version for r in await cql.query("SELECT version FROM schema_migrations")}
    for version, name, statements in migration_files():
        if version in done:
            continue
        await cql.schema_change(statements)
        if version == DUE_POSITION_MIGRATION:
            await copy_due_lookup(cql)
        elif version == issued.MIGRATION:
            await issued.backfill(cql, lambda: us(clock()))
        elif version == search_terms.MIGRATION:
            await search_terms.backfill(cql)
        elif version == WORKS_COUNT_MIGRATION:
            await count_works_backfill(cql)
        elif version == failed.MIGRATION:
            await failed.backfill(cql)
        elif version == summary.MIGRATION:
            await summary.recount(cql)
        await cql.query(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES (%s, %s, %s)",
            (version, name, clock()),
        )


async def count_works_backfill(cql: CqlSession) -> None:
    """Migration 014's data step: count the works already registered (each work_index shard,
    server-side) into `works_count`, once, when the migration is applied. Registrations made
    while it runs may be counted twice: migrate before the services start (`alm db migrate`)."""
    for s in range(SHARDS):
        rows = await cql.query("SELECT count(*) FROM work_index WHERE shard=%s", (s,))
        if n := int(rows[0][0]):
            await cql.query("UPDATE works_count SET works = works + %s WHERE shard=%s", (n, s))


async def has_table(cql: CqlSession, table: str) -> bool:
    """Whether the keyspace has `table`."""
    tables = await cql.query(
        "SELECT table_name FROM system_schema.tables WHERE keyspace_name=%s",
        (cql.keyspace,),
        keyspace=None,
    )
    return table in {r.table_name for r in tables}


async def _local_dc(cql: CqlSession) -> str:
    rows = await cql.query("SELECT data_center FROM system.local", keyspace=None)
    return str(rows[0].data_center)


async def _nodes(cql: CqlSession) -> int:
    return 1 + len(await cql.query("SELECT peer FROM system.peers", keyspace=None))
