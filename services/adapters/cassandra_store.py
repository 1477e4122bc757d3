"""Cassandra adapter of the Store port for the distributed mode; SqliteStore's twin.

Tables (services/adapters/cassandra_migrations/*.cql, applied by `migrate()` and recorded in
`schema_migrations`) follow DESIGN.md. How each SqliteStore behaviour is kept:

- Registration: an identifier is claimed with `INSERT ... IF NOT EXISTS` (LWT), so two
  processes registering the same DOI concurrently make one work, and the first mapping of a
  PMID/PMCID wins (SQLite's INSERT OR IGNORE).
- Registration with a schedule: the works' missing due entries go through the due-index's
  batched write (`_write_rounds`, only where a work has no position) before `register`
  returns; a work the call created is known to have none, so only known works' positions are
  read. A crash in between leaves a known work without an entry, which registering it again
  or the scheduler's reconcile (`works_after` pages) repairs.
- Works in work-id order: `work_index` spreads ids over 16 clustered shards; a page merges
  them (`works_after`: each shard read after the id, merged). `count_works` and
  `source_summary` read every row (O(works), for status pages). Works by date, newest first
  (ALM v5's listing): `works_by_issued`, written with the works rows (cassandra_issued.py).
- Aggregates: history points, events and leaderboard rows are written first and the state row
  last, so a crash in between is repaired by the redelivered observation (the state, which
  decides whether an observation is new, is only stored once everything else is).
- Raw responses: rows carry a TTL of `raw_ttl` counted from `retrieved_at`; a storage-attached
  index on the set of works each response concerns finds them by work (one row per call).
- Due-index: `due` partitions are (source, hour); `due_buckets` lists the hours that may hold
  entries, and each (work, source)'s current entry, its position, is kept in its
  `source_totals` row (`due_at`, `due_attempt`; ALM's retrieval status had `scheduled_at`), so
  `set_due` deletes the previous row and `due` reads only the hours up to now: O(due). A row
  left behind by a crash or a race does not match the position and is removed when scanned
  (once it is older than SETTLE_US: a row just written waits for its position).
  Within an hour a scan starts where the previous one handed out its last entry
  (SCAN_MARGIN_US), so the tombstones of entries already leased are not read on every tick;
  it moves there only once those entries are leased (a tick whose publish failed leaves them
  due, and the next scan must read them again however long the bus stays down).
  The position costs the aggregator no read and no row of its own: `states` and `due` remember
  the positions they read (`_positions`, taken back by the next write of that key; a stale one
  only leaves a row that the scan removes), and `write_aggregates(items, due)` writes it in
  the state row. A `source_totals` row that only holds a position (a work not yet refreshed
  from that source) is no state: reads skip rows without a status.
  A lease (the scheduler's) is marked in its due row (`leased`, migration 005), so
  `release_leases` reads only the hours the leases run out in.

Consistency: LOCAL_QUORUM reads and writes, LOCAL_SERIAL for LWT (see cassandra_async).
Upserts only, no counter columns; every write can be retried.

Batching: the driver's per-request CPU is what limits a Python writer, so the aggregator's
reads are `IN` queries over up to 50 partitions of one replica set, and its writes go as
UNLOGGED batches grouped by replica set (`CqlSession.batches`: at most 10 partitions and about
3 KiB each, under Cassandra's warning thresholds). History, events and leaderboard rows go in
one round, the state rows in the next, so the state is still stored last.

No null writes: binding None writes a tombstone cell. Columns that never go back to unset
(timestamps, work metadata, which merges only fill) are left UNSET when None; `error` and
`events_url`, which do get cleared, are stored as '' for "none".
"""

from __future__ import annotations

import json
import re
import time
import uuid
import zlib
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple

from cassandra.query import UNSET_VALUE

from services.adapters import cassandra_issued
from services.adapters.cassandra_async import (
    Call,
    CqlSession,
    Row,
    SchemaMissing,
    bounded,
    migration_files,
)
from services.core.aggregation import Aggregate, HistoryPoint, SourceState
from services.core.events import PeriodCount, SourceEvent, Status
from services.core.health import SourceStatus
from services.core.identifiers import Identifier
from services.core.ports import DueEntry, RawResponse, Registration, Schedule
from services.core.provenance import CallRef, identified
from services.core.works import Work
from services.settings import CassandraConnection

SHARDS = 16
DUE_POSITION_MIGRATION = 4  # 004_due_position.cql, then `_copy_due_lookup`
HOUR_US = 3_600_000_000
# Due scans start where the previous scan of the hour left off, not at the hour's start: the
# entries handed out before were deleted (leased), and reading past their tombstones on every
# tick would grow with the hour's traffic (Cassandra fails a read at 100,000 tombstones). An entry
# written behind that point (an overdue time, a skewed clock) is still found: the scan keeps
# SCAN_MARGIN_US behind the present, and reads the whole hour again every FULL_SCAN_SECONDS.
SCAN_MARGIN_US = 60_000_000
FULL_SCAN_SECONDS = 600.0
RAW_COLS = "retrieved_at, raw_id, url, status, body, work_ids, digest, method, redacted"
# A due row whose work's position is elsewhere is stale (left by a crash or a race) and deleted
# when scanned, unless it was written less than SETTLE_US ago: set_due writes the row first and
# the position next, and a scan in between must not take the new row for a stale one (that lost
# the entry for good: the position then pointed at a row that no longer existed).
SETTLE_US = 60_000_000

