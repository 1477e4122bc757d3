"""SQLite adapter of the Store port for the embedded mode; tables mirror the Cassandra keyspace.

One connection lives on one worker thread, so the event loop never blocks on disk.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from services.core.aggregation import Aggregate, HistoryPoint, SourceState
from services.core.events import SourceEvent
from services.core.health import SourceStatus
from services.core.identifiers import Identifier, IdType
from services.core.ports import DueEntry, RawResponse, Registration, Schedule
from services.core.provenance import identified
from services.core.timeutil import from_iso, to_iso
from services.core.works import Work

T = TypeVar("T")

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
    # Publishers and their catalogue imports (services/adapters/sqlite_publishers.py).
    """
    CREATE TABLE IF NOT EXISTS publishers (
        member_id TEXT PRIMARY KEY, record TEXT NOT NULL, updated_at TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS catalogue_imports (
        scope TEXT PRIMARY KEY, member_id TEXT, state TEXT NOT NULL, updated_at TEXT NOT NULL);
    """,
    # Webhooks (services/adapters/sqlite_hooks.py): registrations, their delivery health, the
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
    # the periodic checks read (services/adapters/sqlite_checks.py).
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
    # API keys (services/adapters/sqlite_keys.py): the digest of each key, never the key.
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
)


class SqliteStore:
    """Works, metric state, history, events, raw responses and the due-index in one file."""

    def __init__(self, path: Path | str, raw_ttl: timedelta = timedelta(days=7)) -> None:
        self._path = str(path)
        self._raw_ttl = raw_ttl
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._conn: sqlite3.Connection | None = None

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run `fn` with the connection on the store's thread, in a transaction (adapters of
        other ports sharing this file: sqlite_hooks.py, sqlite_keys.py, sqlite_publishers.py)."""
        return await self._run(fn)

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call, fn)

    def _call(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        if self._conn is None:
            self._conn = sqlite3.connect(self._path)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
        with self._conn:
            return fn(self._conn)

    async def migrate(self) -> None:
        """Apply the migrations this file has not seen yet."""

        def apply(conn: sqlite3.Connection) -> None:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY)"
            )
            done = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
            for version, script in enumerate(MIGRATIONS, start=1):
                if version not in done:
                    conn.executescript(script)
                    conn.execute("INSERT INTO schema_migrations VALUES (?)", (version,))

        await self._run(apply)

    async def close(self) -> None:
        """Close the connection and its thread."""

        def shut() -> None:
            if self._conn is not None:
                self._conn.execute("PRAGMA optimize")
                self._conn.close()
                self._conn = None

        await asyncio.get_running_loop().run_in_executor(self._executor, shut)
        self._executor.shutdown(wait=True)

    # -- works ---------------------------------------------------------------------------

    async def register(
        self, works: Sequence[Work], schedule: Schedule | None = None
    ) -> list[Registration]:
        """Register works; one already known by any of its ids is merged, not duplicated. The
        works, their ids and (with `schedule`) the due entries they lack: one transaction."""
        now = to_iso(datetime.now(UTC))

        def write(conn: sqlite3.Connection) -> list[Registration]:
            out, final, claims = _merge_registrations(conn, works)
            conn.executemany(
                f"INSERT INTO works ({_WORK_COLS}, registered_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
                " ON CONFLICT(work_id) DO UPDATE SET"
                " doi=excluded.doi, pmid=excluded.pmid, pmcid=excluded.pmcid,"
                " title=excluded.title, issued=excluded.issued, publisher=excluded.publisher,"
                " canonical_url=excluded.canonical_url, work_type=excluded.work_type,"
                " publisher_id=excluded.publisher_id",
                [(*_work_row(w), now) for w in final.values()],
            )
            conn.executemany("INSERT OR IGNORE INTO work_ids VALUES (?,?,?)", claims)
            if schedule is not None:
                _add_missing_due(conn, _plan(final.values(), schedule))
            return out

        return await self._run(write)

    async def update_works(self, works: Sequence[Work]) -> None:
        """Store the metadata of known works whose identifiers are unchanged."""

        def write(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "UPDATE works SET doi=?, pmid=?, pmcid=?, title=?, issued=?, publisher=?,"
                " canonical_url=?, work_type=?, publisher_id=? WHERE work_id=?",
                [(*_work_row(w)[1:], w.work_id) for w in works],
            )

        await self._run(write)

    async def get_work(self, work_id: str) -> Work | None:
        """The work with this work id."""

        def read(conn: sqlite3.Connection) -> Work | None:
            row = conn.execute(
                f"SELECT {_WORK_COLS} FROM works WHERE work_id=?", (work_id,)
            ).fetchone()
            return _work(row) if row else None

        return await self._run(read)

    async def find_work(self, ident: Identifier) -> Work | None:
        """The work known by `ident` (any of its DOI, PMID, PMCID)."""
        return await self._run(lambda conn: _find_any(conn, [ident]))

    async def find_works(self, idents: Sequence[Identifier]) -> dict[Identifier, Work]:
        """The works known by `idents` (those found)."""
        # replaced by the batched read at merge (r13a/r13b): one find_work per identifier
        found = {i: await self.find_work(i) for i in dict.fromkeys(idents)}
        return {i: w for i, w in found.items() if w is not None}

    async def list_works(self, offset: int, limit: int) -> list[Work]:
        """A page of works in work-id order."""

        def read(conn: sqlite3.Connection) -> list[Work]:
            rows = conn.execute(
                f"SELECT {_WORK_COLS} FROM works ORDER BY work_id LIMIT ? OFFSET ?", (limit, offset)
            )
            return [_work(r) for r in rows]

        return await self._run(read)

    async def works_newest(self, offset: int, limit: int) -> list[Work]:
        """A page of works newest first, undated last, then by work id (`works_by_issued`)."""

        def read(conn: sqlite3.Connection) -> list[Work]:
            rows = conn.execute(
                f"SELECT {_WORK_COLS} FROM works ORDER BY issued DESC NULLS LAST, work_id"
                " LIMIT ? OFFSET ?",
                (limit, offset),
            )
            return [_work(r) for r in rows]

        return await self._run(read)

    async def works_after(self, after: str | None, limit: int) -> list[Work]:
        """Up to `limit` works with ids after `after` (from the first if None), in id order."""

        def read(conn: sqlite3.Connection) -> list[Work]:
            rows = conn.execute(
                f"SELECT {_WORK_COLS} FROM works WHERE work_id > ? ORDER BY work_id LIMIT ?",
                (after or "", limit),
            )
            return [_work(r) for r in rows]

        return await self._run(read)

    async def count_works(self) -> int:
        """How many works are registered."""
        return await self._run(
            lambda conn: int(conn.execute("SELECT count(*) FROM works").fetchone()[0])
        )

    # -- metrics -------------------------------------------------------------------------

    async def states(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], SourceState]:
        """The stored state of each (work id, source) that has one."""

        def read(conn: sqlite3.Connection) -> dict[tuple[str, str], SourceState]:
            out = {}
            for work_id, source in keys:
                row = conn.execute(
                    "SELECT state FROM source_totals WHERE work_id=? AND source=?",
                    (work_id, source),
                ).fetchone()
                if row:
                    out[(work_id, source)] = SourceState.from_dict(json.loads(row[0]))
            return out

        return await self._run(read)

    async def states_for(self, work_ids: Sequence[str]) -> dict[str, list[SourceState]]:
        """Every source's state for each of `work_ids`."""

        def read(conn: sqlite3.Connection) -> dict[str, list[SourceState]]:
            out: dict[str, list[SourceState]] = {w: [] for w in work_ids}
            for work_id in work_ids:
                for (raw,) in conn.execute(
                    "SELECT state FROM source_totals WHERE work_id=? ORDER BY source", (work_id,)
                ):
                    out[work_id].append(SourceState.from_dict(json.loads(raw)))
            return out

        return await self._run(read)

    async def write_aggregates(
        self, items: Sequence[Aggregate], due: Mapping[str, Sequence[DueEntry]] | None = None
    ) -> None:
        """Persist states, history points and events of applied aggregates, and the next due
        times in `due`, in one transaction."""

        def write(conn: sqlite3.Connection) -> None:
            for source, entries in (due or {}).items():
                _put_due(conn, source, entries)
            for item in items:
                if not item.applied:
                    continue
                st = item.state
                conn.execute(
                    "INSERT OR REPLACE INTO source_totals VALUES (?,?,?)",
                    (st.work_id, st.source, json.dumps(st.to_dict())),
                )
                if item.history is not None:
                    h = item.history
                    conn.execute(
                        "INSERT OR REPLACE INTO source_history VALUES (?,?,?,?)",
                        (h.work_id, h.source, h.day.isoformat(), json.dumps(h.metrics)),
                    )
                conn.executemany(
                    "INSERT OR REPLACE INTO source_events VALUES (?,?,?,?)",
                    [
                        (st.work_id, st.source, e.event_id, json.dumps(e.to_dict()))
                        for e in item.events
                    ],
                )

        await self._run(write)

    async def history(self, work_id: str, source: str | None) -> list[HistoryPoint]:
        """Daily snapshots of a work (one source or all), oldest first."""

        def read(conn: sqlite3.Connection) -> list[HistoryPoint]:
            sql = "SELECT work_id, source, day, metrics FROM source_history WHERE work_id=?"
            args: tuple[str, ...] = (work_id,)
            if source:
                sql += " AND source=?"
                args += (source,)
            rows = conn.execute(sql + " ORDER BY source, day", args)
            return [HistoryPoint(w, s, date.fromisoformat(d), json.loads(m)) for w, s, d, m in rows]

        return await self._run(read)

    async def events(self, work_id: str, source: str) -> list[SourceEvent]:
        """The deduplicated events of a work from one source."""

        def read(conn: sqlite3.Connection) -> list[SourceEvent]:
            rows = conn.execute(
                "SELECT event FROM source_events WHERE work_id=? AND source=? ORDER BY event_id",
                (work_id, source),
            )
            return [SourceEvent.from_dict(json.loads(r[0])) for r in rows]

        return await self._run(read)

    async def add_raw_responses(self, raws: Sequence[RawResponse]) -> None:
        """Keep upstream responses until the TTL passes; expired ones are dropped here."""
        now = datetime.now(UTC)

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "DELETE FROM raw_response_works WHERE raw_id IN"
                " (SELECT id FROM raw_responses WHERE expires_at < ?)",
                (_sortable(now),),
            )
            conn.execute("DELETE FROM raw_responses WHERE expires_at < ?", (_sortable(now),))
            for raw in map(identified, raws):
                expires = raw.retrieved_at + self._raw_ttl
                if expires < now:
                    continue  # already past the TTL (ALM_RAW_TTL_DAYS=0 keeps none)
                cur = conn.execute(
                    "INSERT INTO raw_responses (source, retrieved_at, url, status, body,"
                    " expires_at, raw_key, digest, method, redacted) VALUES (?,?,?,?,?,?,?,?,?,?)",
                    (
                        raw.source,
                        _sortable(raw.retrieved_at),
                        raw.url,
                        raw.status,
                        raw.body,
                        _sortable(expires),
                        raw.raw_id,
                        raw.digest,
                        raw.method,
                        int(raw.redacted),
                    ),
                )
                conn.executemany(
                    "INSERT OR IGNORE INTO raw_response_works VALUES (?,?,?)",
                    [(cur.lastrowid, w, raw.source) for w in raw.work_ids],
                )

        await self._run(write)

    async def raw_responses(self, source: str, work_id: str, limit: int) -> list[RawResponse]:
        """The latest kept responses of `source` concerning `work_id`, newest first."""

        def read(conn: sqlite3.Connection) -> list[RawResponse]:
            rows = conn.execute(
                f"SELECT {RAW_COLS} FROM raw_responses r"
                " JOIN raw_response_works w ON w.raw_id = r.id"
                " WHERE w.work_id=? AND w.source=? AND r.expires_at >= ?"
                " ORDER BY r.retrieved_at DESC LIMIT ?",
                (work_id, source, _sortable(datetime.now(UTC)), limit),
            ).fetchall()
            return [raw_response(conn, row) for row in rows]

        return await self._run(read)

    async def source_summary(self) -> dict[str, dict[str, int]]:
        """Per source: works with a state, works whose last attempt failed."""

        def read(conn: sqlite3.Connection) -> dict[str, dict[str, int]]:
            out: dict[str, dict[str, int]] = {}
            rows = conn.execute(
                "SELECT source, count(*), sum(json_extract(state, '$.status') = 'error')"
                " FROM source_totals GROUP BY source"
            )
            for source, works, errors in rows:
                out[source] = {"works": int(works), "errors": int(errors or 0)}
            return out

        return await self._run(read)

    async def top_works(self, source: str, metric: str, limit: int) -> list[tuple[str, int]]:
        """The works with the highest value of `metric` from `source`."""

        def read(conn: sqlite3.Connection) -> list[tuple[str, int]]:
            rows = conn.execute(
                "SELECT work_id, CAST(json_extract(state, '$.metrics.' || ?) AS INTEGER) AS v"
                " FROM source_totals WHERE source=? AND v IS NOT NULL"
                " ORDER BY v DESC, work_id LIMIT ?",
                (metric, source, limit),
            )
            return [(w, int(v)) for w, v in rows]

        return await self._run(read)

    # -- due-index -----------------------------------------------------------------------

    async def set_due(self, source: str, entries: Sequence[DueEntry]) -> None:
        """Set when each work is next due from `source` (replacing its previous entry)."""

        await self._run(lambda conn: _put_due(conn, source, entries))

    async def due(self, source: str, now: datetime, limit: int) -> list[DueEntry]:
        """Entries of `source` due at `now`, earliest first."""

        def read(conn: sqlite3.Connection) -> list[DueEntry]:
            rows = conn.execute(
                "SELECT work_id, due_at, attempt, leased FROM due WHERE source=? AND due_at<=?"
                " ORDER BY due_at LIMIT ?",
                (source, _sortable(now), limit),
            )
            return [DueEntry(w, from_iso(at), int(n), bool(leased)) for w, at, n, leased in rows]

        return await self._run(read)

    async def add_missing_due(self, due: Mapping[str, Sequence[DueEntry]]) -> int:
        """Set each entry only where its work has none from that source; how many were added."""
        return await self._run(lambda conn: _add_missing_due(conn, due))

    async def release_leases(self, now: datetime, within: timedelta) -> int:
        """Make every lease running out by `now + within` due at `now`; how many."""

        def write(conn: sqlite3.Connection) -> int:
            cur = conn.execute(
                "UPDATE due SET due_at=?, leased=0 WHERE leased=1 AND due_at<=?",
                (_sortable(now), _sortable(now + within)),
            )
            return cur.rowcount

        return await self._run(write)

    async def source_statuses(self) -> dict[str, SourceStatus]:
        """The status of every source that was ever paused or resumed."""

        def read(conn: sqlite3.Connection) -> dict[str, SourceStatus]:
            rows = conn.execute("SELECT source, paused, reason, since FROM source_status")
            return {
                s: SourceStatus(s, bool(p), r, from_iso(at) if at else None) for s, p, r, at in rows
            }

        return await self._run(read)

    async def set_source_status(self, status: SourceStatus) -> None:
        """Record that a source is paused (with its reason) or running again."""
        since = to_iso(status.since) if status.since else None

        def write(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR REPLACE INTO source_status VALUES (?,?,?,?)",
                (status.source, int(status.paused), status.reason, since),
            )

        await self._run(write)

    async def get_works(self, work_ids: Sequence[str]) -> dict[str, Work]:
        """The works among `work_ids` that exist."""

        def read(conn: sqlite3.Connection) -> dict[str, Work]:
            out = {}
            for work_id in work_ids:
                row = conn.execute(
                    f"SELECT {_WORK_COLS} FROM works WHERE work_id=?", (work_id,)
                ).fetchone()
                if row:
                    out[work_id] = _work(row)
            return out

        return await self._run(read)


