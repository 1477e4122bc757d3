"""The intake contract: bulk registration (`register(..., intake=True)`) and the scheduler's
`take_intake`, the same whichever store answers. tests/unit/test_intake.py runs it against
SqliteStore, tests/integration/test_intake.py against the session's CassandraStore (each test
with sources of its own; a take may also take other tests' works, so only this test's works
are looked at)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta

from services.core.identifiers import Identifier, IdType
from services.core.ports import DueEntry, IntakePlan, Store
from services.core.works import Work
from tests.contracts.store import T0, doi_work, uid


def planner(*sources: str) -> tuple[IntakePlan, list[str]]:
    """A plan due at T0 from `sources`, and the work ids it was asked for, in order."""
    seen: list[str] = []

    def plan(works: Sequence[Work]) -> Mapping[str, Sequence[DueEntry]]:
        seen.extend(w.work_id for w in works)
        return {s: [DueEntry(w.work_id, T0) for w in works] for s in sources}

    return plan, seen


async def take_all(store: Store, plan: IntakePlan) -> int:
    """Take the intake until it is empty; how many works were taken."""
    total = 0
    while taken := await store.take_intake(1000, plan):
        total += taken
    return total


async def test_bulk_registration_queues_works_and_the_intake_schedules_them(
    store: Store,
) -> None:
    """Works registered in bulk are stored and counted but not due; taking the intake makes
    each due from every source of the plan, once: a second take finds none of them."""
    a, b = f"src{uid()}", f"src{uid()}"
    ids = [f"10.1234/bulk.{uid()}.{n}" for n in range(30)]
    before = await store.count_works()

    done = await store.register([doi_work(i) for i in ids], intake=True)

    assert [r.work.work_id for r in done] == ids and all(r.created for r in done)
    assert await store.count_works() == before + 30
    assert await store.due(a, T0 + timedelta(days=1), 100) == []
    plan, seen = planner(a, b)
    assert await take_all(store, plan) >= 30
    assert set(ids) <= set(seen)
    for source in (a, b):
        assert sorted(e.work_id for e in await store.due(source, T0, 100)) == sorted(ids)
    plan_again, seen_again = planner(a, b)
    await take_all(store, plan_again)
    assert not set(ids) & set(seen_again)


async def test_the_intake_keeps_the_entries_a_known_work_has(store: Store) -> None:
    """A known work registered again in bulk is queued again, and its take adds only the
    entries it lacks: a lease it holds stays."""
    a, b = f"src{uid()}", f"src{uid()}"
    w = f"10.1234/known.{uid()}"
    await store.register([doi_work(w)])
    lease = DueEntry(w, T0 + timedelta(hours=1), leased=True)
    await store.set_due(a, [lease])

    again = await store.register([doi_work(w.upper())], intake=True)
    await take_all(store, planner(a, b)[0])

    assert not again[0].created
    assert await store.due(a, T0 + timedelta(hours=2), 10) == [lease]
    assert await store.due(b, T0, 10) == [DueEntry(w, T0)]


async def test_the_intake_schedules_a_merged_work_by_its_own_id(store: Store) -> None:
    """A DOI registered in bulk with a PMID that names a known work merges into that work, and
    the intake schedules the known work (its id), not a work of the DOI's."""
    a = f"src{uid()}"
    pmid, doi = str(int(uid(), 16) % 10**8), f"10.1234/merge.{uid()}"
    first = await store.register([Work.from_identifier(Identifier(IdType.PMID, pmid))])
    known = first[0].work.work_id

    merged = await store.register([Work(doi, doi=doi, pmid=pmid)], intake=True)
    plan, seen = planner(a)
    await take_all(store, plan)

    assert merged[0].work.work_id == known and not merged[0].created
    assert known in seen and doi not in seen
    assert [e.work_id for e in await store.due(a, T0, 10)] == [known]
    assert (await store.find_work(Identifier(IdType.DOI, doi))) == merged[0].work


async def test_new_works_of_one_identifier_are_found_by_it_and_listed(store: Store) -> None:
    """New works known by one DOI each (registered without a claim where a store can) are
    found by their DOI in any spelling, listed after their predecessors, and registering them
    again finds them known."""
    ids = sorted(f"10.1234/one.{uid()}.{n}" for n in range(12))

    done = await store.register([doi_work(i.upper()) for i in ids])
    again = await store.register([doi_work(f"https://doi.org/{i}") for i in ids])

    assert all(r.created for r in done) and not any(r.created for r in again)
    found = await store.find_works([Identifier(IdType.DOI, i) for i in ids])
    assert {w.work_id for w in found.values()} == set(ids)
    listed = await store.works_after(ids[0][:-2], 1000)
    assert set(ids) <= {w.work_id for w in listed}
