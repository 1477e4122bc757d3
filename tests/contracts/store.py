"""The Store contract: same calls, same answers, whichever adapter answers.

Each test takes a `store` fixture; tests/unit/test_store_contract.py runs them against
SqliteStore (it needs nothing), tests/integration/test_store_contract.py against CassandraStore
(real server, this run's own keyspace). Every test uses its own work ids and source names, so
the shared keyspace never couples tests.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from services.aggregator.service import fold
from services.core.aggregation import Aggregate
from services.core.events import FetchError, Observation, SourceEvent, Status
from services.core.identifiers import Identifier, IdType, parse_identifier
from services.core.ports import DueEntry, Store
from services.core.provenance import RawResponse
from services.core.works import Work

T0 = datetime(2026, 11, 25, 12, 0, 0, 123456, tzinfo=UTC)


def uid() -> str:
    """A short unique suffix for this test's ids."""
    return uuid.uuid4().hex[:10]


def doi_work(raw: str, **meta: object) -> Work:
    """A work registered by a DOI in any accepted spelling."""
    return Work.from_identifier(parse_identifier(raw), **meta)  # type: ignore[arg-type]


def obs(
    work_id: str,
    source: str,
    at: datetime,
    metrics: dict[str, int] | None = None,
    status: Status = Status.OK,
    events: tuple[SourceEvent, ...] = (),
) -> Observation:
    """An observation of `work_id` from `source`."""
    error = FetchError("http", "boom") if status is Status.ERROR else None
    return Observation(work_id, source, at, status, metrics or {}, events=events, error=error)


async def apply(store: Store, observations: list[Observation]) -> list[Aggregate]:
    """What the aggregator does: read states, fold, write."""
    keys = sorted({(o.work_id, o.source) for o in observations})
    results = fold(observations, await store.states(keys))
    await store.write_aggregates(results)
    return results


# -- works ----------------------------------------------------------------------------------


async def test_register_dedupes_a_doi_whatever_its_case_and_spelling(store: Store) -> None:
    """Two spellings of one DOI make one work; the second registration reports it known."""
    u = uid()
    first = await store.register([doi_work(f"10.1234/Case.{u}")])
    again = await store.register(
        [doi_work(f"https://doi.org/10.1234/CASE.{u}"), doi_work(f"doi:10.1234/case.{u}")]
    )
    assert first[0].created and first[0].work.work_id == f"10.1234/case.{u}"
    assert [(r.work.work_id, r.created) for r in again] == [(f"10.1234/case.{u}", False)] * 2


async def test_the_same_new_doi_twice_in_one_call_is_created_once(store: Store) -> None:
    """Within one call the first occurrence creates the work and the second finds it."""
    u = uid()
    results = await store.register([doi_work(f"10.1234/twice.{u}")] * 2)
    assert [r.created for r in results] == [True, False]


async def test_find_by_pmid_and_merge_into_the_known_work(store: Store) -> None:
    """A DOI work carrying a known PMID merges into that work; both ids then find it."""
    pmid = str(uuid.uuid4().int % 10**9 + 1)
    u = uid()
    await store.register([Work.from_identifier(Identifier(IdType.PMID, pmid))])
    merged = await store.register(
        [Work(work_id=f"10.1234/m.{u}", doi=f"10.1234/m.{u}", pmid=pmid, title="T")]
    )
    assert not merged[0].created
    assert merged[0].work.work_id == f"pmid:{pmid}"
    by_doi = await store.find_work(Identifier(IdType.DOI, f"10.1234/m.{u}"))
    by_pmid = await store.find_work(Identifier(IdType.PMID, pmid))
    assert by_doi == by_pmid
    assert by_pmid is not None and by_pmid.doi == f"10.1234/m.{u}" and by_pmid.title == "T"
    assert await store.find_work(Identifier(IdType.PMID, "999999999999"[:10])) is None


async def test_works_are_listed_in_id_order_and_counted(store: Store) -> None:
    """list_works pages in work-id order; count_works counts every registration once."""
    u = uid()
    before = await store.count_works()
    ids = [f"10.9999/{u}.{n:03d}" for n in (5, 1, 9, 3)]
    await store.register([doi_work(i) for i in ids])
    assert await store.count_works() == before + 4
    listed = [w.work_id for w in await store.list_works(0, 100_000) if u in w.work_id]
    assert listed == sorted(ids)
    got = await store.get_works([*ids, "10.9999/missing"])
    assert sorted(got) == sorted(ids)
    assert (await store.get_work(ids[0])) == got[ids[0]]


