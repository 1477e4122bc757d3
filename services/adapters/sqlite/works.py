"""SQLite adapter of the WorkStore port: works (`works`) and the identifier index (`work_ids`);
registering with a schedule writes the works and their missing due entries in one transaction,
registering in bulk (`intake`) the works and their intake rows, which `take_intake` turns into
due entries in the scheduler's own transactions."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from operator import attrgetter
from typing import Any

from services.adapters.sqlite.bulk import insert_rows
from services.adapters.sqlite.connection import SqliteFile
from services.adapters.sqlite.due import add_missing_due_rows
from services.adapters.sqlite.search_index import index_works
from services.core.identifiers import Identifier, IdType
from services.core.ports import DueEntry, IntakePlan, Registration, Schedule
from services.core.timeutil import to_iso
from services.core.works import Work


class SqliteWorks(SqliteFile):
    """The works registry in the embedded store's file."""

    bulk_writes = True  # registration in bulk writes BULK_CHUNK works a transaction

    async def register(
        self, works: Sequence[Work], schedule: Schedule | None = None, intake: bool = False
    ) -> list[Registration]:
        """Register works; one already known by any of its ids is merged, not duplicated. The
        works (those new or changed: a known work as it is stored is not written again), their
        ids and (with `schedule`) the due entries they lack, or (with `intake`) their intake
        rows: one transaction."""
        now = to_iso(datetime.now(UTC))

        def write(conn: sqlite3.Connection) -> list[Registration]:
            out, final, changed, claims = _merge_registrations(conn, works)
            # Rows in key order: each index is then walked once, a page at a time, not
            # touched all over for every row (new ids land anywhere in it).
            changed.sort(key=attrgetter("work_id"))
            claims.sort()
            insert_rows(
                conn,
                f"INSERT INTO works ({WORK_COLUMNS}, registered_at)",
                11,
                [(*_work_row(w), now) for w in changed],
                "ON CONFLICT(work_id) DO UPDATE SET"
                " doi=excluded.doi, pmid=excluded.pmid, pmcid=excluded.pmcid,"
                " title=excluded.title, issued=excluded.issued, publisher=excluded.publisher,"
                " canonical_url=excluded.canonical_url, work_type=excluded.work_type,"
                " publisher_id=excluded.publisher_id",
            )
            insert_rows(conn, "INSERT OR IGNORE INTO work_ids", 3, claims)
            # A new work with nothing to find it by has no search row to write or replace.
            new = {r.work.work_id for r in out if r.created}
            index_works(conn, (w for w in changed if w.work_id not in new or _findable(w)))
            if intake:
                insert_rows(conn, "INSERT INTO intake (work_id)", 1, [(w,) for w in final])
            elif schedule is not None:
                add_missing_due_rows(conn, _plan(final.values(), schedule))
            return out

        return await self.run(write)

    async def take_intake(self, limit: int, plan: IntakePlan) -> int:
        """Take the `limit` oldest works of the intake: their missing entries written and their
        intake rows deleted in one transaction; how many works were taken."""

        def write(conn: sqlite3.Connection) -> int:
            rows = conn.execute(
                "SELECT seq, work_id FROM intake ORDER BY seq LIMIT ?", (limit,)
            ).fetchall()
            if not rows:
                return 0
            works = _works_by_id(conn, {w for _, w in rows})
            add_missing_due_rows(conn, plan(list(works.values())))
            conn.execute("DELETE FROM intake WHERE seq <= ?", (rows[-1][0],))
            return len(rows)

        return await self.run(write)

    async def update_works(self, works: Sequence[Work]) -> None:
        """Store the metadata of known works whose identifiers are unchanged."""

        def write(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "UPDATE works SET doi=?, pmid=?, pmcid=?, title=?, issued=?, publisher=?,"
                " canonical_url=?, work_type=?, publisher_id=? WHERE work_id=?",
                [(*_work_row(w)[1:], w.work_id) for w in works],
            )
            known = _works_by_id(conn, {w.work_id for w in works})
            index_works(conn, (w for w in works if w.work_id in known))

        await self.run(write)

    async def get_work(self, work_id: str) -> Work | None:
        """The work with this work id."""

        def read(conn: sqlite3.Connection) -> Work | None:
            row = conn.execute(
                f"SELECT {WORK_COLUMNS} FROM works WHERE work_id=?", (work_id,)
            ).fetchone()
            return work_of(row) if row else None

        return await self.run(read)

    async def find_work(self, ident: Identifier) -> Work | None:
        """The work known by `ident` (any of its DOI, PMID, PMCID)."""
        return await self.run(lambda conn: _find_any(conn, [ident]))

    async def find_works(self, idents: Sequence[Identifier]) -> dict[Identifier, Work]:
        """The works known by `idents`, by identifier (an unknown one is absent): one SELECT
        per id type and chunk of identifiers."""
        return await self.run(lambda conn: _find_each(conn, idents))

    async def list_works(self, offset: int, limit: int) -> list[Work]:
        """A page of works in work-id order."""

        def read(conn: sqlite3.Connection) -> list[Work]:
            rows = conn.execute(
                f"SELECT {WORK_COLUMNS} FROM works ORDER BY work_id LIMIT ? OFFSET ?",
                (limit, offset),
            )
            return [work_of(r) for r in rows]

        return await self.run(read)

    async def works_newest(self, offset: int, limit: int) -> list[Work]:
        """A page of works newest first, undated last, then by work id (`works_by_issued`)."""

        def read(conn: sqlite3.Connection) -> list[Work]:
            rows = conn.execute(
                f"SELECT {WORK_COLUMNS} FROM works ORDER BY issued DESC NULLS LAST, work_id"
                " LIMIT ? OFFSET ?",
                (limit, offset),
            )
            return [work_of(r) for r in rows]

        return await self.run(read)

    async def works_after(self, after: str | None, limit: int) -> list[Work]:
        """Up to `limit` works with ids after `after` (from the first if None), in id order."""

        def read(conn: sqlite3.Connection) -> list[Work]:
            rows = conn.execute(
                f"SELECT {WORK_COLUMNS} FROM works WHERE work_id > ? ORDER BY work_id LIMIT ?",
                (after or "", limit),
            )
            return [work_of(r) for r in rows]

        return await self.run(read)

    async def count_works(self) -> int:
        """How many works are registered."""
        return await self.run(
            lambda conn: int(conn.execute("SELECT count(*) FROM works").fetchone()[0])
        )

    async def get_works(self, work_ids: Sequence[str]) -> dict[str, Work]:
        """The works among `work_ids` that exist."""

        def read(conn: sqlite3.Connection) -> dict[str, Work]:
            out = {}
            for work_id in work_ids:
                row = conn.execute(
                    f"SELECT {WORK_COLUMNS} FROM works WHERE work_id=?", (work_id,)
                ).fetchone()
                if row:
                    out[work_id] = work_of(row)
            return out

        return await self.run(read)