_WORK_COLS = (
    "work_id, doi, pmid, pmcid, title, issued, publisher, canonical_url, work_type, publisher_id"
)

STATEMENTS: dict[str, str] = {
    "work_get": f"SELECT {_WORK_COLS} FROM works WHERE work_id=?",
    "works_in": f"SELECT {_WORK_COLS} FROM works WHERE work_id IN ?",
    "work_insert": f"INSERT INTO works ({_WORK_COLS}, registered_at)"
    " VALUES (?,?,?,?,?,?,?,?,?,?,?)",
    "work_update": "UPDATE works SET doi=?, pmid=?, pmcid=?, title=?, issued=?, publisher=?,"
    " canonical_url=?, work_type=?, publisher_id=? WHERE work_id=?",
    "index_insert": "INSERT INTO work_index (shard, work_id) VALUES (?,?)",
    "index_page": "SELECT work_id FROM work_index WHERE shard=? LIMIT ?",
    "index_after": "SELECT work_id FROM work_index WHERE shard=? AND work_id>? LIMIT ?",
    "index_count": "SELECT count(*) FROM work_index WHERE shard=?",
    "id_get": "SELECT work_id FROM work_ids WHERE id_type=? AND value=?",
    "id_claim": "INSERT INTO work_ids (id_type, value, work_id) VALUES (?,?,?) IF NOT EXISTS",
    "state_get": "SELECT * FROM source_totals WHERE work_id=? AND source=?",
    "states_of": "SELECT * FROM source_totals WHERE work_id=?",
    "states_in": "SELECT * FROM source_totals WHERE work_id IN ?",
    "state_put": "INSERT INTO source_totals (work_id, source, metrics, retrieved_at,"
    " last_attempt_at, status, error, events_url, periods, due_at, due_attempt, calls)"
    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
    "state_all": "SELECT source, status FROM source_totals",
    "history_put": "INSERT INTO source_history (work_id, source, day, metrics) VALUES (?,?,?,?)",
    "history_get": "SELECT day, metrics FROM source_history WHERE work_id=? AND source=?",
    "event_put": "INSERT INTO source_events (work_id, source, event_id, event) VALUES (?,?,?,?)",
    "events_get": "SELECT event FROM source_events WHERE work_id=? AND source=?",
    "board_put": "INSERT INTO leaderboard (source, metric, shard, value, work_id)"
    " VALUES (?,?,?,?,?)",
    "board_del": "DELETE FROM leaderboard WHERE source=? AND metric=? AND shard=? AND value=?"
    " AND work_id=?",
    "board_top": "SELECT value, work_id FROM leaderboard WHERE source=? AND metric=? AND shard=?"
    " LIMIT ?",
    "raw_put": "INSERT INTO raw_responses (source, day, retrieved_at, raw_id, url, status, body,"
    " work_ids, works, digest, method, redacted) VALUES (?,?,?,?,?,?,?,?,?,?,?,?) USING TTL ?",
    "raw_of_work": f"SELECT {RAW_COLS} FROM raw_responses"
    " WHERE source=? AND day=? AND works CONTAINS ? LIMIT ?",
    "due_put": "INSERT INTO due (source, bucket, at, work_id, attempt, leased)"
    " VALUES (?,?,?,?,?,?)",
    "due_del": "DELETE FROM due WHERE source=? AND bucket=? AND at=? AND work_id=?",
    "due_scan": "SELECT at, work_id, attempt, leased, WRITETIME(attempt) AS written FROM due"
    " WHERE source=? AND bucket=? AND at>=? AND at<=?",
    "due_sources": "SELECT DISTINCT source FROM due_buckets",
    "bucket_put": "INSERT INTO due_buckets (source, bucket) VALUES (?,?)",
    "bucket_list": "SELECT bucket FROM due_buckets WHERE source=? AND bucket<=?",
    "bucket_del": "DELETE FROM due_buckets USING TIMESTAMP ? WHERE source=? AND bucket=?",
    "status_all": "SELECT source, paused, reason, since FROM source_status",
    "status_put": "INSERT INTO source_status (source, paused, reason, since) VALUES (?,?,?,?)",
    "position_get": "SELECT work_id, due_at, due_attempt FROM source_totals"
    " WHERE source=? AND work_id=?",
    "positions_in": "SELECT work_id, due_at, due_attempt FROM source_totals"
    " WHERE source=? AND work_id IN ?",
    "position_put": "UPDATE source_totals SET due_at=?, due_attempt=? WHERE work_id=? AND source=?",
}


def _us(moment: datetime) -> int:
    """Microseconds since the epoch (exact: aggregation compares these)."""
    delta = moment.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _dt(us: int | None) -> datetime | None:
    if us is None:
        return None
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


def _dt_required(us: int) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)


def _shard(work_id: str) -> int:
    return zlib.crc32(work_id.encode()) % SHARDS


def _day(value: Any) -> date:
    """A CQL `date` as the driver returns it (cassandra.util.Date) or a Python date."""
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _work(row: Row) -> Work:
    return Work(
        work_id=row.work_id,
        doi=row.doi,
        pmid=row.pmid,
        pmcid=row.pmcid,
        title=row.title,
        issued=_day(row.issued) if row.issued is not None else None,
        publisher=row.publisher,
        canonical_url=row.canonical_url,
        type=row.work_type,
        publisher_id=row.publisher_id,
    )