async def test_find_works_reads_many_identifiers_at_once(store: Store) -> None:
    """find_works answers each known identifier (a DOI or a PMID, repeated or not) with its
    work, as find_work would, and leaves out the identifiers no work has."""
    u = uid()
    pmid = str(uuid.uuid4().int % 10**9 + 1)
    dois = [f"10.7777/{u}.{n}" for n in range(3)]
    await store.register([doi_work(d) for d in dois])
    await store.register([Work(work_id=f"10.7777/{u}.p", doi=f"10.7777/{u}.p", pmid=pmid)])
    asked = [
        *(Identifier(IdType.DOI, d) for d in dois),
        Identifier(IdType.PMID, pmid),
        Identifier(IdType.DOI, dois[0]),
        Identifier(IdType.DOI, f"10.7777/{u}.missing"),
        Identifier(IdType.PMID, "999999999999"[:10]),
    ]
    found = await store.find_works(asked)
    assert sorted(found, key=str) == sorted(set(asked[:5]), key=str)
    for ident, work in found.items():
        assert work == await store.find_work(ident)
    assert found[Identifier(IdType.PMID, pmid)].work_id == f"10.7777/{u}.p"
    assert await store.find_works([]) == {}


# -- metrics --------------------------------------------------------------------------------


async def test_states_history_and_events_round_trip(store: Store) -> None:
    """Folded observations are stored exactly (microsecond times) and read back per work."""
    w, src = f"10.1/s.{uid()}", f"src{uid()}"
    ev = SourceEvent("e1", "2026-01-01", "https://x/e1", {"title": "citing"})
    await apply(store, [obs(w, src, T0, {"citations": 3}, events=(ev,))])
    await apply(store, [obs(w, src, T0 + timedelta(days=1), {"citations": 5}, events=(ev,))])
    state = (await store.states([(w, src), (w, "nope")]))[(w, src)]
    assert state.metrics == {"citations": 5}
    assert state.retrieved_at == T0 + timedelta(days=1)
    assert state.status is Status.OK
    assert [p.metrics for p in await store.history(w, src)] == [{"citations": 3}, {"citations": 5}]
    assert [p.day for p in await store.history(w, None)] == [T0.date(), T0.date() + timedelta(1)]
    assert await store.events(w, src) == [ev]
    assert [s.source for s in (await store.states_for([w, "10.1/none"]))[w]] == [src]


async def test_events_of_many_sources_in_one_read_are_each_source_s(store: Store) -> None:
    """`events_by_source` gives per source what `events` gives: every asked source (none
    without events), no other source's or work's events."""
    w, other, a, b, c = f"10.1/e.{uid()}", f"10.1/e.{uid()}", f"a{uid()}", f"b{uid()}", uid()
    e1, e2 = SourceEvent("e2", None, "https://x/2", {}), SourceEvent("e1", "2026-01-01")
    e3 = SourceEvent("e3", "2026-02-01", None, {"title": "t"})
    await apply(store, [obs(w, a, T0, {"c": 2}, events=(e1, e2)), obs(w, b, T0, {"c": 1})])
    await apply(store, [obs(other, a, T0, {"c": 1}, events=(e3,))])
    await apply(store, [obs(w, c, T0, {"c": 1}, events=(e3,))])  # a source not asked for
    got = await store.events_by_source(w, [a, b, "none", a])
    assert got == {s: await store.events(w, s) for s in (a, b, "none")}
    assert got[a] == [e2, e1] and got[b] == [] and got["none"] == []  # by event id
    assert await store.events_by_source(w, []) == {}


async def test_history_of_every_source_is_by_source_then_day(store: Store) -> None:
    """`history(work, None)`: each source's snapshots (every source with a state), sources in
    name order, each oldest first; no other work's; one source's alone with its name; and
    `history_of` for the sources named, the same."""
    w, other, a, b = f"10.1/h.{uid()}", f"10.1/h.{uid()}", f"a{uid()}", f"b{uid()}"
    for n, at in enumerate((T0, T0 + timedelta(days=1))):
        await apply(store, [obs(w, b, at, {"c": n}), obs(w, a, at, {"c": 10 + n})])
    await apply(store, [obs(other, a, T0 + timedelta(days=2), {"c": 5})])
    got = [(p.source, p.day, p.metrics["c"]) for p in await store.history(w, None)]
    d0, d1 = T0.date(), T0.date() + timedelta(days=1)
    assert got == [(a, d0, 10), (a, d1, 11), (b, d0, 0), (b, d1, 1)]
    assert [(p.source, p.day) for p in await store.history(w, b)] == [(b, d0), (b, d1)]
    # the same read for the sources named (no read of which sources the work has)
    assert await store.history_of(w, [b, "none", a]) == await store.history(w, None)
    assert await store.history_of(w, [b]) == await store.history(w, b)
    assert await store.history_of(w, []) == []


