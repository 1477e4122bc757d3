"""The WorkSearch port in Cassandra: `works.title_terms` (a set of folded words) under a
storage-attached index (migration 013).

A search is one `SELECT ... WHERE title_terms CONTAINS ? AND ...` (one per word, which SAI
intersects; `publisher_id = ?` under its own SAI index for the filter), in token order, and the
next page starts after the last work's token (`token(work_id) > token(?)`): the cursor is that
work's id, and a deep page reads what the first does. Works' terms are written with their rows
(search_terms.py), which also backfills the works registered before.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from services.adapters.cassandra.keyspace import Keyspace
from services.core.search import MAX_WORDS, InvalidQuery
from services.core.works import Work

WorkOf = Callable[[Any], Work]


def _statement(columns: str, words: int, publisher: bool, after: bool) -> str:
    where = ["title_terms CONTAINS ?"] * words
    if publisher:
        where.append("publisher_id = ?")
    if after:
        where.append("token(work_id) > token(?)")
    return f"SELECT {columns} FROM works WHERE {' AND '.join(where)} LIMIT ?"


class CassandraSearch:
    """Searching the works by their terms."""

    def __init__(self, keyspace: Keyspace, columns: str, work_of: WorkOf) -> None:
        self._ks = keyspace
        self._columns = columns
        self._work_of = work_of
        self._prepared: set[str] = set()  # the query shapes prepared so far (40 at most)

    async def search_works(
        self, words: Sequence[str], after: str | None, limit: int, publisher_id: str | None = None
    ) -> tuple[list[Work], str | None]:
        """A page of the works having every word (and the publisher), in token order, and the
        next page's cursor (the last work's id; None at the end)."""
        if not words or len(words) > MAX_WORDS:
            raise InvalidQuery(f"a search takes 1 to {MAX_WORDS} words, got {len(words)}")
        cql = await self._ks.ready()
        name = f"search_{len(words)}_{int(publisher_id is not None)}_{int(after is not None)}"
        if name not in self._prepared:
            shape = _statement(self._columns, len(words), publisher_id is not None, bool(after))
            await cql.prepare({name: shape})
            self._prepared.add(name)
        params: list[object] = list(words)
        params += [publisher_id] if publisher_id is not None else []
        params += [after] if after is not None else []
        rows = await cql.run(name, [*params, limit])
        works = [self._work_of(r) for r in rows]
        return works, works[-1].work_id if len(works) == limit else None
