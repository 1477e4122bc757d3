"""The works registry in Cassandra (the WorkStore port).

- Registration reads the identifier index of a whole call first (`IN` reads per id type). A
  work known by one identifier that no one has (the bulk of a catalogue: a DOI) is written
  without a compare-and-set: its work id is its identifier's (`Identifier.work_id`), so two
  processes registering it concurrently write the same rows (idempotent), and these rows go
  in batches with the call's other new works (fresh.py: the work, its index and date rows,
  its identifier, then the shard counters). A work with two or more identifiers, or one whose
  identifier is already known or shared by another work of the call, is reconciled one at a
  time: an identifier is claimed with `INSERT ... IF NOT EXISTS` (LWT), so two processes
  registering a DOI and its PMID concurrently make one work, and the first mapping of a
  PMID/PMCID wins (SQLite's INSERT OR IGNORE). A claim always wins over an unclaimed mapping
  (`id_put`); the one race left, a DOI registered alone while another process claims it for
  a work first known by its PMID, leaves a work row no identifier leads to (listed and
  refreshed like the work it duplicates), which nothing removes yet.
- Registration in bulk (`intake`): the call is an intake chunk (`intake_chunks`, migration
  017), a row listing its works, written before any of them and sealed after; the scheduler's
  `take_intake` gives the works of sealed chunks their missing entries (the due index's
  batched write) and deletes the chunk. A registration that dies leaves its chunk unsealed,
  and it is taken once INTAKE_ABANDONED_US old: a chunk is never taken while the call that
  writes its works may still be running, and a work is never registered without either its
  entries or a chunk that lists it (a work merged into another by an identifier learned in
  that call is listed by its new id only once the chunk is sealed; the reconcile covers the
  one that died in between).
- Registration with a schedule: the works' missing due entries go through the due index's
  batched write (`CassandraDue.write_rounds`, only where a work has no position) before
  `register` returns; a work the call created is known to have none, so only known works'
  positions are read. A crash in between leaves a known work without an entry, which
  registering it again or the scheduler's reconcile (`works_after` pages) repairs.
- Works in work-id order: `work_index` spreads ids over 16 clustered shards; a page merges
  them (`works_after`: each shard read after the id, merged). `count_works` reads the
  `works_count` counters (one a shard, incremented by the registration that creates a work:
  a creation wins its identifier's claim once, so it is counted once; a write failing after
  the claim can leave it one short: a maintained figure, not a transactional one). Works by
  date, newest first (ALM v5's listing):
  `works_by_issued`, written with the works rows (issued.py).
"""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter
from collections.abc import Awaitable, Iterable, Mapping, Sequence
from dataclasses import replace
from datetime import date
from typing import Any

from services.adapters.cassandra.due import CassandraDue
from services.adapters.cassandra.fresh import split, work_values, write_fresh
from services.adapters.cassandra.issued import STATEMENTS as ISSUED_STATEMENTS
from services.adapters.cassandra.issued import IssuedIndex
from services.adapters.cassandra.keyspace import Keyspace
from services.adapters.cassandra.rows import SHARDS, day, shard
from services.adapters.cassandra.search_terms import STATEMENTS as TERMS_STATEMENTS
from services.adapters.cassandra.search_terms import terms_calls
from services.adapters.cassandra.session import CqlSession, Row
from services.adapters.cassandra.window import bounded
from services.core.identifiers import Identifier, IdType
from services.core.ports import DueEntry, Handoff, IntakePlan, Registration, Schedule
from services.core.works import Work