RAW_COLS = (
    "r.id, r.source, r.retrieved_at, r.url, r.status, r.body, r.raw_key, r.digest, r.method,"
    " r.redacted"
)


def raw_response(conn: sqlite3.Connection, row: Sequence[Any]) -> RawResponse:
    """A kept call from a raw_responses row (RAW_COLS), with the works it concerns."""
    rowid, source, at, url, status, body, raw_key, digest, method, redacted = row
    works = conn.execute("SELECT work_id FROM raw_response_works WHERE raw_id=?", (rowid,))
    ids = tuple(r[0] for r in works)
    raw = RawResponse(source, from_iso(at), url, status, body, ids, raw_key or "", digest or "")
    return identified(replace(raw, method=method or "GET", redacted=bool(redacted)))


def _sortable(moment: datetime) -> str:
    """A fixed-width UTC timestamp, so text order is time order (ISO with optional fractions
    is not: '12:00:00Z' sorts after '12:00:00.25Z')."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


sortable = _sortable  # the format of every time column, for the adapters sharing the file

_WORK_COLS = (
    "work_id, doi, pmid, pmcid, title, issued, publisher, canonical_url, work_type, publisher_id"
)


def _work_row(work: Work) -> tuple[Any, ...]:
    return (
        work.work_id,
        work.doi,
        work.pmid,
        work.pmcid,
        work.title,
        work.issued.isoformat() if work.issued else None,
        work.publisher,
        work.canonical_url,
        work.type,
        work.publisher_id,
    )


def _work(row: Sequence[Any]) -> Work:
    return Work(
        work_id=row[0],
        doi=row[1],
        pmid=row[2],
        pmcid=row[3],
        title=row[4],
        issued=date.fromisoformat(row[5]) if row[5] else None,
        publisher=row[6],
        canonical_url=row[7],
        type=row[8],
        publisher_id=row[9],
    )


def _find_any(conn: sqlite3.Connection, idents: Sequence[Identifier]) -> Work | None:
    for ident in idents:
        row = conn.execute(
            f"SELECT {', '.join('w.' + c.strip() for c in _WORK_COLS.split(','))} FROM work_ids i"
            " JOIN works w ON w.work_id = i.work_id WHERE i.id_type=? AND i.value=?",
            (ident.type.value, ident.value),
        ).fetchone()
        if row:
            return _work(row)
    return None


def _put_due(conn: sqlite3.Connection, source: str, entries: Sequence[DueEntry]) -> None:
    conn.executemany(
        "INSERT OR REPLACE INTO due VALUES (?,?,?,?,?)",
        [(source, e.work_id, _sortable(e.at), e.attempt, int(e.leased)) for e in entries],
    )


def _add_missing_due(conn: sqlite3.Connection, due: Mapping[str, Sequence[DueEntry]]) -> int:
    before = conn.total_changes
    stamps: dict[datetime, str] = {}  # most entries of one write share their time
    for source, entries in due.items():
        conn.executemany(
            "INSERT OR IGNORE INTO due VALUES (?,?,?,?,?)",
            [
                (
                    source,
                    e.work_id,
                    stamps.get(e.at) or stamps.setdefault(e.at, _sortable(e.at)),
                    e.attempt,
                    int(e.leased),
                )
                for e in entries
            ],
        )
    return conn.total_changes - before


def _plan(works: Iterable[Work], schedule: Schedule) -> dict[str, list[DueEntry]]:
    out: dict[str, list[DueEntry]] = {}
    for work in works:
        for source, entry in schedule(work).items():
            out.setdefault(source, []).append(entry)
    return out


def _merge_registrations(
    conn: sqlite3.Connection, works: Sequence[Work]
) -> tuple[list[Registration], dict[str, Work], list[tuple[str, str, str]]]:
    """Each work merged into the one already known by any of its ids (in the file or earlier
    in `works`), in order; the final state of every work touched, by id; and the id rows to
    claim. The ids are looked up in bulk; the first work to claim an id keeps it."""
    owner = _owners(conn, {i for w in works for i in w.identifiers()})
    known = _works_by_id(conn, set(owner.values()))
    out: list[Registration] = []
    claims: list[tuple[str, str, str]] = []
    for work in works:
        existing_id = next((owner[i] for i in work.identifiers() if i in owner), None)
        existing = known.get(existing_id) if existing_id else None
        merged = existing.merged(work) if existing else work
        known[merged.work_id] = merged
        for ident in merged.identifiers():
            if ident not in owner:
                owner[ident] = merged.work_id
                claims.append((ident.type.value, ident.value, merged.work_id))
        out.append(Registration(merged, created=existing is None))
    final = {r.work.work_id: known[r.work.work_id] for r in out}
    return out, final, claims


def _owners(conn: sqlite3.Connection, idents: set[Identifier]) -> dict[Identifier, str]:
    """The work id each of `idents` is registered to, for those that are."""
    out: dict[Identifier, str] = {}
    by_type: dict[str, list[str]] = {}
    for ident in idents:
        by_type.setdefault(ident.type.value, []).append(ident.value)
    for id_type, values in by_type.items():
        for start in range(0, len(values), _IN_CHUNK):
            part = values[start : start + _IN_CHUNK]
            rows = conn.execute(
                "SELECT value, work_id FROM work_ids WHERE id_type=? AND value IN"
                f" ({','.join('?' * len(part))})",
                (id_type, *part),
            )
            out.update((Identifier(IdType(id_type), v), w) for v, w in rows)
    return out


def _works_by_id(conn: sqlite3.Connection, work_ids: set[str]) -> dict[str, Work]:
    ids = sorted(work_ids)
    out: dict[str, Work] = {}
    for start in range(0, len(ids), _IN_CHUNK):
        part = ids[start : start + _IN_CHUNK]
        rows = conn.execute(
            f"SELECT {_WORK_COLS} FROM works WHERE work_id IN ({','.join('?' * len(part))})",
            part,
        )
        out.update((r[0], _work(r)) for r in rows)
    return out


_IN_CHUNK = 500  # values bound in one IN (...) list (SQLite allows 32,766 variables)
