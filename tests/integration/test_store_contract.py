"""The Store contract (tests/contracts/store.py) run against CassandraStore, an integration test
(real server, this run's own keyspace), and what is particular to Cassandra (migrations, the
due index's positions and markers, batching and binding). The SQLite run of the contract is
tests/unit/test_store_contract.py.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cassandra.query import UNSET_VALUE, ValueSequence

from services.adapters.cassandra import CassandraStore
from services.adapters.cassandra.batching import BATCH_SETTINGS, BatchLimits
from services.aggregator.service import fold
from services.core.ports import DueEntry, Handoff, Store
from services.core.provenance import RawResponse
from tests.contracts.store import *  # noqa: F403  (the contract's tests, run here)
from tests.contracts.store import T0, apply, obs, uid
from tests.integration.conftest import Infra

pytestmark = pytest.mark.integration


@pytest.fixture
def store(cassandra_store: CassandraStore) -> Store:
    """The contract's store: the session's CassandraStore."""
    return cassandra_store


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
    start, after, _ = scans[(src, bucket)]
    assert start == int(entries[9].at.timestamp() * 1_000_000)  # not the hour's start
    assert after == entries[9].work_id  # nor the leased entry itself (a tombstone now)
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
        assert ours.is_idempotent and theirs.is_idempotent, name  # sent again on a timeout
    # a counter and a compare-and-set are never sent again (retry.py)
    assert not cql.stmt("count_add").is_idempotent and not cql.stmt("id_claim").is_idempotent
    assert not cql.batches([("count_add", [1, 0]), ("count_add", [1, 1])])[0].is_idempotent
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


@pytest_cassandra
async def test_a_resumed_scan_refused_for_its_tombstones_goes_on_from_the_margin(
    cassandra_store: CassandraStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A scan whose position is minutes behind (another scanner leased everything since: past
    the server's tombstone limit, which refuses the read) goes on from SCAN_MARGIN_US behind
    the present instead of failing every tick until the tombstones are purged; an entry it
    passed is found by the next whole-hour read."""
    from cassandra import ReadFailure

    from services.adapters.cassandra import due as due_module

    src = f"src{uid()}"
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    now = max(datetime.now(UTC), hour + timedelta(minutes=30))  # every entry in this hour
    behind = DueEntry(f"10.1/behind.{uid()}", now - timedelta(minutes=8))
    recent = DueEntry(f"10.1/recent.{uid()}", now - timedelta(seconds=5))
    await cassandra_store.set_due(src, [behind, recent])
    index = cassandra_store.due_index
    now_us = int(now.timestamp() * 1_000_000)
    stale = now_us - 10 * 60 * 1_000_000
    index._scan_from[(src, now_us // 3_600_000_000)] = (stale, "", index._ks.now_us())
    real, refused = index._read_due, []

    async def refusing(cql: Any, source: str, bucket: int, span: Any, *rest: Any) -> Any:
        if source == src and 0 < span[0] < span[2] - due_module.SCAN_MARGIN_US:
            refused.append(span[0])
            raise ReadFailure("Operation failed - READ_TOO_MANY_TOMBSTONES")
        return await real(cql, source, bucket, span, *rest)

    monkeypatch.setattr(index, "_read_due", refusing)
    assert [e.work_id for e in await cassandra_store.due(src, now, 50)] == [recent.work_id]
    assert refused == [stale]
    monkeypatch.setattr(due_module, "FULL_SCAN_SECONDS", 0.0)  # the whole-hour read, accepted
    ids = [e.work_id for e in await cassandra_store.due(src, now, 50)]
    assert ids == [behind.work_id, recent.work_id]