WORK_COLS = (
    "work_id, doi, pmid, pmcid, title, issued, publisher, canonical_url, work_type, publisher_id"
)
STATEMENTS: dict[str, str] = {
    "work_get": f"SELECT {WORK_COLS} FROM works WHERE work_id=?",
    "works_in": f"SELECT {WORK_COLS} FROM works WHERE work_id IN ?",
    "work_insert": f"INSERT INTO works ({WORK_COLS}, registered_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
    "work_insert_terms": f"INSERT INTO works ({WORK_COLS}, title_terms, registered_at)"
    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
    "work_update": "UPDATE works SET doi=?, pmid=?, pmcid=?, title=?, issued=?, publisher=?,"
    " canonical_url=?, work_type=?, publisher_id=? WHERE work_id=?",
    "index_insert": "INSERT INTO work_index (shard, work_id) VALUES (?,?)",
    "index_page": "SELECT work_id FROM work_index WHERE shard=? LIMIT ?",
    "index_after": "SELECT work_id FROM work_index WHERE shard=? AND work_id>? LIMIT ?",
    "index_count": "SELECT count(*) FROM work_index WHERE shard=?",
    "count_add": "UPDATE works_count SET works = works + ? WHERE shard=?",
    "count_all": "SELECT works FROM works_count",
    "id_get": "SELECT work_id FROM work_ids WHERE id_type=? AND value=?",
    "ids_in": "SELECT value, work_id FROM work_ids WHERE id_type=? AND value IN ?",
    "id_claim": "INSERT INTO work_ids (id_type, value, work_id) VALUES (?,?,?) IF NOT EXISTS",
    # A mapping written without a claim (a work known by one identifier: fresh.py) is written
    # at the lowest timestamp, so a claim (LWT, written at its ballot's time) always wins over
    # it, whichever came first; and a claim seeing it finds the identifier taken.
    "id_put": "INSERT INTO work_ids (id_type, value, work_id) VALUES (?,?,?) USING TIMESTAMP 1",
    "intake_open": "INSERT INTO intake_chunks (shard, chunk, works, sealed) VALUES (?,?,?,false)",
    "intake_seal": "UPDATE intake_chunks SET works=?, sealed=true WHERE shard=? AND chunk=?",
    "intake_sealed": "UPDATE intake_chunks SET sealed=true WHERE shard=? AND chunk=?",
    "intake_list": "SELECT chunk, sealed FROM intake_chunks WHERE shard=? LIMIT ?",
    "intake_works": "SELECT works FROM intake_chunks WHERE shard=? AND chunk=?",
    "intake_drop": "DELETE FROM intake_chunks WHERE shard=? AND chunk=?",
    **ISSUED_STATEMENTS,
    **TERMS_STATEMENTS,
}
CONCURRENT = 64  # registrations (or identifier reads) in flight at once
INTAKE_LIST = 50  # intake chunks listed per shard by one take
INTAKE_ABANDONED_US = 600_000_000  # an unsealed chunk this old is a registration that died
# Works of a taken chunk given their entries at a time: what a take holds (the works read, their
# entries, positions and writes: ~15 KB a work with 11 sources) is bounded by this, not by the
# size of the chunks `alm works import` wrote.
INTAKE_SLICE = 1000


def work_of(row: Row) -> Work:
    """A `works` row as the work."""
    return Work(
        work_id=row.work_id,
        doi=row.doi,
        pmid=row.pmid,
        pmcid=row.pmcid,
        title=row.title,
        issued=day(row.issued) if row.issued is not None else None,
        publisher=row.publisher,
        canonical_url=row.canonical_url,
        type=row.work_type,
        publisher_id=row.publisher_id,
    )


def _as_stored(work: Work, before: Work) -> Work:
    """`work` as its row is after an update over `before` (a None leaves a column as it was)."""
    return replace(
        work,
        issued=work.issued or before.issued,
        title=work.title if work.title is not None else before.title,
        publisher=work.publisher if work.publisher is not None else before.publisher,
    )


