"""The SQLite search index (FTS5) and its writes, which registration and updates make in their
own transactions (services/adapters/sqlite/search.py reads it; see there).

`works_search` holds, per work, the words `services.core.search.terms` gives (title and
publisher name, already folded) and the publisher's member id in a column of its own, so a
filtered search is one index intersection. Its rowid is the work's number in `search_docs`
(an INTEGER PRIMARY KEY: stable across VACUUM). Its migration (SEARCH_MIGRATION) creates the
tables and `backfill` indexes the works already there.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence

from services.core.search import InvalidQuery, terms
from services.core.works import Work

SCHEMA = """
CREATE TABLE IF NOT EXISTS search_docs (doc INTEGER PRIMARY KEY, work_id TEXT NOT NULL UNIQUE);
CREATE VIRTUAL TABLE IF NOT EXISTS works_search USING fts5(
    terms, publisher_id, tokenize = 'unicode61 remove_diacritics 0');
"""
BACKFILL_CHUNK = 2000
_IN_CHUNK = 500  # values bound in one IN (...) list


def index_works(conn: sqlite3.Connection, works: Iterable[Work]) -> None:
    """Write the search rows of `works` (replacing what they had: an FTS5 delete of a row that
    is not there costs several inserts, so only works indexed before are deleted). A work not
    indexed before with nothing to find it by (no title, publisher or publisher id: a bare
    identifier registered in bulk) gets no row until it has."""
    rows = {w.work_id: (_terms(w), w.publisher_id or "") for w in works}
    known = _docs(conn, list(rows))
    conn.executemany("DELETE FROM works_search WHERE rowid=?", [(d,) for d in known.values()])
    new = [w for w, row in rows.items() if w not in known and row != ("", "")]
    conn.executemany("INSERT INTO search_docs (work_id) VALUES (?)", [(w,) for w in new])
    docs = {**known, **_docs(conn, new)}
    conn.executemany(
        "INSERT INTO works_search (rowid, terms, publisher_id) VALUES (?,?,?)",
        [(d, *rows[w]) for w, d in docs.items()],
    )


def _terms(work: Work) -> str:
    """The search row's words of `work` (none without a title or a publisher name)."""
    return " ".join(sorted(terms(work))) if work.title or work.publisher else ""


def _docs(conn: sqlite3.Connection, work_ids: list[str]) -> dict[str, int]:
    """The search row numbers of those of `work_ids` that have one."""
    out: dict[str, int] = {}
    for start in range(0, len(work_ids), _IN_CHUNK):
        part = work_ids[start : start + _IN_CHUNK]
        rows = conn.execute(
            f"SELECT work_id, doc FROM search_docs WHERE work_id IN ({','.join('?' * len(part))})",
            part,
        )
        out.update(rows)
    return out


def backfill(conn: sqlite3.Connection) -> None:
    """Index every work already registered (the data step of the migration adding search)."""
    after = ""
    while True:
        rows = conn.execute(
            "SELECT work_id, title, publisher, publisher_id FROM works WHERE work_id > ?"
            " ORDER BY work_id LIMIT ?",
            (after, BACKFILL_CHUNK),
        ).fetchall()
        if not rows:
            return
        index_works(conn, (Work(r[0], title=r[1], publisher=r[2], publisher_id=r[3]) for r in rows))
        after = rows[-1][0]


def match_expression(words: Sequence[str], publisher_id: str | None) -> str:
    """The FTS5 query: every word in `terms` (each a quoted string of letters and digits, so
    nothing in it is FTS syntax), and the publisher's id if given."""
    if not words:
        raise InvalidQuery("a search needs at least one word")
    for word in (*words, publisher_id or ""):
        if '"' in word:
            raise InvalidQuery("a search word cannot hold a quote")
    parts = [f'terms : "{w}"' for w in words]
    if publisher_id is not None:
        parts.append(f'publisher_id : "{publisher_id}"')
    return " AND ".join(parts)
