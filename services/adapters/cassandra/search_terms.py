"""The search terms of works in Cassandra (`works.title_terms`, migration 013): the writes that
go with a work's row, and the backfill of the works registered before (search.py reads them)."""

from __future__ import annotations

from collections.abc import Iterable

from services.adapters.cassandra.session import CqlSession
from services.core.search import terms
from services.core.works import Work

MIGRATION = 13  # 013_work_search.cql, then `backfill`
TERMS_SET = "search_terms_set"
STATEMENTS: dict[str, str] = {
    TERMS_SET: "UPDATE works SET title_terms=? WHERE work_id=?",
}


def terms_calls(works: Iterable[Work]) -> list[tuple[str, list[object]]]:
    """The writes of `works`' search terms (an empty set clears them)."""
    return [(TERMS_SET, [terms(w), w.work_id]) for w in works]


async def backfill(cql: CqlSession) -> None:
    """Migration 013: the terms of every registered work (upserts: a rerun writes them again)."""
    await cql.prepare({**STATEMENTS, "search_all": "SELECT work_id, title, publisher FROM works"})
    async for rows in cql.pages(cql.stmt("search_all"), (), fetch_size=5000):
        calls = terms_calls(Work(r.work_id, title=r.title, publisher=r.publisher) for r in rows)
        await cql.run_many(cql.batches(calls))
