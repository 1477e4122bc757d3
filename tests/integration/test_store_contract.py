"""The Store contract, run against SqliteStore and CassandraStore: same calls, same answers.

The SQLite case needs nothing; the Cassandra case is an integration test (real server, this
run's own keyspace). Every test uses its own work ids and source names, so the shared keyspace
never couples tests.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cassandra.query import UNSET_VALUE, ValueSequence

from services.adapters.cassandra import CassandraStore
from services.adapters.cassandra.batching import BATCH_SETTINGS, BatchLimits
from services.adapters.sqlite_store import SqliteStore
from services.aggregator.service import fold
from services.core.aggregation import Aggregate
from services.core.events import FetchError, Observation, SourceEvent, Status
from services.core.identifiers import Identifier, IdType, parse_identifier
from services.core.ports import DueEntry, Handoff, RawResponse, Store
from services.core.works import Work
from tests.integration.conftest import Infra

T0 = datetime(2026, 11, 25, 12, 0, 0, 123456, tzinfo=UTC)


@pytest.fixture(
    params=["sqlite", pytest.param("cassandra", marks=pytest.mark.integration)],
)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """Each Store adapter in turn."""
    if request.param == "sqlite":
        sqlite = SqliteStore(tmp_path / "alm.sqlite")
        await sqlite.migrate()
        yield sqlite
        await sqlite.close()
    else:
        yield request.getfixturevalue("cassandra_store")


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


# -- Cassandra specifics --------------------------------------------------------------------

pytest_cassandra = pytest.mark.integration


@pytest_cassandra
async def test_migrations_are_recorded_and_rerun_is_a_no_op(
    cassandra_store: CassandraStore,
) -> None:
    """Every CQL file is applied once and recorded in schema_migrations; migrate() again is
    harmless."""
    await cassandra_store.migrate()
    rows = await cassandra_store._cql.query("SELECT version, name FROM schema_migrations")
    versions = sorted((r.version, r.name) for r in rows)
    assert versions[:2] == [(1, "initial"), (2, "source_status")]


@pytest_cassandra
async def test_migration_004_moves_due_lookup_into_the_states(
    infra: Infra, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A keyspace from before 004 keeps every due entry: the positions in due_lookup are copied
    into source_totals, due_lookup is dropped, and a store refuses a keyspace not migrated."""
    from services.adapters.cassandra import migrations, session

    keyspace = f"{infra.keyspace}_m{uid()[:6]}"
    old = CassandraStore([infra.cassandra_host], infra.cassandra_port, keyspace)
    every = migrations.migration_files()
    monkeypatch.setattr(migrations, "migration_files", lambda: [m for m in every if m[0] < 4])

    async def as_before_004() -> Any:  # the code of then prepared no statement on due_at
        return old._cql

    monkeypatch.setattr(old, "_ready", as_before_004)
    await old.migrate()
    cql = old._cql
    src = f"src{uid()}"
    entries = [DueEntry(f"10.1/m.{i}.{uid()}", T0 - timedelta(hours=i)) for i in range(3)]
    for e in entries:
        at = int(e.at.timestamp() * 1_000_000)
        await cql.query(
            "INSERT INTO due (source, bucket, at, work_id, attempt) VALUES (%s, %s, %s, %s, 1)",
            (src, at // 3_600_000_000, at, e.work_id),
        )
        await cql.query(
            "INSERT INTO due_lookup (source, work_id, bucket, at, attempt)"
            " VALUES (%s, %s, %s, %s, 1)",
            (src, e.work_id, at // 3_600_000_000, at),
        )
        await cql.query(
            "INSERT INTO due_buckets (source, bucket) VALUES (%s, %s)", (src, at // 3_600_000_000)
        )
    await old.close()
    monkeypatch.undo()
    with pytest.raises(session.SchemaMissing, match=r"004.*alm db migrate"):
        await CassandraStore([infra.cassandra_host], infra.cassandra_port, keyspace).due(
            src, T0, 10
        )
    new = CassandraStore([infra.cassandra_host], infra.cassandra_port, keyspace)
    try:
        await new.migrate()
        assert await new.due(src, T0, 10) == sorted(entries, key=lambda e: e.at)
        tables = await new._cql.query(
            "SELECT table_name FROM system_schema.tables WHERE keyspace_name=%s",
            (keyspace,),
            keyspace=None,
        )
        assert "due_lookup" not in {r.table_name for r in tables}
        assert await new.states([(e.work_id, src) for e in entries]) == {}
    finally:
        await new._cql.query(f"DROP KEYSPACE IF EXISTS {keyspace}", keyspace=None)
        await new.close()


@pytest_cassandra
async def test_a_position_read_before_another_process_moved_it_leaves_nothing_due_twice(
    cassandra_store: CassandraStore, infra: Infra
) -> None:
    """The aggregator hands the position its state read saw to its write (Handoff); if the
    scheduler moves the entry in between, the row it wrote is no longer the position and is
    dropped when scanned, so the work is due once, at the aggregator's time."""
    src, w = f"src{uid()}", f"10.1/race.{uid()}"
    scheduler = CassandraStore([infra.cassandra_host], infra.cassandra_port, infra.keyspace)
    try:
        await scheduler.set_due(src, [DueEntry(w, T0 - timedelta(hours=3))])
        handoff = Handoff()
        states = await cassandra_store.states([(w, src)], handoff)
        assert handoff.positions  # the position read, for the write
        results = fold([obs(w, src, T0, {"citations": 4})], states)
        await scheduler.set_due(src, [DueEntry(w, T0 - timedelta(hours=1))])  # in between
        await cassandra_store.write_aggregates(
            results, {src: [DueEntry(w, T0 - timedelta(minutes=5))]}, handoff
        )
        assert not handoff.positions  # taken back by the write
        assert await scheduler.due(src, T0, 10) == [DueEntry(w, T0 - timedelta(minutes=5))]
        assert await cassandra_store.due(src, T0, 10) == [DueEntry(w, T0 - timedelta(minutes=5))]
    finally:
        await scheduler.close()


@pytest_cassandra
async def test_an_hour_marker_whose_write_failed_is_written_again(
    cassandra_store: CassandraStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store skips rewriting an hour's marker it wrote before; one whose write failed is
    not taken as written, so the retried entry is still found by the scan."""
    src, w = f"src{uid()}", f"10.1/mark.{uid()}"
    now = datetime.now(UTC)
    cql = cassandra_store._cql
    real = cql.run_many

    seen = []

    async def down(calls: Any) -> Any:  # the position read goes through, the writes fail
        seen.append(calls)
        if len(seen) > 1:
            raise ConnectionError("Cassandra unreachable")
        return await real(calls)

    monkeypatch.setattr(cql, "run_many", down)
    with pytest.raises(ConnectionError):
        await cassandra_store.set_due(src, [DueEntry(w, now)])
    monkeypatch.setattr(cql, "run_many", real)
    await cassandra_store.set_due(src, [DueEntry(w, now)])
    assert await cassandra_store.due(src, now + timedelta(seconds=1), 10) == [DueEntry(w, now)]


@pytest_cassandra
async def test_raw_responses_carry_the_remaining_ttl(cassandra_store: CassandraStore) -> None:
    """A raw response expires raw_ttl after it was retrieved, not after it was written."""
    src, w = f"src{uid()}", f"10.1/ttl.{uid()}"
    at = datetime.now(UTC) - timedelta(days=2)
    await cassandra_store.add_raw_responses([RawResponse(src, at, "https://u/t", 200, "{}", (w,))])
    rows = await cassandra_store._cql.query(
        "SELECT TTL(body) AS ttl FROM raw_responses WHERE source=%s AND day=%s",
        (src, at.date()),
    )
    assert len(rows) == 1
    assert 5 * 86400 - 120 < rows[0].ttl <= 5 * 86400


@pytest_cassandra
async def test_due_scan_drops_stale_rows_and_emptied_past_hours(
    cassandra_store: CassandraStore,
) -> None:
    """A row left behind (not its work's current entry, written minutes ago) is never returned
    and is deleted; an hour emptied in the past stops being scanned; the hour holding the entry
    stays."""
    src, w = f"src{uid()}", f"10.1/stale.{uid()}"
    cql = cassandra_store._cql
    now = datetime.now(UTC)
    past = now - timedelta(hours=3)
    await cassandra_store.set_due(src, [DueEntry(w, now - timedelta(seconds=1))])
    stale_us = int(past.timestamp() * 1_000_000)
    written = int((now - timedelta(minutes=2)).timestamp() * 1_000_000)  # a crash's leftover
    await cql.query(
        "INSERT INTO due (source, bucket, at, work_id, attempt) VALUES (%s, %s, %s, %s, 1)"
        " USING TIMESTAMP %s",
        (src, stale_us // 3_600_000_000, stale_us, w, written),
    )
    await cql.query(
        "INSERT INTO due_buckets (source, bucket) VALUES (%s, %s)",
        (src, stale_us // 3_600_000_000),
    )
    assert [e.work_id for e in await cassandra_store.due(src, now, 10)] == [w]
    assert await cassandra_store.due(src, now, 10) == await cassandra_store.due(src, now, 10)
    left = await cql.query("SELECT bucket FROM due_buckets WHERE source=%s", (src,))
    assert [r.bucket for r in left] == [int(now.timestamp() - 1) // 3600]
    stale = await cql.query(
        "SELECT * FROM due WHERE source=%s AND bucket=%s", (src, stale_us // 3_600_000_000)
    )
    assert stale == []


@pytest_cassandra
async def test_a_due_row_whose_position_is_being_written_is_kept(
    cassandra_store: CassandraStore,
) -> None:
    """set_due writes the new row, then the work's position: a scan in between (the
    scheduler's tick, while its intake or the aggregator sets a due time) neither hands the row
    out nor deletes it, and once the position is written the work is due. Before, the scan took
    the row for a stale one and deleted it: the work was never due again."""
    src, w = f"src{uid()}", f"10.1/race.{uid()}"
    cql = await cassandra_store._ready()
    at = int((datetime.now(UTC) - timedelta(seconds=5)).timestamp() * 1_000_000)
    await cql.run("due_put", (src, at // 3_600_000_000, at, w, 1))  # set_due's first round
    await cql.run("bucket_put", (src, at // 3_600_000_000))
    assert await cassandra_store.due(src, datetime.now(UTC), 10) == []  # no position yet
    await cql.run("position_put", (at, 1, w, src))  # its second round
    assert [e.work_id for e in await cassandra_store.due(src, datetime.now(UTC), 10)] == [w]


@pytest_cassandra
async def test_due_scan_reads_only_what_is_due(
    cassandra_store: CassandraStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The scan's cost follows the due entries, not the index: rows read stay the same whether
    300 or 0 entries wait in future hours."""
    cql = cassandra_store._cql
    read: list[int] = []
    real_run, real_many, real_pages = cql.run, cql.run_many, cql.pages

    async def run(name: str, params: Sequence[Any]) -> list[Any]:
        rows = await real_run(name, params)
        read.append(len(rows))
        return rows

    async def run_many(calls: Iterable[tuple[str, Sequence[Any]]]) -> list[list[Any]]:
        results = await real_many(calls)
        read.extend(len(r) for r in results)
        return results

    async def pages(*args: Any, **kwargs: Any) -> AsyncIterator[list[Any]]:
        async for page in real_pages(*args, **kwargs):
            read.append(len(page))
            yield page

    async def rows_read(src: str) -> tuple[int, list[DueEntry]]:
        monkeypatch.setattr(cql, "run", run)
        monkeypatch.setattr(cql, "run_many", run_many)
        monkeypatch.setattr(cql, "pages", pages)
        read.clear()
        got = await cassandra_store.due(src, T0, 100)
        monkeypatch.undo()
        return sum(read), got

    now_due = [DueEntry(f"10.1/o.{i}.{uid()}", T0 - timedelta(minutes=i)) for i in range(3)]
    crowded, empty = f"src{uid()}", f"src{uid()}"
    later = [DueEntry(f"10.1/f.{i}.{uid()}", T0 + timedelta(hours=1 + i % 3)) for i in range(300)]
    await cassandra_store.set_due(crowded, later + now_due)
    await cassandra_store.set_due(empty, now_due)
    crowded_reads, crowded_got = await rows_read(crowded)
    empty_reads, empty_got = await rows_read(empty)
    assert crowded_got == empty_got == sorted(now_due, key=lambda e: e.at)
    assert crowded_reads == empty_reads <= 3 * len(now_due) + 2


@pytest_cassandra
async def test_due_scans_start_after_what_was_handed_out(
    cassandra_store: CassandraStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scan starts at the last entry the previous one handed out, so the rows leased since
    (deleted: tombstones) are not read again; an entry written at about now is still found at
    once; one written further back is found by the next whole-hour read."""
    src = f"src{uid()}"
    now = datetime.now(UTC)
    base = now.replace(minute=0, second=0, microsecond=0)
    if now - base < timedelta(minutes=20):
        base -= timedelta(hours=1)  # keep every entry of this test in one past-or-current hour
    entries = [
        DueEntry(f"10.1/h.{n:02d}.{uid()}", base + timedelta(minutes=1, seconds=n))
        for n in range(30)
    ]
    await cassandra_store.set_due(src, entries)
    handoff = Handoff()
    first = await cassandra_store.due(src, now, 10, handoff)
    assert first == entries[:10]
    bucket = int(base.timestamp()) // 3600
    scans = cassandra_store.due_index._scan_from
    assert scans[(src, bucket)][0] < int(first[0].at.timestamp() * 1e6)
    await cassandra_store.set_due(  # the scheduler leases what it was handed
        src,
        [DueEntry(e.work_id, now + timedelta(hours=2), e.attempt, True) for e in first],
        handoff,
    )
    start, _ = scans[(src, bucket)]
    assert start == int(entries[9].at.timestamp() * 1_000_000)  # not the hour's start
    assert await cassandra_store.due(src, now, 10) == entries[10:20]

    behind = DueEntry(f"10.1/behind.{uid()}", base + timedelta(seconds=1))
    recent = DueEntry(f"10.1/recent.{uid()}", datetime.now(UTC) - timedelta(seconds=5))
    await cassandra_store.set_due(src, [behind, recent])
    later = datetime.now(UTC)
    ids = [e.work_id for e in await cassandra_store.due(src, later, 50)]
    assert recent.work_id in ids and behind.work_id not in ids
    monkeypatch.setattr("services.adapters.cassandra.due.FULL_SCAN_SECONDS", 0.0)
    ids = [e.work_id for e in await cassandra_store.due(src, later, 50)]
    assert ids[0] == behind.work_id and recent.work_id in ids


@pytest_cassandra
async def test_due_entries_not_leased_are_scanned_again_however_late(
    cassandra_store: CassandraStore,
) -> None:
    """A tick whose publish fails (the broker down) leases nothing it was handed: the scans
    after it hand the same entries out again even when the bus stays down for longer than the
    scan margin, instead of passing them until the next whole-hour read (the fault suite's
    broker restart left 114 works unrefreshed that way). Once leased, they are passed."""
    src = f"src{uid()}"
    now = datetime.now(UTC)
    entries = [DueEntry(f"10.1/u.{n}.{uid()}", now - timedelta(seconds=30 - n)) for n in range(5)]
    await cassandra_store.set_due(src, entries)
    assert await cassandra_store.due(src, now, 10, Handoff()) == entries
    for minutes in (1, 3, 5):  # ticks that fail to publish, past the margin
        later = now + timedelta(minutes=minutes)
        handoff = Handoff()
        assert await cassandra_store.due(src, later, 10, handoff) == entries, minutes
    lease = later + timedelta(hours=2)
    await cassandra_store.set_due(
        src, [DueEntry(e.work_id, lease, e.attempt, True) for e in entries], handoff
    )
    assert await cassandra_store.due(src, later + timedelta(seconds=1), 10) == []


@pytest_cassandra
async def test_write_batches_follow_the_nodes_thresholds_and_draw_no_warning(
    cassandra_store: CassandraStore, caplog: pytest.LogCaptureFixture
) -> None:
    """The session sizes its batches under the node's own warning thresholds (deploy/local
    raises them above Cassandra's defaults), and a large write draws no server warning."""
    cql = cassandra_store._cql
    rows = await cql.query(
        "SELECT name, value FROM system_views.settings WHERE name IN %s",
        (ValueSequence(BATCH_SETTINGS),),
        keyspace=None,
    )
    settings = {r.name: r.value for r in rows}
    assert cql.batch_limits == BatchLimits.from_settings(settings)
    assert cql.batch_limits.partitions > 10  # deploy/local/infra-up raised it
    src = f"src{uid()}"
    observations = [
        obs(f"10.1/b.{uid()}", src, T0, {"citations": n, "views": 10 * n}) for n in range(600)
    ]
    sent: list[int] = []
    real = cql.run_many

    async def count(calls: Any) -> Any:
        todo = list(calls)
        sent.append(len(todo))
        return await real(todo)

    with caplog.at_level(logging.WARNING, logger="cassandra"):
        cql.run_many = count  # type: ignore[method-assign]
        try:
            await apply(cassandra_store, observations)
        finally:
            del cql.run_many
    assert not [r for r in caplog.records if "Server warning" in r.getMessage()]
    assert 0 < max(sent) < 600 / 10  # fewer requests than Cassandra's default would allow
    states = await cassandra_store.states([(o.work_id, src) for o in observations])
    assert sorted(s.metrics["citations"] for s in states.values()) == list(range(600))


@pytest_cassandra
async def test_the_fast_binder_binds_like_the_driver(cassandra_store: CassandraStore) -> None:
    """`batches` binds through _Binder: the same serialized values and routing keys as the
    driver's own bind for every write the store batches, and the same refusals."""
    cql = cassandra_store._cql
    now = T0
    us = 1_764_072_000_123_456
    periods = [("citations", "2024", 3), ("citations", "2025", 4)]
    calls: list[tuple[str, list[Any]]] = [
        ("state_put", ["10.1/x", "src", {"a": 1}, us, us, "ok", "", "", periods, us, 1]),
        ("state_put", ["10.1/x", "src", {}, us, UNSET_VALUE, "error", "e", "", [], None, None]),
        ("history_put", ["10.1/x", "src", now.date(), {"a": 1, "b": 2}]),
        ("event_put", ["10.1/x", "src", "e1", '{"id": "e1"}']),
        ("board_put", ["src", "a", 3, 17, "10.1/x"]),
        ("board_del", ["src", "a", 3, 16, "10.1/x"]),
        ("due_put", ["src", 492797, us, "10.1/x", 2]),
        ("due_del", ["src", 492797, us, "10.1/x"]),
        ("bucket_put", ["src", 492797]),
        ("position_put", [us, 1, "10.1/x", "src"]),
        (
            "work_update",
            ["10.1/x", UNSET_VALUE, "123", "T", now.date(), None, "u", "dataset", "340", "10.1/x"],
        ),
        (
            "raw_put",
            [
                "src",
                now.date(),
                us,
                uuid.uuid4(),
                "u",
                200,
                "{}",
                ["10.1/x"],
                {"10.1/x"},
                "0" * 64,
                "GET",
                False,
                60,
            ],
        ),
    ]
    for name, params in calls:
        ours, theirs = cql._binders[name](params), cql.stmt(name).bind(params)
        assert ours.values == theirs.values, name
        assert ours.routing_key == theirs.routing_key, name
        assert ours.prepared_statement is theirs.prepared_statement
    with pytest.raises(TypeError, match='column "value"'):
        cql._binders["board_put"](["src", "a", 3, "not a number", "10.1/x"])
    with pytest.raises(ValueError, match="routing key"):
        cql._binders["board_put"]([UNSET_VALUE, "a", 3, 1, "10.1/x"])
    # and what it binds is what Cassandra stores
    await cql.run_many(cql.batches([("board_put", ["src", "fast", 1, 5, "10.1/x"])]))
    rows = await cql.query(
        "SELECT value, work_id FROM leaderboard WHERE source='src' AND metric='fast' AND shard=1"
    )
    assert [(r.value, r.work_id) for r in rows] == [(5, "10.1/x")]