WORK_COLUMNS = (
    "work_id, doi, pmid, pmcid, title, issued, publisher, canonical_url, work_type, publisher_id"
)


def _findable(work: Work) -> bool:
    """Whether `work` has anything the search index finds a work by."""
    return bool(work.title or work.publisher or work.publisher_id)


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


def work_of(row: Sequence[Any]) -> Work:
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
            f"SELECT {', '.join('w.' + c.strip() for c in WORK_COLUMNS.split(','))} FROM work_ids i"
            " JOIN works w ON w.work_id = i.work_id WHERE i.id_type=? AND i.value=?",
            (ident.type.value, ident.value),
        ).fetchone()
        if row:
            return work_of(row)
    return None


def _find_each(conn: sqlite3.Connection, idents: Sequence[Identifier]) -> dict[Identifier, Work]:
    by_type: dict[IdType, list[str]] = {}
    for ident in dict.fromkeys(idents):
        by_type.setdefault(ident.type, []).append(ident.value)
    cols = ", ".join("w." + c.strip() for c in WORK_COLUMNS.split(","))
    out: dict[Identifier, Work] = {}
    for id_type, values in by_type.items():
        for start in range(0, len(values), _IN_CHUNK):
            part = values[start : start + _IN_CHUNK]
            rows = conn.execute(
                f"SELECT i.value, {cols} FROM work_ids i JOIN works w ON w.work_id = i.work_id"
                f" WHERE i.id_type=? AND i.value IN ({','.join('?' * len(part))})",
                (id_type.value, *part),
            )
            out.update((Identifier(id_type, r[0]), work_of(r[1:])) for r in rows)
    return out