def _work_values(work: Work) -> list[Any]:
    meta = (
        work.title,
        work.issued,
        work.publisher,
        work.canonical_url,
        work.type,
        work.publisher_id,
    )
    return [_unset(v) for v in (work.doi, work.pmid, work.pmcid, *meta)]


def _unset(value: Any) -> Any:
    """None as UNSET: the column is left as it is instead of getting a tombstone."""
    return UNSET_VALUE if value is None else value


def _state(row: Row) -> SourceState:
    return SourceState(
        work_id=row.work_id,
        source=row.source,
        metrics={k: int(v) for k, v in (row.metrics or {}).items()},
        retrieved_at=_dt(row.retrieved_at),
        last_attempt_at=_dt(row.last_attempt_at),
        status=Status(row.status) if row.status else None,
        error=row.error or None,
        events_url=row.events_url or None,
        periods=tuple(PeriodCount(m, p, int(c)) for m, p, c in row.periods or ()),
        calls=tuple(
            CallRef(raw_id, _dt_required(at), int(status), digest, method)
            for raw_id, at, status, digest, method in row.calls or ()
        ),
    )


def raw_response(source: str, row: Row) -> RawResponse:
    """A kept call from a raw_responses row (RAW_COLS)."""
    raw = RawResponse(
        source,
        _dt_required(row.retrieved_at),
        row.url,
        row.status,
        row.body,
        tuple(row.work_ids),
        str(row.raw_id),
        row.digest or "",
        row.method or "GET",
        bool(row.redacted),
    )
    return identified(raw)


def _state_values(st: SourceState, due: DueEntry | None = None) -> list[Any]:
    return [
        st.work_id,
        st.source,
        dict(st.metrics),
        _us(st.retrieved_at) if st.retrieved_at else UNSET_VALUE,
        _us(st.last_attempt_at) if st.last_attempt_at else UNSET_VALUE,
        st.status.value if st.status else UNSET_VALUE,
        st.error or "",
        st.events_url or "",
        [(p.metric, p.period, p.count) for p in st.periods],
        _us(due.at) if due else UNSET_VALUE,
        due.attempt if due else UNSET_VALUE,
        [(c.raw_id, _us(c.retrieved_at), c.status, c.digest, c.method) for c in st.calls],
    ]