async def test_the_same_observation_twice_changes_nothing(store: Store) -> None:
    """Redelivery: the second fold of a stored observation is not applied and emits nothing."""
    w, src = f"10.1/r.{uid()}", f"src{uid()}"
    o = obs(w, src, T0, {"citations": 7})
    first = await apply(store, [o])
    second = await apply(store, [o])
    assert first[0].applied and first[0].changed is not None
    assert not second[0].applied and second[0].changed is None
    assert len(await store.history(w, src)) == 1


async def test_an_error_keeps_totals_and_is_summarised(store: Store) -> None:
    """A failed fetch records its error, keeps the totals, and counts in source_summary."""
    src = f"src{uid()}"
    a, b = f"10.1/e.{uid()}", f"10.1/e.{uid()}"
    await apply(store, [obs(a, src, T0, {"x": 1}), obs(b, src, T0, {"x": 2})])
    await apply(store, [obs(a, src, T0 + timedelta(hours=1), status=Status.ERROR)])
    state = (await store.states([(a, src)]))[(a, src)]
    assert state.metrics == {"x": 1} and state.status is Status.ERROR and state.error
    assert (await store.source_summary())[src] == {"works": 2, "errors": 1}


async def test_a_recovered_source_has_its_error_cleared(store: Store) -> None:
    """After an error, a successful fetch stores no error (the error is cleared, not kept)."""
    w, src = f"10.1/c.{uid()}", f"src{uid()}"
    await apply(store, [obs(w, src, T0, {"x": 1})])
    await apply(store, [obs(w, src, T0 + timedelta(hours=1), status=Status.ERROR)])
    await apply(store, [obs(w, src, T0 + timedelta(hours=2), {"x": 2})])
    state = (await store.states([(w, src)]))[(w, src)]
    assert (state.status, state.error, state.metrics) == (Status.OK, None, {"x": 2})


async def test_one_call_for_many_works_stores_each_once(store: Store) -> None:
    """A batch of 240 works (several write batches and `IN` reads): every state, history
    point and leaderboard row lands; two values of one day keep the later one."""
    src = f"src{uid()}"
    works = [f"10.1/m.{n}.{uid()}" for n in range(240)]
    observations = [obs(w, src, T0, {"x": n}) for n, w in enumerate(works)]
    observations.append(obs(works[0], src, T0 + timedelta(minutes=5), {"x": 999}))
    await apply(store, observations)
    states = await store.states([(w, src) for w in works])
    assert [states[(w, src)].metrics["x"] for w in works] == [999, *range(1, 240)]
    assert [p.metrics for p in await store.history(works[0], src)] == [{"x": 999}]
    assert (await store.top_works(src, "x", 2)) == [(works[0], 999), (works[239], 239)]
    per_work = await store.states_for(works)
    assert all(len(per_work[w]) == 1 for w in works)


async def test_update_works_stores_learned_metadata(store: Store) -> None:
    """update_works fills in metadata of known works; what was known stays."""
    work = doi_work(f"10.1234/u.{uid()}", title="Known title")
    await store.register([work])
    learned = work.merged(Work(work.work_id, publisher="ALM Press"))
    await store.update_works([learned])
    found = await store.get_works([work.work_id, "10.1/none"])
    assert found == {work.work_id: learned}
    assert learned.title == "Known title" and learned.publisher == "ALM Press"


async def test_leaderboard_follows_changing_totals(store: Store) -> None:
    """top_works ranks by the current value; a work's old value no longer counts."""
    src = f"src{uid()}"
    a, b, c = (f"10.1/t.{n}.{uid()}" for n in "abc")
    await apply(store, [obs(a, src, T0, {"x": 10}), obs(b, src, T0, {"x": 20})])
    await apply(store, [obs(c, src, T0, {"x": 0})])
    await apply(
        store,
        [
            obs(a, src, T0 + timedelta(hours=1), {"x": 25}),
            obs(a, src, T0 + timedelta(hours=2), {"x": 30}),
        ],
    )
    assert await store.top_works(src, "x", 10) == [(a, 30), (b, 20), (c, 0)]
    assert await store.top_works(src, "x", 1) == [(a, 30)]


