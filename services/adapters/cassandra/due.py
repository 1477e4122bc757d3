"""The due index in Cassandra (the DueIndex port), and the write path that moves due entries,
which registration and the aggregator's state writes share.

`due` partitions are (source, hour); `due_buckets` lists the hours that may hold entries, and
each (work, source)'s current entry, its position, is kept in its `source_totals` row
(`due_at`, `due_attempt`; ALM's retrieval status had `scheduled_at`), so `set_due` deletes the
previous row and `due` reads only the hours up to now: O(due). A row left behind by a crash or
a race does not match the position and is removed when scanned (once it is older than
SETTLE_US: a row just written waits for its position). A `source_totals` row that only holds a
position (a work not yet refreshed from that source) is no state: reads skip rows without a
status. A lease (the scheduler's) is marked in its due row (`leased`, migration 005), so
`release_leases` reads only the hours the leases run out in.

The position costs the aggregator no read: `states` and `due` put the positions they read in
the caller's Handoff (services/core/ports.py), and the write that follows takes them from it
(a key it lacks is read). Within an hour a scan starts after the entry the previous one handed
out last (its time and work id: entries of one time, a registration's or an intake's, are many;
SCAN_MARGIN_US), so the tombstones of entries already leased are not read on every tick; it
moves there only once those entries are leased with the Handoff `due` filled (a tick whose
publish failed leaves them due, and the next scan must read them again however long the
bus stays down). Where scans start (`_scan_from`) and which hour markers this process wrote
(`_markers`) are this object's own memory: losing either costs reads, never an entry.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import NamedTuple

import structlog
from cassandra import ReadFailure

from services.adapters.cassandra.keyspace import Keyspace
from services.adapters.cassandra.rows import (
    HOUR_US,
    STATE_PUT,
    Position,
    dt_required,
    position,
    state_values,
    us,
)
from services.adapters.cassandra.session import Call, CqlSession
from services.core.aggregation import SourceState
from services.core.ports import DueEntry, Handoff

log = structlog.get_logger("alm.cassandra")

# Due scans start where the previous scan of the hour left off, not at the hour's start: the
# entries handed out before were deleted (leased), and reading past their tombstones on every
# tick would grow with the hour's traffic (Cassandra fails a read at 100,000 tombstones). An entry
# written behind that point (an overdue time, a skewed clock) is still found: the scan keeps
# SCAN_MARGIN_US behind the present, and reads the whole hour again every FULL_SCAN_SECONDS.
# A whole-hour read the server refuses for its tombstones (an hour that leased more than that)
# does not stop the scans: they go on from where they were, and the whole read is tried again
# FULL_SCAN_SECONDS later, once compaction may have purged them (migration 018: an hour after).
# A resumed scan the server refuses (its position minutes behind what another scanner leased
# since) goes on from SCAN_MARGIN_US behind the present, where a new scan starts.
SCAN_MARGIN_US = 60_000_000
FULL_SCAN_SECONDS = 600.0
# A due row whose work's position is elsewhere is stale (left by a crash or a race) and deleted
# when scanned, unless it was written less than SETTLE_US ago: set_due writes the row first and
# the position next, and a scan in between must not take the new row for a stale one (that lost
# the entry for good: the position then pointed at a row that no longer existed).
SETTLE_US = 60_000_000

STATEMENTS: dict[str, str] = {
    "due_put": "INSERT INTO due (source, bucket, at, work_id, attempt, leased)"
    " VALUES (?,?,?,?,?,?)",
    "due_del": "DELETE FROM due WHERE source=? AND bucket=? AND at=? AND work_id=?",
    "due_scan": "SELECT at, work_id, attempt, leased, WRITETIME(attempt) AS written FROM due"
    " WHERE source=? AND bucket=? AND at>=? AND at<=?",
    # after the entry a scan handed out last: the entries of the same time before it (leased
    # since: tombstones) are not read again
    "due_scan_after": "SELECT at, work_id, attempt, leased, WRITETIME(attempt) AS written"
    " FROM due WHERE source=? AND bucket=? AND (at, work_id) > (?, ?) AND at<=?",
    "due_sources": "SELECT DISTINCT source FROM due_buckets",
    "bucket_put": "INSERT INTO due_buckets (source, bucket) VALUES (?,?)",
    "bucket_list": "SELECT bucket FROM due_buckets WHERE source=? AND bucket<=?",
    "bucket_del": "DELETE FROM due_buckets USING TIMESTAMP ? WHERE source=? AND bucket=?",
    "position_get": "SELECT work_id, due_at, due_attempt FROM source_totals"
    " WHERE source=? AND work_id=?",
    "positions_in": "SELECT work_id, due_at, due_attempt FROM source_totals"
    " WHERE source=? AND work_id IN ?",
    "position_put": "UPDATE source_totals SET due_at=?, due_attempt=? WHERE work_id=? AND source=?",
    "state_put": STATE_PUT,
}

# where an hour's next scan starts: after (time, work id), or at the time if the work id is "",
# and when the hour was last read whole (µs)
Scan = tuple[int, str, int]


class _Move(NamedTuple):
    """A (work, source)'s due entry moving: the new row, the old row's deletion if any."""

    entry: DueEntry
    put: Call
    delete: Call | None


class CassandraDue:
    """When each (work, source) is next due, in `due` rows found through `due_buckets`."""

    def __init__(self, keyspace: Keyspace) -> None:
        self._ks = keyspace
        keyspace.add(STATEMENTS)
        self._markers: set[tuple[str, int]] = set()  # due_buckets rows this process wrote
        self._scan_from: dict[tuple[str, int], Scan] = {}  # (source, hour) -> its next scan

    async def set_due(
        self, source: str, entries: Sequence[DueEntry], handoff: Handoff | None = None
    ) -> None:
        """Set when each work is next due from `source` (replacing its previous entry).

        New row first, then the position, then the old row's deletion (`write_rounds`).
        """
        await self.write_rounds([], {}, {source: entries}, handoff)
        if handoff is not None and any(e.leased for e in entries):
            # what `due` handed out is leased: its scans move past it
            for key in [k for k in handoff.scans if k[0] == source]:
                self._remember_scan(key, handoff.scans.pop(key))

    async def add_missing_due(self, due: Mapping[str, Sequence[DueEntry]]) -> int:
        """Set each entry only where its work has no position from that source (read, not
        compared-and-set: a concurrent move can at worst make a work due once more)."""
        return await self.write_rounds([], {}, due, only_missing=True)

    async def release_leases(self, now: datetime, within: timedelta) -> int:
        """Make every current lease in the hours from `now` to `now + within` due at `now`:
        only those hours are read (O(leases)), each row checked against its position."""
        cql = await self._ks.ready()
        start, end = us(now), us(now + within)
        released = 0
        for row in await cql.run("due_sources", ()):
            leases: list[DueEntry] = []
            handoff = Handoff()
            for bucket in range(start // HOUR_US, end // HOUR_US + 1):
                span = (start, "", end)
                found, _ = await self._read_due(cql, row.source, bucket, span, handoff)
                leases += [DueEntry(e.work_id, now, e.attempt) for e in found if e.leased]
            released += await self.write_rounds([], {}, {row.source: leases}, handoff)
        return released

    async def write_rounds(
        self,
        first: list[Call],
        states: Mapping[tuple[str, str], SourceState],
        due: Mapping[str, Sequence[DueEntry]],
        handoff: Handoff | None = None,
        only_missing: bool = False,
    ) -> int:
        """Three rounds, each waiting for the one before: `first` with the new due rows (and
        their hours' markers); then the states, each with its new due position (a position
        alone where there is no state); then the replaced due rows' deletion. A crash in
        between leaves at worst a due row that does not match its position, which `due`
        removes, and a state not yet stored, which the redelivered observation repairs.
        With `only_missing`, entries are written only for works without a position. Returns
        how many due entries were written."""
        cql = await self._ks.ready()
        moves = await self._due_moves(cql, due, handoff, only_missing)
        markers = self._markers_for(moves)
        await cql.run_many(cql.batches([*first, *(m.put for m in moves.values()), *markers]))
        self._marked(markers)
        positions = {key: move.entry for key, move in moves.items()}
        state_rows = [
            ("state_put", state_values(st, positions.pop(key, None))) for key, st in states.items()
        ]
        alone = [position_put(key, entry) for key, entry in positions.items()]
        await cql.run_many(cql.batches([*state_rows, *alone]))
        await cql.run_many(cql.batches(m.delete for m in moves.values() if m.delete))
        return len(moves)

    async def _due_moves(
        self,
        cql: CqlSession,
        due: Mapping[str, Sequence[DueEntry]],
        handoff: Handoff | None,
        only_missing: bool,
    ) -> dict[tuple[str, str], _Move]:
        """What setting `due` (per source) writes: per (work, source) whose entry changes, the
        new due row and the deletion of the previous one (from the handoff, or read); with
        `only_missing`, only for works that have no entry."""
        moves: dict[tuple[str, str], _Move] = {}
        for source, entries in due.items():
            latest = {e.work_id: e for e in entries}  # the last one wins (SQLite)
            old = await self._known_positions(source, list(latest), handoff)
            for work_id, entry in latest.items():
                at = us(entry.at)
                before = old.get(work_id)
                if before == (at, entry.attempt) or (only_missing and before is not None):
                    continue  # already so, or has an entry to keep
                put = ("due_put", (source, at // HOUR_US, at, work_id, entry.attempt, entry.leased))
                delete = None
                if before is not None and before[0] != at:
                    delete = ("due_del", (source, before[0] // HOUR_US, before[0], work_id))
                moves[(work_id, source)] = _Move(entry, put, delete)
        return moves

    async def _known_positions(
        self, source: str, work_ids: list[str], handoff: Handoff | None
    ) -> dict[str, Position | None]:
        """The current position of each (work, source): taken from the handoff of the read
        just made, else read now."""
        out: dict[str, Position | None] = {}
        missing = []
        known = handoff.positions if handoff is not None else {}
        for work_id in work_ids:
            key = (work_id, source)
            if key in known:
                out[work_id] = known.pop(key)
            else:
                missing.append(work_id)
        if missing:
            rows = await self._ks.read_in("position_get", "positions_in", missing, source)
            found = {r.work_id: position(r) for r in rows}
            out.update((w, found.get(w)) for w in missing)
        return out

    def _markers_for(self, moves: Mapping[tuple[str, str], _Move]) -> list[Call]:
        """`due_buckets` rows for the hours the moves write to. A marker of the current or a
        future hour is never removed (scans only remove emptied past hours), so once written by
        this process (`_marked`, after the write succeeded) it need not be rewritten."""
        now_bucket = self._ks.now_us() // HOUR_US
        hours = {(source, us(m.entry.at) // HOUR_US) for (_, source), m in moves.items()}
        new = sorted(h for h in hours if h[1] < now_bucket or h not in self._markers)
        return [("bucket_put", hour) for hour in new]

    def _marked(self, markers: Sequence[Call]) -> None:
        now_bucket = self._ks.now_us() // HOUR_US
        if len(self._markers) > 10_000:
            self._markers = {m for m in self._markers if m[1] >= now_bucket}
        for _, (source, bucket) in markers:
            if bucket >= now_bucket:
                self._markers.add((source, bucket))

    async def due(
        self, source: str, now: datetime, limit: int, handoff: Handoff | None = None
    ) -> list[DueEntry]:
        """Entries of `source` due at `now`, earliest first; reads only hours up to now."""
        cql = await self._ks.ready()
        now_us = us(now)
        now_bucket = now_us // HOUR_US
        out: list[DueEntry] = []
        for row in await cql.run("bucket_list", (source, now_bucket)):
            if len(out) >= limit:
                break
            read_at = self._ks.now_us()
            found = await self._scan_bucket(
                cql, (source, row.bucket), now_us, limit - len(out), handoff
            )
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
        self,
        cql: CqlSession,
        key: tuple[str, int],
        now_us: int,
        want: int,
        handoff: Handoff | None,
    ) -> list[DueEntry] | None:
        """Up to `want` current entries of one hour (None if a whole-hour read found no row).

        A row that is not its work's current entry (its position) is stale and deleted.
        The read starts where the previous one handed out its last entry (see SCAN_MARGIN_US).
        """
        source, bucket = key
        start, after, whole_at = self._scan_from.get(key, (0, "", 0))
        clock = self._ks.now_us()
        margin = (now_us - SCAN_MARGIN_US, "")  # where a scan with nothing to go on from starts
        out: list[DueEntry] | None = None
        empty = whole = False
        if not (start or after) or clock - whole_at >= FULL_SCAN_SECONDS * 1_000_000:
            out, empty = await self._whole(cql, key, now_us, want, handoff)
            whole_at = clock  # read whole, or refused: tried again FULL_SCAN_SECONDS on
            if out is not None:
                start, after, whole = 0, "", True
            elif not (start or after):  # no scan to go on from: from the margin, for now
                start, after = margin
        if out is None:
            try:
                out, empty = await self._read_due(
                    cql, source, bucket, (start, after, now_us), handoff, want
                )
            except ReadFailure as exc:
                if (start, after) >= margin:
                    raise  # already at the margin: nothing nearer the present to go on from
                # Refused for what was leased since this scan's position (a scanner that
                # fell minutes behind another): go on from the margin, as a new one does;
                # entries left behind are found by the whole-hour read once it is accepted.
                log.warning("due_scan_refused_moved_to_margin", source=source, error=str(exc))
                start, after = margin
                out, empty = await self._read_due(
                    cql, source, bucket, (start, after, now_us), handoff, want
                )
            if empty and bucket < now_us // HOUR_US:
                # A past hour that looks drained: read it whole once, so it can be dropped.
                found, found_empty = await self._whole(cql, key, now_us, want, handoff)
                if found is not None:
                    out, empty, whole = found, found_empty, True
                    start, after, whole_at = 0, "", clock
        scans = handoff.scans if handoff is not None else {}
        if not out:  # nothing current up to the margin: the next scan starts there
            scans.pop(key, None)
            self._remember_scan(key, (*max((start, after), margin), whole_at))
        else:  # past the entries handed out only once they are leased (set_due)
            self._remember_scan(key, (start, after, whole_at))
            last = (us(out[-1].at), out[-1].work_id)
            scans[key] = (*max((start, after), min(last, margin)), whole_at)
        return None if empty and whole else out

    async def _whole(
        self,
        cql: CqlSession,
        key: tuple[str, int],
        now_us: int,
        want: int,
        handoff: Handoff | None,
    ) -> tuple[list[DueEntry] | None, bool]:
        """The hour read from its start (as `_read_due`), or (None, False) if the server refuses
        to read past its tombstones (see FULL_SCAN_SECONDS)."""
        try:
            return await self._read_due(cql, key[0], key[1], (0, "", now_us), handoff, want)
        except ReadFailure as exc:
            log.warning("due_whole_hour_read_refused", source=key[0], hour=key[1], error=str(exc))
            return None, False

    async def _read_due(
        self,
        cql: CqlSession,
        source: str,
        bucket: int,
        span: tuple[int, str, int],
        handoff: Handoff | None,
        want: int = 1 << 30,
    ) -> tuple[list[DueEntry], bool]:
        """Up to `want` current entries of the hour in `span` (from: microseconds, and after
        that time's entry of this work id if not ""; to), and whether the range held no row at
        all; stale rows met on the way are deleted. The positions of the entries handed out
        go into `handoff`."""
        out: list[DueEntry] = []
        empty = True
        start, after, end = span
        name, params = (
            ("due_scan_after", (source, bucket, start, after, end))
            if after
            else (
                "due_scan",
                (source, bucket, start, end),
            )
        )
        async for page in cql.pages(cql.stmt(name), params, fetch_size=min(max(want, 100), 5000)):
            empty = empty and not page
            found = await self._ks.read_in(
                "position_get", "positions_in", [r.work_id for r in page], source
            )
            current = {r.work_id: position(r) for r in found}
            stale = []
            written_before = self._ks.now_us() - SETTLE_US
            for r in page:
                now_at = current.get(r.work_id)
                if now_at is not None and now_at[0] == r.at:
                    out.append(
                        DueEntry(r.work_id, dt_required(r.at), int(r.attempt), bool(r.leased))
                    )
                    if handoff is not None:  # leased next: no read then
                        handoff.positions[(r.work_id, source)] = now_at
                elif (r.written or 0) < written_before:
                    stale.append(("due_del", (source, bucket, r.at, r.work_id)))
                # else: written moments ago, its position is being written (set_due's second
                # round): neither handed out nor deleted; the next scan finds it current
            await cql.run_many(cql.batches(stale))
            if len(out) >= want:
                break
        return out[:want], empty

    def _remember_scan(self, key: tuple[str, int], scan: Scan) -> None:
        if len(self._scan_from) > 10_000:  # hours long past are no longer scanned
            self._scan_from = {k: v for k, v in self._scan_from.items() if k[1] >= key[1] - 48}
        self._scan_from[key] = scan


def position_put(key: tuple[str, str], entry: DueEntry) -> Call:
    """The write of a (work, source)'s position alone."""
    return ("position_put", (us(entry.at), entry.attempt, key[0], key[1]))