class CassandraStore:
    """Works, metric state, history, events, raw responses and the due-index in Cassandra."""

    def __init__(
        self,
        hosts: Sequence[str],
        port: int,
        keyspace: str,
        raw_ttl: timedelta = timedelta(days=7),
        replication: Mapping[str, Any] | None = None,
        connection: CassandraConnection | None = None,
        request_timeout: float = 20.0,
    ) -> None:
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,47}", keyspace):
            raise ValueError(f"invalid Cassandra keyspace name {keyspace!r} (letters, digits, _)")
        self.keyspace = keyspace.lower()
        self._raw_ttl = raw_ttl
        self._replication = replication
        self._cql = CqlSession(
            hosts, port, self.keyspace, request_timeout=request_timeout, connection=connection
        )
        self._prepared = False  # STATEMENTS prepared (after checking the schema is migrated)
        self._issued = cassandra_issued.IssuedIndex()  # works by date (v5's listing)
        self._markers: set[tuple[str, int]] = set()  # due_buckets rows this process wrote
        # (work, source) -> (due_at, attempt) or None (no entry): positions read by `states` and
        # `due`, taken back by the next write of that key (see the module's docstring)
        self._positions: dict[tuple[str, str], tuple[int, int] | None] = {}
        # (source, hour) -> (where the next due scan starts, when the hour was last read whole)
        self._scan_from: dict[tuple[str, int], tuple[int, float]] = {}
        # where the scans of the last `due` would move to, once what they handed out is leased
        self._scan_next: dict[tuple[str, int], tuple[int, float]] = {}

    async def session(self) -> CqlSession:
        """The session, once the keyspace is checked and migrated (for the adapters of other
        ports sharing it: services/adapters/cassandra_*.py prepare their own statements)."""
        return await self._ready()

    async def _ready(self) -> CqlSession:
        if not self._prepared:
            await self._cql.check_keyspace()
            await self._check_migrated()
            await self._cql.prepare({**STATEMENTS, **cassandra_issued.STATEMENTS})
            self._prepared = True
        return self._cql

    async def _check_migrated(self) -> None:
        """SchemaMissing naming the migrations this code needs that the keyspace lacks."""
        rows = await self._cql.query("SELECT version FROM schema_migrations")
        missing = sorted({v for v, _, _ in migration_files()} - {r.version for r in rows})
        if missing:
            raise SchemaMissing(
                f"Cassandra keyspace {self.keyspace!r} lacks migration(s) "
                f"{', '.join(f'{v:03d}' for v in missing)}: run `alm db migrate`"
            )

    async def migrate(self) -> None:
        """Create the keyspace if needed and apply the migrations not yet recorded."""
        cql = self._cql
        replication = self._replication or {
            "class": "NetworkTopologyStrategy",
            await self._local_dc(): min(3, await self._nodes()),
        }
        await cql.query(
            f"CREATE KEYSPACE IF NOT EXISTS {self.keyspace} WITH replication = "
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
                await self._copy_due_lookup(cql)
            elif version == cassandra_issued.MIGRATION:
                await cassandra_issued.backfill(cql)
            await cql.query(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (%s, %s, %s)",
                (version, name, datetime.now(UTC)),
            )
        await self._ready()

    async def _local_dc(self) -> str:
        rows = await self._cql.query("SELECT data_center FROM system.local", keyspace=None)
        return str(rows[0].data_center)

    async def _nodes(self) -> int:
        return 1 + len(await self._cql.query("SELECT peer FROM system.peers", keyspace=None))

    async def close(self) -> None:
        """Shut the driver down."""
        await self._cql.close()

    # -- works ---------------------------------------------------------------------------

    async def register(
        self, works: Sequence[Work], schedule: Schedule | None = None
    ) -> list[Registration]:
        """Register works; one already known by any of its ids is merged, not duplicated. With
        `schedule`, the due entries the registered works lack are written (batched, through
        the due-index's write path) before this returns."""
        cql = await self._ready()
        by_id: dict[str, list[int]] = {}
        for index, work in enumerate(works):
            by_id.setdefault(work.work_id, []).append(index)
        out: list[Registration | None] = [None] * len(works)

        async def chain(indexes: list[int]) -> None:
            for i in indexes:  # the same work twice in one call: in order, like SQLite
                out[i] = await self._register_one(cql, works[i])

        await _gather([chain(ix) for ix in by_id.values()], 64)
        done = [r for r in out if r is not None]
        if schedule is not None:
            await self._schedule_registered(cql, done, schedule)
        return done

    async def _schedule_registered(
        self, cql: CqlSession, done: Sequence[Registration], schedule: Schedule
    ) -> None:
        """The due entries the registered works lack. A work this call created has no entry
        yet (it won its identifier's claim), so only known works' positions are read."""
        final = {r.work.work_id: r.work for r in done}  # the last merge of each work
        created = {r.work.work_id for r in done if r.created}
        plan: dict[str, list[DueEntry]] = {}
        absent: dict[tuple[str, str], tuple[int, int] | None] = {}
        for work in final.values():
            for source, entry in schedule(work).items():
                plan.setdefault(source, []).append(entry)
                if work.work_id in created:
                    absent[(work.work_id, source)] = None
        self._remember(absent)
        await self._write_rounds(cql, [], {}, plan, only_missing=True)

    async def _register_one(self, cql: CqlSession, work: Work) -> Registration:
        idents = work.identifiers()
        mapped = await cql.run_many(("id_get", (i.type.value, i.value)) for i in idents)
        existing_id = next((rows[0].work_id for rows in mapped if rows), None)
        if existing_id is None:
            primary = idents[0] if idents else None
            if primary is None:
                claimed = True
            else:
                result = await cql.run(
                    "id_claim", (primary.type.value, primary.value, work.work_id)
                )
                claimed = bool(result[0][0])
                existing_id = None if claimed else result[0].work_id
            if claimed:
                by_date = self._issued.puts([work])
                await cql.run_many(
                    [
                        ("work_insert", [work.work_id, *_work_values(work), datetime.now(UTC)]),
                        ("index_insert", (_shard(work.work_id), work.work_id)),
                        *by_date,
                    ]
                )
                self._issued.written(by_date)
                await self._claim_ids(cql, work, skip={primary} if primary else set())
                return Registration(work, created=True)
        assert existing_id is not None
        rows = await cql.run("work_get", (existing_id,))
        existing = _work(rows[0]) if rows else Work(work_id=existing_id)
        merged = existing.merged(work)
        if merged != existing or not rows:
            await cql.run("work_update", [*_work_values(merged), merged.work_id])
            await self._move_by_date(cql, {existing_id: existing.issued} if rows else {}, [merged])
        known = {i for i, rows in zip(idents, mapped, strict=True) if rows}
        await self._claim_ids(cql, merged, skip=known)
        return Registration(merged, created=False)

    async def _claim_ids(self, cql: CqlSession, work: Work, skip: set[Identifier]) -> None:
        await cql.run_many(
            ("id_claim", (i.type.value, i.value, work.work_id))
            for i in work.identifiers()
            if i not in skip
        )

    async def get_work(self, work_id: str) -> Work | None:
        """The work with this work id."""
        rows = await (await self._ready()).run("work_get", (work_id,))
        return _work(rows[0]) if rows else None

    async def get_works(self, work_ids: Sequence[str]) -> dict[str, Work]:
        """The works among `work_ids` that exist."""
        rows = await self._read_in(await self._ready(), "work_get", "works_in", work_ids)
        return {r.work_id: _work(r) for r in rows}

    async def update_works(self, works: Sequence[Work]) -> None:
        """Store the metadata of known works whose identifiers are unchanged (no claims)."""
        cql = await self._ready()
        before = await self.get_works([w.work_id for w in works])
        await cql.run_many(
            cql.batches(("work_update", [*_work_values(w), w.work_id]) for w in works)
        )
        stored = {  # as the rows now are: an update's None leaves a column unset
            w.work_id: replace(w, issued=w.issued or before[w.work_id].issued)
            for w in works
            if w.work_id in before
        }
        dates = {w: before[w].issued for w in stored}
        await self._move_by_date(cql, dates, stored.values())

    async def _move_by_date(
        self, cql: CqlSession, before: Mapping[str, date | None], works: Iterable[Work]
    ) -> None:
        """After the works rows: move the date-order rows of works whose date changed from
        `before` (a work not in `before` gets its row)."""
        works = list(works)
        calls = self._issued.moves(before, [w for w in works if w.work_id in before])
        calls += self._issued.puts(w for w in works if w.work_id not in before)
        await cql.run_many(cql.batches(calls))
        self._issued.written(calls)

    async def _read_in(
        self, cql: CqlSession, single: str, many: str, work_ids: Sequence[str], *prefix: Any
    ) -> list[Row]:
        """Rows of `many` (`... WHERE [prefix AND] work_id IN ?`) for `work_ids`, one read per
        replica set and 50 partitions; `single` is the one-partition form, for routing."""
        ids = list(dict.fromkeys(work_ids))
        keys = [(*prefix, w) for w in ids]
        reads = [
            cql.bound_in(many, (*prefix, [ids[i] for i in group]), (single, keys[group[0]]))
            for group in cql.read_groups(single, keys)
        ]
        return [row for rows in await cql.run_many(reads) for row in rows]

    async def find_work(self, ident: Identifier) -> Work | None:
        """The work known by `ident` (any of its DOI, PMID, PMCID)."""
        rows = await (await self._ready()).run("id_get", (ident.type.value, ident.value))
        return await self.get_work(rows[0].work_id) if rows else None

    async def find_works(self, idents: Sequence[Identifier]) -> dict[Identifier, Work]:
        """The works known by `idents` (those found)."""
        # replaced by the batched read at merge (r13a/r13b): one find_work per identifier
        found = {i: await self.find_work(i) for i in dict.fromkeys(idents)}
        return {i: w for i, w in found.items() if w is not None}

    async def list_works(self, offset: int, limit: int) -> list[Work]:
        """A page of works in work-id order (merged from the index shards)."""
        cql = await self._ready()
        pages = await cql.run_many(("index_page", (s, offset + limit)) for s in range(SHARDS))
        ids = sorted(r.work_id for rows in pages for r in rows)[offset : offset + limit]
        found = await self.get_works(ids)
        return [found[w] for w in ids if w in found]

    async def works_newest(self, offset: int, limit: int) -> list[Work]:
        """A page of works newest first, undated last, then by work id (works_by_issued)."""
        return await self._issued.page(await self._ready(), self.get_works, offset, limit)

    async def works_after(self, after: str | None, limit: int) -> list[Work]:
        """Up to `limit` works with ids after `after`, in id order (the index shards merged)."""
        cql = await self._ready()
        pages = await cql.run_many(("index_after", (s, after or "", limit)) for s in range(SHARDS))
        ids = sorted(r.work_id for rows in pages for r in rows)[:limit]
        found = await self.get_works(ids)
        return [found[w] for w in ids if w in found]

    async def count_works(self) -> int:
        """How many works are registered."""
        cql = await self._ready()
        counts = await cql.run_many(("index_count", (s,)) for s in range(SHARDS))
        return sum(int(rows[0][0]) for rows in counts)

    # -- metrics -------------------------------------------------------------------------

    async def states(self, keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], SourceState]:
        """The stored state of each (work id, source) that has one."""
        wanted = set(keys)
        rows = await self._read_in(
            await self._ready(), "states_of", "states_in", [w for w, _ in keys]
        )
        found = {(r.work_id, r.source): r for r in rows if (r.work_id, r.source) in wanted}
        self._remember({k: _position(found.get(k)) for k in wanted})
        return {k: _state(r) for k, r in found.items() if r.status}

    async def states_for(self, work_ids: Sequence[str]) -> dict[str, list[SourceState]]:
        """Every source's state for each of `work_ids`."""
        out: dict[str, list[SourceState]] = {w: [] for w in work_ids}
        for row in await self._read_in(await self._ready(), "states_of", "states_in", work_ids):
            if row.status:  # not a row holding only a due position
                out[row.work_id].append(_state(row))
        return out

    async def write_aggregates(
        self, items: Sequence[Aggregate], due: Mapping[str, Sequence[DueEntry]] | None = None
    ) -> None:
        """Persist applied aggregates: history, events, leaderboard and new due rows first,
        then the states (with their due positions), then the replaced due rows' deletion."""
        cql = await self._ready()
        applied = [item for item in items if item.applied]
        first: dict[tuple[Any, ...], Call] = {}  # by primary key: the last write of a row wins
        for item in applied:
            st = item.state
            if item.history is not None:
                h = item.history
                history = (h.work_id, h.source, h.day, dict(h.metrics))
                first[("h", h.work_id, h.source, h.day)] = ("history_put", history)
            for e in item.events:
                event = (st.work_id, st.source, e.event_id, json.dumps(e.to_dict()))
                first[("e", st.work_id, st.source, e.event_id)] = ("event_put", event)
        final = {(i.state.work_id, i.state.source): i.state for i in applied}
        await self._write_rounds(
            cql, [*first.values(), *_leaderboard_writes(applied)], final, due or {}
        )

    async def _write_rounds(
        self,
        cql: CqlSession,
        first: list[Call],
        states: Mapping[tuple[str, str], SourceState],
        due: Mapping[str, Sequence[DueEntry]],
        only_missing: bool = False,
    ) -> int:
        """Three rounds, each waiting for the one before: `first` with the new due rows (and
        their hours' markers); then the states, each with its new due position (a position
        alone where there is no state); then the replaced due rows' deletion. A crash in
        between leaves at worst a due row that does not match its position, which `due`
        removes, and a state not yet stored, which the redelivered observation repairs.
        With `only_missing`, entries are written only for works without a position. Returns
        how many due entries were written."""
        moves = await self._due_moves(cql, due, only_missing)
        markers = self._markers_for(moves)
        await cql.run_many(cql.batches([*first, *(m.put for m in moves.values()), *markers]))
        self._marked(markers)
        positions = {key: move.entry for key, move in moves.items()}
        state_rows = [
            ("state_put", _state_values(st, positions.pop(key, None))) for key, st in states.items()
        ]
        alone = [_position_put(key, entry) for key, entry in positions.items()]
        await cql.run_many(cql.batches([*state_rows, *alone]))
        await cql.run_many(cql.batches(m.delete for m in moves.values() if m.delete))
        return len(moves)

    async def history(self, work_id: str, source: str | None) -> list[HistoryPoint]:
        """Daily snapshots of a work (one source or all), oldest first."""
        cql = await self._ready()
        if source:
            sources = [source]
        else:
            rows = await cql.run("states_of", (work_id,))
            sources = sorted(r.source for r in rows if r.status)
        pages = await cql.run_many(("history_get", (work_id, s)) for s in sources)
        return [
            HistoryPoint(work_id, s, _day(r.day), {k: int(v) for k, v in r.metrics.items()})
            for s, rows in zip(sources, pages, strict=True)
            for r in rows
        ]

    async def events(self, work_id: str, source: str) -> list[SourceEvent]:
        """The deduplicated events of a work from one source."""
        rows = await (await self._ready()).run("events_get", (work_id, source))
        return [SourceEvent.from_dict(json.loads(r.event)) for r in rows]

    async def add_raw_responses(self, raws: Sequence[RawResponse]) -> None:
        """Keep upstream responses until `retrieved_at + raw_ttl` (expired ones are skipped)."""
        cql = await self._ready()
        now = datetime.now(UTC)
        writes: list[tuple[str, Sequence[Any]]] = []
        for raw in map(identified, raws):
            ttl = int((raw.retrieved_at + self._raw_ttl - now).total_seconds())
            if ttl <= 0:
                continue
            at = _us(raw.retrieved_at)
            day = raw.retrieved_at.astimezone(UTC).date()
            raw_id = uuid.UUID(raw.raw_id)
            body = (raw.url, raw.status, raw.body, list(raw.work_ids), set(raw.work_ids))
            kept = (raw.digest, raw.method, raw.redacted, ttl)
            writes.append(("raw_put", (raw.source, day, at, raw_id, *body, *kept)))
        await cql.run_many(cql.batches(writes))

    async def raw_responses(self, source: str, work_id: str, limit: int) -> list[RawResponse]:
        """The latest kept responses of `source` concerning `work_id`, newest first: the
        `works` index, one day partition at a time from today back to the oldest kept day."""
        cql = await self._ready()
        today = datetime.now(UTC).date()
        out: list[RawResponse] = []
        for back in range(self._raw_ttl.days + 2):
            if len(out) >= limit:
                break
            day = today - timedelta(days=back)
            rows = await cql.run("raw_of_work", (source, day, work_id, limit - len(out)))
            out.extend(raw_response(source, r) for r in rows)
        return out

    async def source_summary(self) -> dict[str, dict[str, int]]:
        """Per source: works with a state, works whose last attempt failed (reads every row)."""
        rows = await (await self._ready()).run("state_all", ())
        out: dict[str, dict[str, int]] = {}
        for row in rows:
            if not row.status:
                continue  # a due position only: no state yet
            entry = out.setdefault(row.source, {"works": 0, "errors": 0})
            entry["works"] += 1
            entry["errors"] += row.status == Status.ERROR.value
        return dict(sorted(out.items()))

    async def top_works(self, source: str, metric: str, limit: int) -> list[tuple[str, int]]:
        """The works with the highest value of `metric` from `source`."""
        cql = await self._ready()
        pages = await cql.run_many(("board_top", (source, metric, s, limit)) for s in range(SHARDS))
        rows = sorted((-int(r.value), r.work_id) for page in pages for r in page)[:limit]
        return [(work_id, -neg) for neg, work_id in rows]

    # -- due-index -----------------------------------------------------------------------

    async def set_due(self, source: str, entries: Sequence[DueEntry]) -> None:
        """Set when each work is next due from `source` (replacing its previous entry).

        New row first, then the position, then the old row's deletion (`_write_rounds`).
        """
        await self._write_rounds(await self._ready(), [], {}, {source: entries})
        if any(e.leased for e in entries):  # what `due` handed out is leased: move past it
            for key in [k for k in self._scan_next if k[0] == source]:
                self._remember_scan(key, *self._scan_next.pop(key))

    async def add_missing_due(self, due: Mapping[str, Sequence[DueEntry]]) -> int:
        """Set each entry only where its work has no position from that source (read, not
        compared-and-set: a concurrent move can at worst make a work due once more)."""
        return await self._write_rounds(await self._ready(), [], {}, due, only_missing=True)

    async def release_leases(self, now: datetime, within: timedelta) -> int:
        """Make every current lease in the hours from `now` to `now + within` due at `now`:
        only those hours are read (O(leases)), each row checked against its position."""
        cql = await self._ready()
        start, end = _us(now), _us(now + within)
        released = 0
        for row in await cql.run("due_sources", ()):
            leases: list[DueEntry] = []
            for bucket in range(start // HOUR_US, end // HOUR_US + 1):
                found, _ = await self._read_due(cql, row.source, bucket, start, end, 1 << 30)
                leases += [DueEntry(e.work_id, now, e.attempt) for e in found if e.leased]
            released += await self._write_rounds(cql, [], {}, {row.source: leases})
        return released

    async def _due_moves(
        self, cql: CqlSession, due: Mapping[str, Sequence[DueEntry]], only_missing: bool = False
    ) -> dict[tuple[str, str], _Move]:
        """What setting `due` (per source) writes: per (work, source) whose entry changes, the
        new due row and the deletion of the previous one (known from `_positions` or read);
        with `only_missing`, only for works that have no entry."""
        moves: dict[tuple[str, str], _Move] = {}
        for source, entries in due.items():
            latest = {e.work_id: e for e in entries}  # the last one wins (SQLite)
            old = await self._known_positions(cql, source, list(latest))
            for work_id, entry in latest.items():
                at = _us(entry.at)
                before = old.get(work_id)
                if before == (at, entry.attempt) or (only_missing and before is not None):
                    continue  # already so, or has an entry to keep
                put = (
                    "due_put",
                    (source, at // HOUR_US, at, work_id, entry.attempt, entry.leased),
                )
                delete = None
                if before is not None and before[0] != at:
                    delete = ("due_del", (source, before[0] // HOUR_US, before[0], work_id))
                moves[(work_id, source)] = _Move(entry, put, delete)
        return moves

    async def _known_positions(
        self, cql: CqlSession, source: str, work_ids: list[str]
    ) -> dict[str, tuple[int, int] | None]:
        """The current position of each (work, source): remembered from a read just made, else
        read now."""
        out: dict[str, tuple[int, int] | None] = {}
        missing = []
        for work_id in work_ids:
            key = (work_id, source)
            if key in self._positions:
                out[work_id] = self._positions.pop(key)
            else:
                missing.append(work_id)
        if missing:
            found = {
                r.work_id: _position(r)
                for r in await self._read_in(cql, "position_get", "positions_in", missing, source)
            }
            out.update((w, found.get(w)) for w in missing)
        return out

    def _markers_for(self, moves: Mapping[tuple[str, str], _Move]) -> list[Call]:
        """`due_buckets` rows for the hours the moves write to. A marker of the current or a
        future hour is never removed (scans only remove emptied past hours), so once written by
        this process (`_marked`, after the write succeeded) it need not be rewritten."""
        now_bucket = _us(datetime.now(UTC)) // HOUR_US
        hours = {(source, _us(m.entry.at) // HOUR_US) for (_, source), m in moves.items()}
        new = sorted(h for h in hours if h[1] < now_bucket or h not in self._markers)
        return [("bucket_put", hour) for hour in new]

    def _marked(self, markers: Sequence[Call]) -> None:
        now_bucket = _us(datetime.now(UTC)) // HOUR_US
        if len(self._markers) > 10_000:
            self._markers = {m for m in self._markers if m[1] >= now_bucket}
        for _, (source, bucket) in markers:
            if bucket >= now_bucket:
                self._markers.add((source, bucket))

    def _remember(self, positions: Mapping[tuple[str, str], tuple[int, int] | None]) -> None:
        if len(self._positions) > 200_000:  # read but never written back (errors, API reads)
            self._positions.clear()
        self._positions.update(positions)

    async def _copy_due_lookup(self, cql: CqlSession) -> None:
        """Migration 004: copy each entry of the old `due_lookup` table into its position in
        `source_totals`, then drop the table (a rerun after an interruption copies again)."""
        tables = await cql.query(
            "SELECT table_name FROM system_schema.tables WHERE keyspace_name=%s",
            (self.keyspace,),
            keyspace=None,
        )
        if "due_lookup" not in {r.table_name for r in tables}:
            return
        await cql.prepare(
            {
                "lookup_all": "SELECT source, work_id, at, attempt FROM due_lookup",
                "position_put": STATEMENTS["position_put"],
            }
        )
        async for page in cql.pages(cql.stmt("lookup_all"), (), fetch_size=5000):
            await cql.run_many(
                cql.batches(
                    _position_put(
                        (r.work_id, r.source),
                        DueEntry(r.work_id, _dt_required(r.at), int(r.attempt)),
                    )
                    for r in page
                )
            )
        await cql.schema_change(["DROP TABLE IF EXISTS due_lookup"])

    async def due(self, source: str, now: datetime, limit: int) -> list[DueEntry]:
        """Entries of `source` due at `now`, earliest first; reads only hours up to now."""
        cql = await self._ready()
        now_us = _us(now)
        now_bucket = now_us // HOUR_US
        out: list[DueEntry] = []
        for row in await cql.run("bucket_list", (source, now_bucket)):
            if len(out) >= limit:
                break
            read_at = int(time.time() * 1_000_000)
            found = await self._scan_bucket(cql, source, row.bucket, now_us, limit - len(out))
            if found is None and row.bucket < now_bucket - 1:
                # Deleted as of the moment it was read empty: an entry written since keeps it.
                # Only an hour over for an hour or more: a writer that took its time in the
                # hour (entries go at or after the present) may still be writing a row there
                # without its marker (`_markers` skips a marker it wrote before), which a
                # marker dropped a moment after the hour ended would leave unscanned for good.
                await cql.run("bucket_del", (read_at, source, row.bucket))
            out.extend(found or [])
        return out

    async def _scan_bucket(
        self, cql: CqlSession, source: str, bucket: int, now_us: int, want: int
    ) -> list[DueEntry] | None:
        """Up to `want` current entries of one hour (None if a whole-hour read found no row).

        A row that is not its work's current entry (its position) is stale and deleted.
        The read starts where the previous one handed out its last entry (see SCAN_MARGIN_US).
        """
        key = (source, bucket)
        start, whole_at = self._scan_from.get(key, (0, 0.0))
        clock = time.monotonic()
        if start and clock - whole_at >= FULL_SCAN_SECONDS:
            start = 0
        if start == 0:
            whole_at = clock
        out, empty = await self._read_due(cql, source, bucket, start, now_us, want)
        if empty and start and bucket < now_us // HOUR_US:
            # A past hour that looks drained: read it whole once, so it can be dropped.
            start, whole_at = 0, clock
            out, empty = await self._read_due(cql, source, bucket, start, now_us, want)
        if not out:  # nothing current up to the margin: the next scan starts there
            self._scan_next.pop(key, None)
            self._remember_scan(key, max(start, now_us - SCAN_MARGIN_US), whole_at)
        else:  # past the entries handed out only once they are leased (set_due)
            self._remember_scan(key, start, whole_at)
            moved = max(start, min(_us(out[-1].at), now_us - SCAN_MARGIN_US))
            self._scan_next[key] = (moved, whole_at)
        return None if empty and start == 0 else out

    async def _read_due(
        self, cql: CqlSession, source: str, bucket: int, start: int, now_us: int, want: int
    ) -> tuple[list[DueEntry], bool]:
        """Up to `want` current entries of the hour from `start` to `now_us`, and whether the
        range held no row at all; stale rows met on the way are deleted."""
        out: list[DueEntry] = []
        empty = True
        stmt = cql.stmt("due_scan")
        params = (source, bucket, start, now_us)
        async for page in cql.pages(stmt, params, fetch_size=min(max(want, 100), 5000)):
            empty = empty and not page
            found = await self._read_in(
                cql, "position_get", "positions_in", [r.work_id for r in page], source
            )
            current = {r.work_id: _position(r) for r in found}
            stale = []
            handed: dict[tuple[str, str], tuple[int, int] | None] = {}
            written_before = int(time.time() * 1_000_000) - SETTLE_US
            for r in page:
                position = current.get(r.work_id)
                if position is not None and position[0] == r.at:
                    at = _dt_required(r.at)
                    out.append(DueEntry(r.work_id, at, int(r.attempt), bool(r.leased)))
                    handed[(r.work_id, source)] = position
                elif (r.written or 0) < written_before:
                    stale.append(("due_del", (source, bucket, r.at, r.work_id)))
                # else: written moments ago, its position is being written (set_due's second
                # round): neither handed out nor deleted; the next scan finds it current
            self._remember(handed)  # the scheduler leases them next: no read then
            await cql.run_many(cql.batches(stale))
            if len(out) >= want:
                break
        return out[:want], empty

    def _remember_scan(self, key: tuple[str, int], start: int, whole_at: float) -> None:
        if len(self._scan_from) > 10_000:  # hours long past are no longer scanned
            self._scan_from = {k: v for k, v in self._scan_from.items() if k[1] >= key[1] - 48}
            self._scan_next = {k: v for k, v in self._scan_next.items() if k[1] >= key[1] - 48}
        self._scan_from[key] = (start, whole_at)

    # -- source control -----------------------------------------------------------------

    async def source_statuses(self) -> dict[str, SourceStatus]:
        """The status of every source that was ever paused or resumed."""
        rows = await (await self._ready()).run("status_all", ())
        return {
            r.source: SourceStatus(r.source, bool(r.paused), r.reason, _dt(r.since)) for r in rows
        }

    async def set_source_status(self, status: SourceStatus) -> None:
        """Record that a source is paused (with its reason) or running again."""
        since = _us(status.since) if status.since else None
        await (await self._ready()).run(
            "status_put", (status.source, status.paused, status.reason, since)
        )


class _Move(NamedTuple):
    """A (work, source)'s due entry moving: the new row, the old row's deletion if any."""

    entry: DueEntry
    put: Call
    delete: Call | None


def _position(row: Row | None) -> tuple[int, int] | None:
    """A row's due position (due_at, attempt), None if it has none."""
    if row is None or row.due_at is None:
        return None
    return int(row.due_at), int(row.due_attempt or 1)


def _position_put(key: tuple[str, str], entry: DueEntry) -> Call:
    return ("position_put", (_us(entry.at), entry.attempt, key[0], key[1]))


def _leaderboard_writes(applied: Sequence[Aggregate]) -> list[tuple[str, Sequence[Any]]]:
    """Insert each work's final values; delete values it held before (previous or in between)."""
    seen: dict[tuple[str, str], set[tuple[str, int]]] = {}
    final: dict[tuple[str, str], dict[str, int]] = {}
    for item in applied:
        if item.changed is None and item.history is None:
            continue  # an error, or the same totals again: the board already holds them
        key = (item.state.work_id, item.state.source)
        held = seen.setdefault(key, set())
        if item.changed is not None:
            held.update(item.changed.previous.items())
        held.update(item.state.metrics.items())
        final[key] = dict(item.state.metrics)
    out: list[tuple[str, Sequence[Any]]] = []
    for (work_id, source), metrics in final.items():
        shard = _shard(work_id)
        for metric, value in seen[(work_id, source)] - set(metrics.items()):
            out.append(("board_del", (source, metric, shard, value, work_id)))
        for metric, value in metrics.items():
            out.append(("board_put", (source, metric, shard, value, work_id)))
    return out


async def _gather(aws: Sequence[Awaitable[Any]], limit: int) -> None:
    await bounded(aws, limit)
