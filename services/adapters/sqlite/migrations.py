"""The embedded store's schema: the SQLite migrations, applied in order, each once.

The tables mirror the Cassandra keyspace; every adapter sharing the file (works, metrics, due
index, raw responses, source control, keys, hooks, checks, publishers) reads and writes them.
"""

from __future__ import annotations

import sqlite3
from functools import cache

from services.adapters.sqlite import search_index

MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE works (
        work_id TEXT PRIMARY KEY, doi TEXT, pmid TEXT, pmcid TEXT, title TEXT, issued TEXT,
        publisher TEXT, canonical_url TEXT, registered_at TEXT NOT NULL);
    CREATE TABLE work_ids (
        id_type TEXT NOT NULL, value TEXT NOT NULL, work_id TEXT NOT NULL,
        PRIMARY KEY (id_type, value));
    CREATE TABLE source_totals (
        work_id TEXT NOT NULL, source TEXT NOT NULL, state TEXT NOT NULL,
        PRIMARY KEY (work_id, source));
    CREATE TABLE source_history (
        work_id TEXT NOT NULL, source TEXT NOT NULL, day TEXT NOT NULL, metrics TEXT NOT NULL,
        PRIMARY KEY (work_id, source, day));
    CREATE TABLE source_events (
        work_id TEXT NOT NULL, source TEXT NOT NULL, event_id TEXT NOT NULL, event TEXT NOT NULL,
        PRIMARY KEY (work_id, source, event_id));
    CREATE TABLE raw_responses (
        id INTEGER PRIMARY KEY, source TEXT NOT NULL, retrieved_at TEXT NOT NULL,
        url TEXT NOT NULL, status INTEGER NOT NULL, body TEXT NOT NULL, expires_at TEXT NOT NULL);
    CREATE TABLE raw_response_works (
        raw_id INTEGER NOT NULL, work_id TEXT NOT NULL, source TEXT NOT NULL,
        PRIMARY KEY (work_id, source, raw_id));
    CREATE INDEX raw_expiry ON raw_responses (expires_at);
    CREATE TABLE due (
        source TEXT NOT NULL, work_id TEXT NOT NULL, due_at TEXT NOT NULL, attempt INTEGER NOT NULL,
        PRIMARY KEY (source, work_id));
    CREATE INDEX due_by_time ON due (source, due_at);
    """,
    """
    CREATE TABLE source_status (
        source TEXT PRIMARY KEY, paused INTEGER NOT NULL, reason TEXT, since TEXT);
    """,
    # A lease (an entry the scheduler handed out, due again when it runs out) is marked, so a
    # restarted embedded process can tell the requests its dead bus held from scheduled times.
    """
    ALTER TABLE due ADD COLUMN leased INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX due_leased ON due (source, due_at) WHERE leased = 1;
    """,
    # A work's type and its publisher's Crossref member id (publisher imports); the index
    # pages a publisher's works in work-id order (GET /api/v1/works?publisher_id=).
    """
    ALTER TABLE works ADD COLUMN work_type TEXT;
    ALTER TABLE works ADD COLUMN publisher_id TEXT;
    CREATE INDEX IF NOT EXISTS works_by_publisher ON works (publisher_id, work_id)
        WHERE publisher_id IS NOT NULL;
    """,
    # Publishers and their catalogue imports (services/adapters/sqlite/publishers.py).
    """
    CREATE TABLE IF NOT EXISTS publishers (
        member_id TEXT PRIMARY KEY, record TEXT NOT NULL, updated_at TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS catalogue_imports (
        scope TEXT PRIMARY KEY, member_id TEXT, state TEXT NOT NULL, updated_at TEXT NOT NULL);
    """,
    # Webhooks (services/adapters/sqlite/hooks.py): registrations, their delivery health, the
    # last attempts of each (a bounded log) and what waits for a receiver that failed.
    """
    CREATE TABLE IF NOT EXISTS webhooks (
        hook_id TEXT PRIMARY KEY, url TEXT NOT NULL, secret TEXT NOT NULL, filter TEXT NOT NULL,
        description TEXT NOT NULL, created_at TEXT NOT NULL, enabled_at TEXT NOT NULL,
        enabled INTEGER NOT NULL, disabled_reason TEXT, disabled_at TEXT);
    CREATE TABLE IF NOT EXISTS webhook_health (
        hook_id TEXT PRIMARY KEY, consecutive_failures INTEGER NOT NULL, last_success_at TEXT,
        last_failure_at TEXT, last_error TEXT, queued INTEGER NOT NULL, retry_at TEXT);
    CREATE TABLE IF NOT EXISTS webhook_attempts (
        hook_id TEXT NOT NULL, seq INTEGER NOT NULL, event_id TEXT NOT NULL,
        attempt INTEGER NOT NULL, at TEXT NOT NULL, outcome TEXT NOT NULL, status INTEGER,
        error TEXT, duration_ms INTEGER NOT NULL, next_at TEXT, PRIMARY KEY (hook_id, seq));
    CREATE TABLE IF NOT EXISTS webhook_queue (
        hook_id TEXT NOT NULL, seq INTEGER NOT NULL, event_id TEXT NOT NULL, body TEXT NOT NULL,
        PRIMARY KEY (hook_id, seq));
    """,
    # Provenance (services/core/provenance.py): a kept call's stable id, the digest of its body
    # as received, its method, and whether a secret was masked in it; states refer to the id.
    """
    ALTER TABLE raw_responses ADD COLUMN raw_key TEXT;
    ALTER TABLE raw_responses ADD COLUMN digest TEXT;
    ALTER TABLE raw_responses ADD COLUMN method TEXT NOT NULL DEFAULT 'GET';
    ALTER TABLE raw_responses ADD COLUMN redacted INTEGER NOT NULL DEFAULT 0;
    CREATE INDEX raw_by_key ON raw_responses (raw_key);
    """,
    # Data-quality alerts, one per (day, kind, source, work), and the fetchers' hourly activity
    # the periodic checks read (services/adapters/sqlite/checks.py).
    """
    CREATE TABLE IF NOT EXISTS alerts (
        day TEXT NOT NULL, kind TEXT NOT NULL, source TEXT NOT NULL, work_id TEXT NOT NULL,
        at TEXT NOT NULL, message TEXT NOT NULL, details TEXT NOT NULL,
        PRIMARY KEY (day, kind, source, work_id));
    CREATE TABLE IF NOT EXISTS fetch_activity (
        hour TEXT NOT NULL, source TEXT NOT NULL, instance TEXT NOT NULL,
        calls INTEGER NOT NULL, unanswered INTEGER NOT NULL, latency TEXT NOT NULL,
        refreshes INTEGER NOT NULL, failed INTEGER NOT NULL, last_ok TEXT,
        PRIMARY KEY (hour, source, instance));
    """,
    # API keys (services/adapters/sqlite/keys.py): the digest of each key, never the key.
    """
    CREATE TABLE IF NOT EXISTS api_keys (
        key_id TEXT PRIMARY KEY, name TEXT NOT NULL, role TEXT NOT NULL,
        secret_hash TEXT NOT NULL, created_at TEXT NOT NULL, revoked_at TEXT,
        rate_per_minute INTEGER, email TEXT);
    """,
    # ALM v5's listing, newest first (`works_newest`): NULLs sort lowest in SQLite, so the
    # index read backwards yields dated works newest first, then the undated ones.
    """
    CREATE INDEX IF NOT EXISTS works_by_issued ON works (issued DESC, work_id);
    """,
    # Search (services/adapters/sqlite/search_index.py): an FTS5 index of the works' folded
    # title and publisher words; `search_index.backfill` then indexes the works already there.
    search_index.SCHEMA,
    # The leaderboards (`top_works`): each state's metrics as rows, kept with the state by
    # `write_aggregates`, read by an index in board order (a keyset page, no scan of the
    # source's states); filled here from the states already stored.
    """
    CREATE TABLE IF NOT EXISTS leaderboard (
        work_id TEXT NOT NULL, source TEXT NOT NULL, metric TEXT NOT NULL,
        value INTEGER NOT NULL, PRIMARY KEY (work_id, source, metric)) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS leaderboard_order
        ON leaderboard (source, metric, value DESC, work_id);
    INSERT OR REPLACE INTO leaderboard
        SELECT t.work_id, t.source, m.key, m.value
        FROM source_totals AS t, json_each(t.state, '$.metrics') AS m
        WHERE m.type = 'integer';
    """,
    # Failed refreshes (services/core/failed_refreshes.py): a row per (work, source) whose state
    # is an error, written with the states; the states that failed before it are listed too
    # (to_iso's '...SSZ' or '...SS.ffffffZ' as the fixed-width time of every time column).
    """
    CREATE TABLE IF NOT EXISTS failed_refreshes (
        source TEXT NOT NULL, work_id TEXT NOT NULL, failed_at TEXT NOT NULL,
        error TEXT NOT NULL, PRIMARY KEY (source, work_id));
    CREATE INDEX IF NOT EXISTS failed_by_time ON failed_refreshes (failed_at, work_id, source);
    CREATE INDEX IF NOT EXISTS failed_by_source_time
        ON failed_refreshes (source, failed_at, work_id);
    CREATE INDEX IF NOT EXISTS failed_by_work ON failed_refreshes (work_id, source);
    INSERT OR REPLACE INTO failed_refreshes
        SELECT source, work_id,
            CASE WHEN length(t) = 20 THEN substr(t, 1, 19) || '.000000Z' ELSE t END,
            coalesce(json_extract(state, '$.error'), '')
        FROM (SELECT source, work_id, state, json_extract(state, '$.last_attempt_at') AS t
              FROM source_totals WHERE json_extract(state, '$.status') = 'error')
        WHERE t IS NOT NULL;
    """,
    # The per-source status counts (services/adapters/sqlite/summary.py): a row per source,
    # moved by the aggregator's transitions with the states; filled from the states already
    # stored (what `alm db recount-summary` does again).
    """
    CREATE TABLE IF NOT EXISTS source_summary (
        source TEXT PRIMARY KEY, works INTEGER NOT NULL, errors INTEGER NOT NULL);
    INSERT OR REPLACE INTO source_summary
        SELECT source, count(*), coalesce(sum(json_extract(state, '$.status') = 'error'), 0)
        FROM source_totals GROUP BY source;
    """,
    # The scheduler's intake (services/adapters/sqlite/due.py): works registered in bulk wait
    # here, in the order they came, until the scheduler writes their due entries.
    """
    CREATE TABLE IF NOT EXISTS intake (seq INTEGER PRIMARY KEY, work_id TEXT NOT NULL);
    """,
)
SEARCH_MIGRATION = MIGRATIONS.index(search_index.SCHEMA) + 1  # then `search_index.backfill`


def apply_migrations(conn: sqlite3.Connection) -> None:
    """Apply the migrations this file has not seen yet, recording each: all of them in one
    transaction with their version rows (SQLite's DDL is transactional), so a crash leaves the
    file as it was or fully migrated, never a migration applied but unrecorded (which the next
    start would apply again: an ALTER TABLE twice fails). A new file (no table at all) gets
    the schema the migrations end with in one go (`final_schema`), not each step."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)")
    done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
    if not done and _only_the_version_table(conn):
        versions = range(1, len(MIGRATIONS) + 1)
        steps = [(v, list(final_schema()) if v == 1 else []) for v in versions]
        data = False  # a new file has no rows for a data step to change
    else:
        steps = [
            (version, statements(script))
            for version, script in enumerate(MIGRATIONS, start=1)
            if version not in done
        ]
        data = True
    if not steps:
        return
    if conn.in_transaction:
        conn.commit()  # what the caller wrote before (executescript did the same)
    conn.execute("BEGIN")
    try:
        for version, step in steps:
            for statement in step:
                conn.execute(statement)
            if data and version == SEARCH_MIGRATION:
                search_index.backfill(conn)
            conn.execute("INSERT INTO schema_migrations VALUES (?)", (version,))
        conn.commit()
    except BaseException:
        conn.rollback()
        raise


def statements(script: str) -> list[str]:
    """The statements of `script`, split where SQLite says a statement is complete (so a `;`
    in a string literal or a trigger's body does not split it)."""
    out, buffer = [], ""
    for part in script.split(";"):
        buffer += part + ";"
        if sqlite3.complete_statement(buffer):
            if buffer.strip(" \t\n;"):
                out.append(buffer.strip())
            buffer = ""
    return out


@cache
def final_schema() -> tuple[str, ...]:
    """The statements that make the schema every migration ends with: the tables, indexes and
    virtual tables of an in-memory database migrated step by step (without their shadow
    tables, which a virtual table makes itself), once per process. A new file costs a third
    of the steps (each ALTER TABLE rewrites the schema). Data steps (the search backfill) have
    nothing to do in a new file; tests/unit/test_sqlite_store.py checks that both ways give
    the same file."""
    memory = sqlite3.connect(":memory:")
    try:
        memory.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY)")
        memory.executescript(";\n".join(MIGRATIONS))
        rows = memory.execute(
            "SELECT name, sql FROM sqlite_master WHERE sql IS NOT NULL"
            " AND name NOT IN ('schema_migrations', 'sqlite_sequence') ORDER BY rowid"
        ).fetchall()
        virtual = [name for name, sql in rows if sql.upper().startswith("CREATE VIRTUAL TABLE")]
        return tuple(
            sql for name, sql in rows if not any(name.startswith(f"{v}_") for v in virtual)
        )
    finally:
        memory.close()


def _only_the_version_table(conn: sqlite3.Connection) -> bool:
    names = {name for (name,) in conn.execute("SELECT name FROM sqlite_master")}
    return names <= {"schema_migrations"}
