"""The works in publication-date order, for ALM v5's listing without `ids` (newest first,
undated works last, then by work id), in the CassandraStore's keyspace (migration 012).

`works_by_issued` holds one row per work in the partition of its year (`bucket`; UNDATED for
a work without a date) clustered by (issued DESC, work_id); `works_issued_buckets` lists the
buckets newest first (a row is written once per bucket and never removed: an emptied year
costs one empty read). A page walks the buckets in that order and skips `offset` rows: whole
buckets by their count once the offset is large, the rest by reading past them, so a page
costs O(offset + limit) rows read, like ALM's SQL OFFSET, and the first pages read only
themselves.

The store writes a row when it creates a work, and moves it (the new row written, the old one
deleted) when a work's date changes, after the works row itself is written. Two updates of one
work racing can leave the row of a date the work no longer has, and so can a process of a
version before 012 changing a date (a rolling upgrade); a page checks each row against its
work, leaves such a row out, deletes it as of the moment the page began (a row written since
is kept) and writes the row of the date the work has. A work written before its row
(registration in flight) is not listed yet. Works that processes of a version before 012
register after the backfill have no row: `alm db reindex-dates` (`backfill` again) writes them
once those processes are gone.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import date

from services.adapters.cassandra.rows import day
from services.adapters.cassandra.session import Call, CqlSession
from services.core.works import Work

MIGRATION = 12  # 012_works_by_issued.cql, then `backfill`
UNDATED = 0  # the bucket of works without a date: below every year, so read last
NO_DATE = date(1, 1, 1)  # their `issued` (a clustering column cannot be null)
COUNT_FROM = 1000  # skip a whole bucket by its count (not by reading it) from this offset on

STATEMENTS: dict[str, str] = {
    "issued_put": "INSERT INTO works_by_issued (bucket, issued, work_id) VALUES (?,?,?)",
    "issued_del": "DELETE FROM works_by_issued WHERE bucket=? AND issued=? AND work_id=?",
    "issued_del_at": "DELETE FROM works_by_issued USING TIMESTAMP ?"
    " WHERE bucket=? AND issued=? AND work_id=?",
    "issued_page": "SELECT issued, work_id FROM works_by_issued WHERE bucket=? LIMIT ?",
    "issued_count": "SELECT count(*) FROM works_by_issued WHERE bucket=?",
    "issued_bucket_put": "INSERT INTO works_issued_buckets (shard, bucket) VALUES (0, ?)",
    "issued_buckets": "SELECT bucket FROM works_issued_buckets WHERE shard=0",
}

Key = tuple[int, date, str]  # a row: (bucket, issued, work id)


def key_of(work_id: str, issued: date | None) -> Key:
    """The row of a work with this date."""
    return (issued.year, issued, work_id) if issued else (UNDATED, NO_DATE, work_id)


class IssuedIndex:
    """Writes and reads of `works_by_issued`, over the store's session (its statements are
    prepared with the store's)."""

    def __init__(self, now_us: Callable[[], int]) -> None:
        self._now_us = now_us  # the wall clock in microseconds (a deletion's USING TIMESTAMP)
        self._buckets: set[int] = set()  # bucket rows this process wrote (never removed)

    def puts(self, works: Iterable[Work]) -> list[Call]:
        """The rows of new works, with the bucket rows not yet written by this process."""
        keys = [key_of(w.work_id, w.issued) for w in works]
        return [("issued_put", k) for k in keys] + self._bucket_puts(k[0] for k in keys)

    def moves(self, before: Mapping[str, date | None], after: Iterable[Work]) -> list[Call]:
        """The writes that move the rows of works whose date changed from `before` (per work
        id) to their date in `after`: the new row, the old one's deletion."""
        calls: list[Call] = []
        moved = [w for w in after if w.work_id in before and before[w.work_id] != w.issued]
        for work in moved:
            calls.append(("issued_del", key_of(work.work_id, before[work.work_id])))
        return calls + self.puts(moved)

    def written(self, calls: Sequence[Call]) -> None:
        """Remember the bucket rows among `calls`, once they are written."""
        self._buckets.update(int(p[0]) for name, p in calls if name == "issued_bucket_put")

    def _bucket_puts(self, buckets: Iterable[int]) -> list[Call]:
        return [("issued_bucket_put", (b,)) for b in sorted(set(buckets) - self._buckets)]

    async def page(
        self,
        cql: CqlSession,
        get_works: Callable[[Sequence[str]], Awaitable[dict[str, Work]]],
        offset: int,
        limit: int,
    ) -> list[Work]:
        """Works `offset` to `offset + limit` newest first (rows of a date their work no longer
        has are left out and deleted)."""
        began = self._now_us()
        keys = await _keys(cql, offset, limit)
        found = await get_works([k[2] for k in keys])
        stale = [k for k in keys if k[2] in found and key_of(k[2], found[k[2]].issued) != k]
        if stale:  # rare (racing updates): one by one, each as of `began`
            await cql.run_many(("issued_del_at", (began, *k)) for k in stale)
        return [found[k[2]] for k in keys if k[2] in found and k not in stale]


async def _keys(cql: CqlSession, offset: int, limit: int) -> list[Key]:
    """The rows `offset` to `offset + limit`, bucket by bucket, newest first."""
    skip, out = offset, list[Key]()
    for row in await cql.run("issued_buckets", ()):
        bucket = int(row.bucket)
        if skip >= COUNT_FROM:
            count = int((await cql.run("issued_count", (bucket,)))[0][0])
            if count <= skip:
                skip -= count
                continue
        want = limit - len(out)
        rows = await cql.run("issued_page", (bucket, skip + want))
        out += [(bucket, day(r.issued), r.work_id) for r in rows[skip:]]
        skip = max(0, skip - len(rows))
        if len(out) >= limit:
            break
    return out[:limit]


async def backfill(cql: CqlSession, now_us: Callable[[], int]) -> None:
    """Migration 012: a row for every registered work (upserts: a rerun after an interruption
    writes them again; a row made stale by an update meanwhile is removed by the next page
    that meets it)."""
    await cql.prepare({**STATEMENTS, "issued_all": "SELECT work_id, issued FROM works"})
    index = IssuedIndex(now_us)
    async for rows in cql.pages(cql.stmt("issued_all"), (), fetch_size=5000):
        works = [Work(r.work_id, issued=day(r.issued) if r.issued else None) for r in rows]
        calls = index.puts(works)
        await cql.run_many(cql.batches(calls))
        index.written(calls)