def _plan(works: Iterable[Work], schedule: Schedule) -> dict[str, list[DueEntry]]:
    out: dict[str, list[DueEntry]] = {}
    for work in works:
        for source, entry in schedule(work).items():
            out.setdefault(source, []).append(entry)
    return out


def _merge_registrations(
    conn: sqlite3.Connection, works: Sequence[Work]
) -> tuple[list[Registration], dict[str, Work], list[Work], list[tuple[str, str, str]]]:
    """Each work merged into the one already known by any of its ids (in the file or earlier
    in `works`), in order; the final state of every work touched, by id; those of them the
    file does not hold as they are (new or changed: the rows to write); and the id rows to
    claim. The ids are looked up in bulk; the first work to claim an id keeps it."""
    keys = [_keys(w) for w in works]
    owner = _owners(conn, {k for ks in keys for k in ks})
    stored = _works_by_id(conn, set(owner.values()))
    known = dict(stored)
    out: list[Registration] = []
    claims: list[tuple[str, str, str]] = []
    for work, ks in zip(works, keys, strict=True):
        existing = None
        for key in ks:
            if key in owner:
                existing = known.get(owner[key])
                break
        merged = existing.merged(work) if existing else work
        work_id = merged.work_id
        known[work_id] = merged
        for key in ks if merged is work else _keys(merged):
            if key not in owner:
                owner[key] = work_id
                claims.append((*key, work_id))
        out.append(Registration(merged, created=existing is None))
    final = {r.work.work_id: known[r.work.work_id] for r in out}
    changed = [w for i, w in final.items() if stored.get(i) != w]
    return out, final, changed, claims


def _keys(work: Work) -> list[tuple[str, str]]:
    """`work.identifiers()` as (id type, value) rows of `work_ids` (cheaper to make and hash)."""
    out = []
    if work.doi:
        out.append((_DOI, work.doi))
    if work.pmid:
        out.append((_PMID, work.pmid))
    if work.pmcid:
        out.append((_PMCID, work.pmcid))
    return out


_DOI, _PMID, _PMCID = IdType.DOI.value, IdType.PMID.value, IdType.PMCID.value


def _owners(conn: sqlite3.Connection, keys: set[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """The work id each of `keys` (id type, value) is registered to, for those that are."""
    out: dict[tuple[str, str], str] = {}
    by_type: dict[str, list[str]] = {}
    for id_type, value in keys:
        by_type.setdefault(id_type, []).append(value)
    for id_type, values in by_type.items():
        values.sort()  # each IN list then reads a few neighbouring pages of the index
        for start in range(0, len(values), _IN_CHUNK):
            part = values[start : start + _IN_CHUNK]
            rows = conn.execute(
                "SELECT value, work_id FROM work_ids WHERE id_type=? AND value IN"
                f" ({','.join('?' * len(part))})",
                (id_type, *part),
            )
            out.update(((id_type, v), w) for v, w in rows)
    return out


def _works_by_id(conn: sqlite3.Connection, work_ids: set[str]) -> dict[str, Work]:
    ids = sorted(work_ids)
    out: dict[str, Work] = {}
    for start in range(0, len(ids), _IN_CHUNK):
        part = ids[start : start + _IN_CHUNK]
        rows = conn.execute(
            f"SELECT {WORK_COLUMNS} FROM works WHERE work_id IN ({','.join('?' * len(part))})",
            part,
        )
        out.update((r[0], work_of(r)) for r in rows)
    return out


_IN_CHUNK = 500  # values bound in one IN (...) list (SQLite allows 32,766 variables)
