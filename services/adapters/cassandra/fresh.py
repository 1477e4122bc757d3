"""New works known by one identifier each, written without a claim (see works.py's module doc):
which works of a call qualify (`split`), and their writes (`write_fresh`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cassandra.query import UNSET_VALUE

from services.adapters.cassandra.issued import IssuedIndex
from services.adapters.cassandra.rows import shard, unset
from services.adapters.cassandra.session import Call, CqlSession
from services.core.identifiers import Identifier
from services.core.search import terms
from services.core.works import Work


def split(
    works: Sequence[Work], owner: Mapping[Identifier, str]
) -> tuple[list[int], dict[str, list[int]]]:
    """The works of a call that can be written without a claim (their only identifier known
    to no one, and not named by another work of the call), and the others by work id."""
    named = Counter(i for w in works for i in w.identifiers())
    twice = Counter(w.work_id for w in works)
    fresh: list[int] = []
    by_id: dict[str, list[int]] = {}
    for index, work in enumerate(works):
        idents = work.identifiers()
        if (
            len(idents) == 1
            and idents[0] not in owner
            and named[idents[0]] == 1
            and twice[work.work_id] == 1
            and work.work_id == idents[0].work_id
        ):
            fresh.append(index)
        else:
            by_id.setdefault(work.work_id, []).append(index)
    return fresh, by_id


def work_values(work: Work) -> list[Any]:
    """A work's columns after its id, as `works` statements bind them (None left unset)."""
    meta = (work.title, work.issued, work.publisher, work.canonical_url, work.type)
    return [unset(v) for v in (work.doi, work.pmid, work.pmcid, *meta, work.publisher_id)]


async def write_fresh(
    cql: CqlSession, issued: IssuedIndex, clock: Callable[[], Any], works: Sequence[Work]
) -> None:
    """Write new works of `split`'s first kind: their rows (the work with its search terms,
    its index and date rows), then their identifiers, then the shard counters (a crash in
    between leaves rows that registering again completes, or a count one short)."""
    if not works:
        return
    by_date = issued.puts(works)
    rows: list[Call] = []
    at = clock()
    for work in works:
        # No terms (a bare identifier) are left unset: a new work has none to replace, and an
        # empty set would be written as a tombstone on every row.
        found = terms(work) or UNSET_VALUE
        rows.append(("work_insert_terms", [work.work_id, *work_values(work), found, at]))
        rows.append(("index_insert", (shard(work.work_id), work.work_id)))
    await cql.run_many(cql.batches([*rows, *by_date]))
    issued.written(by_date)
    ids = [(i.type.value, i.value, w.work_id) for w in works for i in w.identifiers()]
    await cql.run_many(cql.batches(("id_put", i) for i in ids))
    counts = Counter(shard(w.work_id) for w in works)
    await cql.run_many(("count_add", (n, s)) for s, n in sorted(counts.items()))