async def test_raw_responses_newest_first_and_expired_ones_gone(store: Store) -> None:
    """Raw responses are found per work, newest first; one older than the TTL is not kept."""
    src, w = f"src{uid()}", f"10.1/raw.{uid()}"
    now = datetime.now(UTC)
    raws = [
        RawResponse(src, now - timedelta(minutes=2), "https://u/1", 200, '{"a":1}', (w, "x")),
        RawResponse(src, now - timedelta(minutes=1), "https://u/2", 404, "{}", (w,)),
        RawResponse(src, now - timedelta(days=8), "https://u/old", 200, "{}", (w,)),
        RawResponse(src, now - timedelta(days=3), "https://u/3d", 200, "{}", ("y", w)),
        RawResponse(src, now - timedelta(minutes=3), "https://u/y", 200, "{}", ("y",)),
    ]
    await store.add_raw_responses(raws)
    got = await store.raw_responses(src, w, 10)
    assert [(r.url, r.status) for r in got] == [
        ("https://u/2", 404),
        ("https://u/1", 200),
        ("https://u/3d", 200),
    ]
    assert [r.url for r in await store.raw_responses(src, "x", 10)] == ["https://u/1"]
    assert got[1].work_ids == (w, "x") and got[1].body == '{"a":1}'
    assert got[1].retrieved_at == raws[0].retrieved_at
    assert len(await store.raw_responses(src, w, 1)) == 1


# -- due-index ------------------------------------------------------------------------------


async def test_set_due_replaces_the_previous_entry(store: Store) -> None:
    """A work has one due entry per source: setting it again moves it (across hours too)."""
    src = f"src{uid()}"
    w = f"10.1/d.{uid()}"
    await store.set_due(src, [DueEntry(w, T0 - timedelta(hours=5))])
    await store.set_due(src, [DueEntry(w, T0 - timedelta(minutes=1), attempt=2)])
    assert await store.due(src, T0, 10) == [DueEntry(w, T0 - timedelta(minutes=1), 2)]
    await store.set_due(src, [DueEntry(w, T0 + timedelta(days=3))])
    assert await store.due(src, T0, 10) == []
    assert await store.due(src, T0 + timedelta(days=3), 10) == [
        DueEntry(w, T0 + timedelta(days=3), 1)
    ]


async def test_due_stored_with_the_states_replaces_the_previous_entry(store: Store) -> None:
    """write_aggregates(items, due) sets the next due time as set_due would: the entry set
    before (registration, a lease) is replaced, and the state is stored."""
    src = f"src{uid()}"
    fresh, known = f"10.1/ws.{uid()}", f"10.1/ws.{uid()}"
    await store.set_due(src, [DueEntry(known, T0 - timedelta(hours=2))])  # e.g. a lease
    results = fold(
        [obs(fresh, src, T0, {"citations": 1}), obs(known, src, T0, {"citations": 2})],
        await store.states([(fresh, src), (known, src)]),
    )
    nxt = {src: [DueEntry(fresh, T0 + timedelta(days=1)), DueEntry(known, T0 + timedelta(days=2))]}
    await store.write_aggregates(results, nxt)
    assert await store.due(src, T0, 10) == []  # the lease is gone
    later = await store.due(src, T0 + timedelta(days=3), 10)
    assert later == [
        DueEntry(fresh, T0 + timedelta(days=1)),
        DueEntry(known, T0 + timedelta(days=2)),
    ]
    states = await store.states([(fresh, src), (known, src)])
    assert {k: s.metrics for k, s in states.items()} == {
        (fresh, src): {"citations": 1},
        (known, src): {"citations": 2},
    }


async def test_a_due_entry_alone_is_no_state(store: Store) -> None:
    """A work due from a source it was never refreshed from has no state there: not in
    states, states_for, history or the per-source summary."""
    src = f"src{uid()}"
    w = f"10.1/alone.{uid()}"
    await store.set_due(src, [DueEntry(w, T0)])
    assert await store.states([(w, src)]) == {}
    assert await store.states_for([w]) == {w: []}
    assert await store.history(w, None) == []
    assert src not in await store.source_summary()
    assert await store.due(src, T0, 10) == [DueEntry(w, T0)]