class CassandraWorks:
    """Works and their identifiers; registration schedules through the due index."""

    def __init__(self, keyspace: Keyspace, due: CassandraDue) -> None:
        self._ks = keyspace
        self._due = due
        self._issued = IssuedIndex(keyspace.now_us)  # works by date (v5's listing)
        keyspace.add(STATEMENTS)

    async def register(
        self, works: Sequence[Work], schedule: Schedule | None = None, intake: bool = False
    ) -> list[Registration]:
        """Register works; one already known by any of its ids is merged, not duplicated. With
        `schedule`, the due entries the registered works lack are written (batched, through
        the due index's write path) before this returns; with `intake`, the call's works are
        an intake chunk instead: listed before any of them is written, sealed with the works
        as registered (a merge can change a work's id) once they all are."""
        cql = await self._ks.ready()
        chunk: tuple[int, str] | None = None
        listed: list[str] = []
        opened: Awaitable[Any] | None = None
        if intake:  # listed while the identifiers are read: both before any work is written
            name = f"{self._ks.now_us():016x}-{secrets.token_hex(4)}"  # oldest first
            chunk = (shard(name), name)
            listed = list(dict.fromkeys(w.work_id for w in works))
            opened = cql.run("intake_open", (*chunk, listed))
        owned = self._owners([i for w in works for i in w.identifiers()])
        owner = (await asyncio.gather(owned, opened))[0] if opened else await owned
        fresh, by_id = split(works, owner)
        out: list[Registration | None] = [None] * len(works)
        await write_fresh(cql, self._issued, self._ks.clock, [works[i] for i in fresh])
        for i in fresh:
            out[i] = Registration(works[i], created=True)

        named = Counter(i for w in works for i in w.identifiers())

        async def chain(indexes: list[int]) -> None:
            for n, i in enumerate(indexes):  # the same work twice in one call: in order
                idents = works[i].identifiers()
                alone = n == 0 and all(named[ident] == 1 for ident in idents)
                read = {d: owner[d] for d in idents if d in owner} if alone else None
                out[i] = await self._register_one(cql, works[i], read)

        await bounded([chain(ix) for ix in by_id.values()], CONCURRENT)
        done = [r for r in out if r is not None]
        if chunk is not None:
            registered = list(dict.fromkeys(r.work.work_id for r in done))
            if registered == listed:  # no merge changed an id: the list stands as written
                await cql.run("intake_sealed", chunk)
            else:
                await cql.run("intake_seal", (registered, *chunk))
        elif schedule is not None:
            await self._schedule_registered(done, schedule)
        return done

    async def take_intake(self, limit: int, plan: IntakePlan) -> int:
        """Take intake chunks, oldest first, until about `limit` works: a sealed chunk, or one
        left unsealed for INTAKE_ABANDONED_US (its registration died: what it wrote is taken,
        what it did not write is not registered). Each chunk's works get their missing entries
        (`add_missing_due`, INTAKE_SLICE works at a time), then its row is deleted (a crash
        before that takes the chunk again: entries already written are not written twice).
        How many works were taken."""
        cql = await self._ks.ready()
        listed = await cql.run_many(("intake_list", (s, INTAKE_LIST)) for s in range(SHARDS))
        abandoned = f"{self._ks.now_us() - INTAKE_ABANDONED_US:016x}"
        ready = sorted(
            (row.chunk, s)
            for s, rows in enumerate(listed)
            for row in rows
            if row.sealed or row.chunk < abandoned
        )
        taken = 0
        for name, part in ready:  # a chunk's works read only when taken: the listing holds
            if taken >= limit:  # no ids, however many works wait in the intake
                break
            rows = await cql.run("intake_works", (part, name))
            ids = list(rows[0].works or ()) if rows else []
            for start in range(0, len(ids), INTAKE_SLICE):
                found = await self.get_works(ids[start : start + INTAKE_SLICE])
                await self._due.add_missing_due(plan(list(found.values())))
            await cql.run("intake_drop", (part, name))
            taken += len(ids)
        return taken

    async def _owners(self, idents: Sequence[Identifier]) -> dict[Identifier, str]:
        """The work each of `idents` is registered to, for those that are: one `IN` read per
        id type and group of partitions."""
        by_type: dict[IdType, list[str]] = {}
        for ident in dict.fromkeys(idents):
            by_type.setdefault(ident.type, []).append(ident.value)
        out: dict[Identifier, str] = {}
        for id_type, values in by_type.items():
            rows = await self._ks.read_in("id_get", "ids_in", values, id_type.value)
            out.update((Identifier(id_type, r.value), r.work_id) for r in rows)
        return out

    async def _schedule_registered(self, done: Sequence[Registration], schedule: Schedule) -> None:
        """The due entries the registered works lack. A work this call created has no entry
        yet (it won its identifier's claim), so only known works' positions are read."""
        final = {r.work.work_id: r.work for r in done}  # the last merge of each work
        created = {r.work.work_id for r in done if r.created}
        plan: dict[str, list[DueEntry]] = {}
        handoff = Handoff()
        for work in final.values():
            for source, entry in schedule(work).items():
                plan.setdefault(source, []).append(entry)
                if work.work_id in created:
                    handoff.positions[(work.work_id, source)] = None
        await self._due.write_rounds([], {}, plan, handoff, only_missing=True)

    async def _register_one(
        self, cql: CqlSession, work: Work, owners: Mapping[Identifier, str] | None = None
    ) -> Registration:
        """Register one work with claims; `owners`: its identifiers' works as `_owners` read
        them (good for the first of a chain no other work of the call names), else read here."""
        idents = work.identifiers()
        if owners is None:
            mapped = await cql.run_many(("id_get", (i.type.value, i.value)) for i in idents)
            owners = {i: rows[0].work_id for i, rows in zip(idents, mapped, strict=True) if rows}
        existing_id = next((owners[i] for i in idents if i in owners), None)
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
                        ("work_insert", [work.work_id, *work_values(work), self._ks.clock()]),
                        ("index_insert", (shard(work.work_id), work.work_id)),
                        *terms_calls([work]),
                        *by_date,
                    ]
                )
                await cql.run("count_add", (1, shard(work.work_id)))  # after the rows exist
                self._issued.written(by_date)
                await self._claim_ids(cql, work, skip={primary} if primary else set())
                return Registration(work, created=True)
        assert existing_id is not None
        rows = await cql.run("work_get", (existing_id,))
        existing = work_of(rows[0]) if rows else Work(work_id=existing_id)
        merged = existing.merged(work)
        if merged != existing or not rows:
            await cql.run_many(
                [("work_update", [*work_values(merged), merged.work_id]), *terms_calls([merged])]
            )
            await self._move_by_date(cql, {existing_id: existing.issued} if rows else {}, [merged])
        await self._claim_ids(cql, merged, skip=set(owners))
        return Registration(merged, created=False)

    async def _claim_ids(self, cql: CqlSession, work: Work, skip: set[Identifier]) -> None:
        await cql.run_many(
            ("id_claim", (i.type.value, i.value, work.work_id))
            for i in work.identifiers()
            if i not in skip
        )

    async def get_work(self, work_id: str) -> Work | None:
        """The work with this work id."""
        rows = await (await self._ks.ready()).run("work_get", (work_id,))
        return work_of(rows[0]) if rows else None

    async def get_works(self, work_ids: Sequence[str]) -> dict[str, Work]:
        """The works among `work_ids` that exist."""
        rows = await self._ks.read_in("work_get", "works_in", work_ids)
        return {r.work_id: work_of(r) for r in rows}

    async def find_work(self, ident: Identifier) -> Work | None:
        """The work known by `ident` (any of its DOI, PMID, PMCID)."""
        rows = await (await self._ks.ready()).run("id_get", (ident.type.value, ident.value))
        return await self.get_work(rows[0].work_id) if rows else None

    async def find_works(self, identifiers: Sequence[Identifier]) -> dict[Identifier, Work]:
        """The works known by `identifiers` (those that exist): the identifier index read
        concurrently (its partition is the identifier: no `IN` over it), then the works in
        one batched read."""
        cql = await self._ks.ready()
        wanted = list(dict.fromkeys(identifiers))
        mapped = await cql.run_many(("id_get", (i.type.value, i.value)) for i in wanted)
        ids = {i: rows[0].work_id for i, rows in zip(wanted, mapped, strict=True) if rows}
        works = await self.get_works(list(ids.values()))
        return {i: works[w] for i, w in ids.items() if w in works}

    async def update_works(self, works: Sequence[Work]) -> None:
        """Store the metadata of known works whose identifiers are unchanged (no claims)."""
        cql = await self._ks.ready()
        before = await self.get_works([w.work_id for w in works])
        await cql.run_many(
            cql.batches(("work_update", [*work_values(w), w.work_id]) for w in works)
        )
        stored = {  # as the rows now are: an update's None leaves a column unset
            w.work_id: _as_stored(w, before[w.work_id]) for w in works if w.work_id in before
        }
        await cql.run_many(cql.batches(terms_calls(stored.values())))
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

    async def list_works(self, offset: int, limit: int) -> list[Work]:
        """A page of works in work-id order (merged from the index shards)."""
        return await self._page("index_page", lambda s: (s, offset + limit), offset, limit)

    async def works_after(self, after: str | None, limit: int) -> list[Work]:
        """Up to `limit` works with ids after `after`, in id order (the index shards merged)."""
        return await self._page("index_after", lambda s: (s, after or "", limit), 0, limit)

    async def _page(self, name: str, params: Any, offset: int, limit: int) -> list[Work]:
        """Works of `name` read on every index shard, merged in id order, from `offset`."""
        cql = await self._ks.ready()
        pages = await cql.run_many((name, params(s)) for s in range(SHARDS))
        ids = sorted(r.work_id for rows in pages for r in rows)[offset : offset + limit]
        found = await self.get_works(ids)
        return [found[w] for w in ids if w in found]

    async def works_newest(self, offset: int, limit: int) -> list[Work]:
        """A page of works newest first, undated last, then by work id (works_by_issued)."""
        return await self._issued.page(await self._ks.ready(), self.get_works, offset, limit)

    async def count_works(self) -> int:
        """How many works are registered: the shards' counters (16 rows, not every work)."""
        cql = await self._ks.ready()
        return sum(int(r.works or 0) for r in await cql.run("count_all", ()))
