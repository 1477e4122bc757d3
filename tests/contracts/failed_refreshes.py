"""The failed-refresh listing contract (services/core/failed_refreshes.py): a row per (work,
source) whose last refresh failed, gone when it recovers, newest first or by work id, keyset
pages disjoint and complete, filtered by source, with the due entry's attempt.

tests/unit/test_failed_refreshes.py runs it against SqliteStore (a file per test),
tests/integration/test_failed_refreshes.py against CassandraStore in a keyspace of that module's
own (the listing spans every source); each gives the `store` fixture, holding nothing else.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from services.aggregator.service import fold
from services.core.events import Status
from services.core.failed_refreshes import (
    FailedRefresh,
    FailureOrder,
    FailureQuery,
    cursor_of,
    in_order,
)
from services.core.ports import DueEntry, Store
from tests.contracts.store import T0, apply, obs


def uid() -> str:
    return uuid.uuid4().hex[:8]


async def listing(
    store: Store, order: FailureOrder, per_page: int, source: str | None = None
) -> list[list[FailedRefresh]]:
    """Every page of the listing, following the cursors, up to the first short page."""
    pages: list[list[FailedRefresh]] = []
    after = None
    while True:
        page = await store.failed_refreshes(FailureQuery(order, source, per_page, after))
        assert len(page) <= per_page
        if page:
            pages.append(page)
        if len(page) < per_page:
            return pages
        after = cursor_of(page[-1], order)


def keys(rows: list[FailedRefresh]) -> list[tuple[str, str]]:
    return [(f.work_id, f.source) for f in rows]


async def test_a_failed_refresh_is_listed_with_its_error_and_gone_once_it_recovers(
    store: Store,
) -> None:
    u = uid()
    work, source = f"10.5555/{u}", f"src{u}"
    await apply(store, [obs(work, source, T0, {"total": 3})])
    assert await store.failed_refreshes(FailureQuery()) == []
    await apply(store, [obs(work, source, T0 + timedelta(hours=1), status=Status.ERROR)])
    [failure] = await store.failed_refreshes(FailureQuery())
    assert (failure.work_id, failure.source) == (work, source)
    assert failure.failed_at == T0 + timedelta(hours=1)
    assert failure.error == "http: boom"
    await apply(store, [obs(work, source, T0 + timedelta(hours=2), {"total": 4})])
    assert await store.failed_refreshes(FailureQuery()) == []
    for order in FailureOrder:
        assert await store.failed_refreshes(FailureQuery(order, source)) == []


async def test_failing_again_moves_the_row_to_its_new_time_once(store: Store) -> None:
    """A second failure replaces the first (one row per pair, at the new time), also when both
    come in one batch, and a success older than the failure leaves it listed."""
    u = uid()
    a, b, source = f"10.5555/{u}.a", f"10.5555/{u}.b", f"src{u}"
    await apply(store, [obs(a, source, T0, status=Status.ERROR)])
    await apply(store, [obs(b, source, T0 + timedelta(minutes=1), status=Status.ERROR)])
    await apply(store, [obs(a, source, T0 + timedelta(minutes=5), status=Status.ERROR)])
    await apply(
        store,
        [
            obs(b, source, T0 + timedelta(minutes=6), status=Status.ERROR),
            obs(b, source, T0 + timedelta(minutes=7), status=Status.ERROR),
            obs(a, source, T0 - timedelta(days=1), {"total": 1}),  # older than a's failure
        ],
    )
    rows = await store.failed_refreshes(FailureQuery(FailureOrder.NEWEST, None, 10))
    assert [(f.work_id, f.failed_at) for f in rows] == [
        (b, T0 + timedelta(minutes=7)),
        (a, T0 + timedelta(minutes=5)),
    ]
    by_work = await store.failed_refreshes(FailureQuery(FailureOrder.WORK, None, 10))
    assert keys(by_work) == [(a, source), (b, source)]


async def test_a_redone_batch_writes_the_same_rows(store: Store) -> None:
    """The aggregator's writes may be redone after a crash: the listing is the same."""
    u = uid()
    work, source = f"10.5555/{u}", f"src{u}"
    await apply(store, [obs(work, source, T0, status=Status.ERROR)])
    batch = [
        obs(work, source, T0 + timedelta(minutes=1), status=Status.ERROR),
        obs(work, f"{source}x", T0 + timedelta(minutes=2), status=Status.ERROR),
    ]
    results = fold(batch, await store.states(sorted({(o.work_id, o.source) for o in batch})))
    await store.write_aggregates(results)
    once = await store.failed_refreshes(FailureQuery(limit=10))
    await store.write_aggregates(results)
    assert await store.failed_refreshes(FailureQuery(limit=10)) == once
    assert [f.failed_at for f in once] == [T0 + timedelta(minutes=2), T0 + timedelta(minutes=1)]


async def test_pages_are_disjoint_complete_and_in_order_with_a_source_filter(
    store: Store,
) -> None:
    """Failures of three sources, several at one time (ties broken by work id, then source):
    every page size gives the listing in order in both orders, and a source's filter its own
    rows only."""
    u = uid()
    sources = [f"a{u}", f"b{u}", f"c{u}"]
    batch = [
        obs(f"10.5555/{u}.{n:02d}", source, T0 + timedelta(minutes=n % 4), status=Status.ERROR)
        for n in range(13)
        for source in sources[: 1 + n % 3]
    ]
    await apply(store, batch)
    everything = await store.failed_refreshes(FailureQuery(limit=1000))
    assert len(everything) == len(batch)
    for order in FailureOrder:
        expected = in_order(everything, order)
        for per_page in (1, 4, 7, 100):
            pages = await listing(store, order, per_page)
            assert keys([f for p in pages for f in p]) == keys(expected), (order, per_page)
        mine = await listing(store, order, 3, sources[1])
        assert keys([f for p in mine for f in p]) == [
            (f.work_id, f.source) for f in expected if f.source == sources[1]
        ]
    newest = in_order(everything, FailureOrder.NEWEST)
    assert newest[0].failed_at == T0 + timedelta(minutes=3)
    assert newest[-1].failed_at == T0


async def test_each_failure_shows_its_due_attempt(store: Store) -> None:
    """The attempt is the due entry's (the scheduler counts failed tries there)."""
    u = uid()
    a, b, source = f"10.5555/{u}.a", f"10.5555/{u}.b", f"src{u}"
    await apply(
        store,
        [obs(a, source, T0, status=Status.ERROR), obs(b, source, T0, status=Status.ERROR)],
    )
    await store.set_due(source, [DueEntry(a, T0 + timedelta(hours=1), attempt=3)])
    rows = await store.failed_refreshes(FailureQuery(FailureOrder.WORK, source, 10))
    assert [(f.work_id, f.attempt) for f in rows] == [(a, 3), (b, None)]