async def test_due_returns_only_due_entries_earliest_first(store: Store) -> None:
    """Only entries at or before `now`, earliest first, at most `limit`; future ones wait."""
    src = f"src{uid()}"
    due_now = [DueEntry(f"10.1/n.{i}.{uid()}", T0 - timedelta(hours=i * 7)) for i in range(5)]
    later = [DueEntry(f"10.1/l.{i}.{uid()}", T0 + timedelta(hours=1 + i)) for i in range(50)]
    await store.set_due(src, later + due_now)
    got = await store.due(src, T0, 100)
    assert got == sorted(due_now, key=lambda e: e.at)
    assert await store.due(src, T0, 2) == sorted(due_now, key=lambda e: e.at)[:2]
    assert await store.due(f"src{uid()}", T0, 10) == []


async def test_register_with_a_schedule_writes_the_entries_a_work_lacks(store: Store) -> None:
    """Registering with a schedule leaves the work due from each source it names; registering
    the known work again keeps an entry it has (here a lease) and adds one it lacks."""
    a, b, c = (f"src{uid()}" for _ in range(3))
    w = f"10.1234/sched.{uid()}"
    first = await store.register(
        [doi_work(w)], lambda work: {a: DueEntry(work.work_id, T0), b: DueEntry(work.work_id, T0)}
    )
    assert first[0].created
    assert await store.due(a, T0, 10) == [DueEntry(w, T0)]
    assert await store.due(b, T0, 10) == [DueEntry(w, T0)]
    lease = DueEntry(w, T0 + timedelta(hours=1), leased=True)
    await store.set_due(a, [lease])

    later = T0 + timedelta(minutes=5)
    again = await store.register(
        [doi_work(w.upper())],
        lambda work: {a: DueEntry(work.work_id, later), c: DueEntry(work.work_id, later)},
    )

    assert not again[0].created
    assert await store.due(a, T0 + timedelta(hours=2), 10) == [lease]
    assert await store.due(c, later, 10) == [DueEntry(w, later)]


async def test_add_missing_due_adds_only_what_is_missing(store: Store) -> None:
    """Entries are added where a work has none from the source; existing ones stay."""
    a, b = f"src{uid()}", f"src{uid()}"
    have, lack = f"10.1/have.{uid()}", f"10.1/lack.{uid()}"
    await store.set_due(a, [DueEntry(have, T0 + timedelta(days=2))])

    added = await store.add_missing_due(
        {a: [DueEntry(have, T0), DueEntry(lack, T0)], b: [DueEntry(have, T0)]}
    )

    assert added == 2
    assert await store.due(a, T0 + timedelta(days=3), 10) == [
        DueEntry(lack, T0),
        DueEntry(have, T0 + timedelta(days=2)),
    ]
    assert await store.due(b, T0, 10) == [DueEntry(have, T0)]
    assert await store.add_missing_due({a: [DueEntry(lack, T0 + timedelta(days=1))]}) == 0


async def test_release_leases_makes_the_leases_running_out_soon_due_now(store: Store) -> None:
    """Leases that run out within the window become due now (attempt kept); a later lease and
    plain entries stay as they are."""
    src = f"src{uid()}"
    soon, far, plain = (f"10.1/lease.{n}.{uid()}" for n in range(3))
    now = datetime.now(UTC)
    await store.set_due(
        src,
        [
            DueEntry(soon, now + timedelta(minutes=50), 3, leased=True),
            DueEntry(far, now + timedelta(hours=5), leased=True),
            DueEntry(plain, now + timedelta(minutes=10)),
        ],
    )

    released = await store.release_leases(now, timedelta(hours=1))

    assert released >= 1  # the keyspace is shared: other tests' leases may go too
    assert await store.due(src, now, 10) == [DueEntry(soon, now, 3)]
    assert await store.due(src, now + timedelta(hours=6), 10) == [
        DueEntry(soon, now, 3),
        DueEntry(plain, now + timedelta(minutes=10)),
        DueEntry(far, now + timedelta(hours=5), leased=True),
    ]


async def test_works_after_pages_through_every_work_in_id_order(store: Store) -> None:
    """Keyset pages after a given id: in id order, none repeated, none skipped."""
    u = uid()
    ids = sorted(f"10.1234/page.{u}.{n:02d}" for n in range(23))
    await store.register([doi_work(i) for i in ids])

    seen, after = [], f"10.1234/page.{u}."
    while page := [w.work_id for w in await store.works_after(after, 10) if u in w.work_id]:
        seen += page
        after = page[-1]

    assert seen == ids
