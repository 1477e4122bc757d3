"""The per-source status counts contract (`source_summary`, services/core/summary.py): after any
sequence of states, each source's counts are those of its states (works with a state, works
whose last attempt failed), whatever the order, batching and redelivery of the observations;
and `recount_summary` repairs counts that drifted from the states.

tests/unit/test_summary.py runs it against SqliteStore (a file per test),
tests/integration/test_summary.py against CassandraStore in a keyspace of that module's own (a
recount spans every source). Each test uses its own source names.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta

from services.aggregator.service import fold
from services.core.events import Status
from services.core.ports import Store
from services.core.summary import tally
from tests.contracts.store import T0, apply, obs


def uid() -> str:
    return uuid.uuid4().hex[:8]


async def counted(store: Store, source: str, works: list[str]) -> dict[str, int] | None:
    """The counts of `source`'s states of `works`, read from the states themselves (None: no
    state at all, as source_summary leaves such a source out)."""
    states = await store.states([(w, source) for w in works])
    found = tally((s.source, s.status) for s in states.values())
    if source not in found:
        return None
    works_n, errors = found[source]
    return {"works": works_n, "errors": errors}


async def summary_of(store: Store, source: str) -> dict[str, int] | None:
    return (await store.source_summary()).get(source)


async def test_the_counts_follow_every_transition_and_ignore_redelivery(store: Store) -> None:
    """New work ok, new work error, error -> ok, ok -> error, the same observation again:
    after each, the summary is the count of the states."""
    u = uid()
    src = f"src{u}"
    a, b = f"10.5555/{u}.a", f"10.5555/{u}.b"
    assert await summary_of(store, src) is None
    steps = [
        (obs(a, src, T0, {"n": 1}), {"works": 1, "errors": 0}),  # a new work, ok
        (obs(b, src, T0, status=Status.ERROR), {"works": 2, "errors": 1}),  # a new work, error
        (obs(b, src, T0 + timedelta(hours=1), {"n": 2}), {"works": 2, "errors": 0}),  # recovers
        (obs(a, src, T0 + timedelta(hours=1), status=Status.ERROR), {"works": 2, "errors": 1}),
        (obs(a, src, T0 + timedelta(hours=2), status=Status.ERROR), {"works": 2, "errors": 1}),
    ]
    for observation, expected in steps:
        for _ in range(2):  # the second time: redelivered, nothing moves
            await apply(store, [observation])
            assert await summary_of(store, src) == expected
            assert await counted(store, src, [a, b]) == expected


async def test_a_batch_counts_each_works_net_transition_once(store: Store) -> None:
    """Several observations of one work in a batch (and the same one twice in it) count from
    the state before the batch to the last one; an observation older than the state moves
    nothing."""
    u = uid()
    src = f"src{u}"
    a, b, c = f"10.5555/{u}.a", f"10.5555/{u}.b", f"10.5555/{u}.c"
    await apply(store, [obs(c, src, T0, status=Status.ERROR)])
    batch = [
        obs(a, src, T0, {"n": 1}),
        obs(a, src, T0, {"n": 1}),
        obs(a, src, T0 + timedelta(hours=1), status=Status.ERROR),
        obs(a, src, T0 + timedelta(hours=2), {"n": 2}),
        obs(b, src, T0, {"n": 1}),
        obs(b, src, T0 + timedelta(hours=1), status=Status.ERROR),
        obs(b, src, T0 + timedelta(hours=1), status=Status.ERROR),
        obs(c, src, T0 + timedelta(hours=1), {"n": 3}),
        obs(c, src, T0 + timedelta(hours=2), status=Status.ERROR),
        obs(c, src, T0 - timedelta(hours=1), {"n": 9}),  # older than c's state: not applied
    ]
    await apply(store, batch)
    expected = {"works": 3, "errors": 2}
    assert await counted(store, src, [a, b, c]) == expected
    assert await summary_of(store, src) == expected
    await apply(store, batch)  # the whole batch redelivered
    assert await summary_of(store, src) == expected


async def test_sources_are_counted_apart(store: Store) -> None:
    """Each source's counts are its own; one work counts once a source it has a state from."""
    u = uid()
    one, two = f"src{u}.1", f"src{u}.2"
    w = f"10.5555/{u}"
    await apply(store, [obs(w, one, T0, {"n": 1}), obs(w, two, T0, status=Status.ERROR)])
    summary = await store.source_summary()
    assert summary[one] == {"works": 1, "errors": 0}
    assert summary[two] == {"works": 1, "errors": 1}


async def test_a_recount_repairs_a_drifted_summary(store: Store) -> None:
    """Counts that drifted from the states (a batch's transitions written twice: too many; a
    batch's written as if its works had states already: too few) are made the counts of the
    states again, and the recount says by how much each source was off."""
    u = uid()
    over, under, right = f"src{u}.over", f"src{u}.under", f"src{u}.right"
    works = [f"10.5555/{u}.{i}" for i in range(3)]
    await apply(store, [obs(w, right, T0, {"n": 1}) for w in works])
    first = [obs(w, over, T0, {"n": 1}) for w in works]
    first.append(obs(works[0], over, T0 + timedelta(hours=1), status=Status.ERROR))
    keys = sorted({(o.work_id, o.source) for o in first})
    results = fold(first, await store.states(keys))
    await store.write_aggregates(results)
    await store.write_aggregates(results)  # the same transitions applied again
    second = [obs(w, under, T0, status=Status.ERROR) for w in works]
    keys = sorted({(o.work_id, o.source) for o in second})
    results = fold(second, await store.states(keys))
    await store.write_aggregates([replace(r, new=False) for r in results])
    assert await summary_of(store, over) == {"works": 6, "errors": 2}
    assert await summary_of(store, under) == {"works": 0, "errors": 3}

    fixed = await store.recount_summary()
    assert fixed[over] == {"works": -3, "errors": -1}
    assert fixed[under] == {"works": 3, "errors": 0}
    assert right not in fixed
    assert await summary_of(store, over) == await counted(store, over, works)
    assert await summary_of(store, over) == {"works": 3, "errors": 1}
    assert await summary_of(store, under) == {"works": 3, "errors": 3}
    assert await summary_of(store, right) == {"works": 3, "errors": 0}
    assert right not in await store.recount_summary()  # a second recount: nothing to add
    assert over not in await store.recount_summary()
