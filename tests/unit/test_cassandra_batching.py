"""Pure parts of the Cassandra session: the row factory, how writes are batched, and the size
the server counts for a batch."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from services.adapters.cassandra import batching, session
from services.adapters.cassandra.batching import (
    BATCH_MARGIN,
    BATCH_PARTITIONS,
    PARTITION_BYTES,
    Batcher,
    BatchLimits,
    RowCost,
)
from services.adapters.cassandra.session import row_factory
from tests.unit.batch_sizes import CASES, Case

ROW = 100  # bytes a FakeBound row counts for in these tests


@dataclass
class FakeBound:
    """What Batcher reads of a bound statement: its routing key."""

    routing_key: bytes
    values: list[bytes] = field(default_factory=lambda: [b"x" * 10])


def add(batcher: Batcher, key: bytes, size: int = ROW) -> None:
    batcher.add(FakeBound(key), size, "t")  # type: ignore[arg-type]


def test_rows_are_named_tuples_of_one_class_per_column_list() -> None:
    first = row_factory(["work_id", "[applied]"], [("a", True), ("b", False)])
    second = row_factory(["work_id", "[applied]"], [("c", True)])
    assert [r.work_id for r in first] == ["a", "b"] and first[0].applied is True
    assert type(first[0]) is type(second[0])
    assert type(row_factory(["work_id"], [("d",)])[0]) is not type(first[0])


def test_a_batch_holds_at_most_the_partition_limit() -> None:
    batcher = Batcher(BatchLimits(BATCH_PARTITIONS, 10**6))
    for n in range(BATCH_PARTITIONS * 2 + 3):
        add(batcher, f"p{n}".encode())
    assert [len(chunk) for chunk in batcher.finish()] == [BATCH_PARTITIONS, BATCH_PARTITIONS, 3]


def test_rows_of_one_partition_do_not_count_twice() -> None:
    batcher = Batcher(BatchLimits(BATCH_PARTITIONS, 10**6))
    for n in range(BATCH_PARTITIONS * 3):
        add(batcher, b"same" if n % 2 else f"p{n}".encode())
    chunks = batcher.finish()
    # 15 partitions of one row and one shared by 15 rows: the shared one + 9, then + 6
    assert [len({b.routing_key for b in chunk}) for chunk in chunks] == [10, 7]
    assert sum(len(chunk) for chunk in chunks) == BATCH_PARTITIONS * 3


def test_a_batch_stays_under_the_byte_limit_counting_each_partition_once() -> None:
    limit = 4 * (ROW + PARTITION_BYTES)
    batcher = Batcher(BatchLimits(BATCH_PARTITIONS, limit))
    for n in range(8):
        add(batcher, f"p{n}".encode())
    assert [len(chunk) for chunk in batcher.finish()] == [4, 4]  # each row its own partition
    batcher = Batcher(BatchLimits(BATCH_PARTITIONS, limit))
    for _ in range(12):
        add(batcher, b"one")
    # one partition: its overhead once, then rows of ROW bytes: 4 * 129 = 516 = 29 + 4 * 100 + 87
    assert [len(chunk) for chunk in batcher.finish()] == [4, 4, 4]
    batcher = Batcher(BatchLimits(BATCH_PARTITIONS, limit))
    add(batcher, b"big", 10 * limit)  # too big for any batch: a request of its own
    add(batcher, b"small")
    assert [len(chunk) for chunk in batcher.finish()] == [1, 1]


class FakePrepared:
    """A prepared statement whose bind gives the first parameter as the routing key."""

    def bind(self, params: tuple[str, ...]) -> FakeBound:
        return FakeBound(params[0].encode())


class FakeMetadata:
    """Two nodes; keys starting with 'a' live on one, the others on the second."""

    def all_hosts(self) -> list[str]:
        return ["n1", "n2"]

    def get_replicas(self, keyspace: str, key: bytes) -> list[str]:
        return ["n1"] if key.startswith(b"a") else ["n2"]


class FakeBinder:
    """Binds like FakePrepared; every row counts ROW bytes."""

    table = "t"

    def __call__(self, params: tuple[str, ...]) -> FakeBound:
        return FakePrepared().bind(params)

    def cost(self, values: list[bytes]) -> int:
        return ROW


def session_on(metadata: object) -> session.CqlSession:
    cql = session.CqlSession(["127.0.0.1"], 9042, "alm")
    cql._cluster = type("FakeCluster", (), {"metadata": metadata})()  # type: ignore[assignment]
    cql._prepared = {"get": FakePrepared()}  # type: ignore[dict-item]
    cql._binders = {"get": FakeBinder()}  # type: ignore[dict-item]
    return cql


def test_reads_are_grouped_by_replica_and_capped() -> None:
    keys = [("a1",), ("b1",), *[(f"a{n}",) for n in range(2, 60)], ("b2",)]
    groups = session_on(FakeMetadata()).read_groups("get", keys)
    assert [[keys[i][0][0] for i in g] for g in groups] == [["a"] * 50, ["a"] * 9, ["b", "b"]]
    assert sorted(i for g in groups for i in g) == list(range(len(keys)))


def test_on_one_node_reads_are_only_capped() -> None:
    class OneNode(FakeMetadata):
        def all_hosts(self) -> list[str]:
            return ["n1"]

    groups = session_on(OneNode()).read_groups(
        "get", [(f"{c}{n}",) for n in range(60) for c in "ab"]
    )
    assert [len(g) for g in groups] == [50, 50, 20] and groups[0][:3] == [0, 1, 2]


def test_writes_to_different_replicas_never_share_a_batch() -> None:
    out = session_on(FakeMetadata()).batches([("get", ("a1",)), ("get", ("b1",))])
    assert [b.routing_key for b in out] == [b"a1", b"b1"]  # two requests, each on its own


def test_batch_limits_follow_the_nodes_thresholds() -> None:
    limits = BatchLimits.from_settings(
        {
            "unlogged_batch_across_partitions_warn_threshold": "64",
            "batch_size_warn_threshold": "32KiB",
            "batch_size_fail_threshold": "50KiB",
        }
    )
    assert limits == BatchLimits(64, int(32 * 1024 * BATCH_MARGIN))
    assert BatchLimits.from_settings({"batch_size_warn_threshold_in_kb": "5"}).bytes == int(
        5 * 1024 * BATCH_MARGIN
    )  # Cassandra 4.0 names it in KiB
    # a warning threshold above the failure threshold: the failure threshold bounds the batch
    over = {"batch_size_warn_threshold": "1MiB", "batch_size_fail_threshold": "64KiB"}
    assert BatchLimits.from_settings(over).bytes == int(64 * 1024 * BATCH_MARGIN)
    assert BatchLimits.from_settings({"batch_size_warn_threshold": "1MiB"}).bytes == int(
        50 * 1024 * BATCH_MARGIN
    )  # the failure threshold's default
    huge = {"unlogged_batch_across_partitions_warn_threshold": "100000"}
    assert BatchLimits.from_settings(huge).partitions == batching.MAX_BATCH_PARTITIONS


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {
            "unlogged_batch_across_partitions_warn_threshold": None,
            "batch_size_warn_threshold": None,
        },
        {
            "unlogged_batch_across_partitions_warn_threshold": "-1",
            "batch_size_warn_threshold": "0B",
        },
        {
            "unlogged_batch_across_partitions_warn_threshold": "ten",
            "batch_size_warn_threshold": "5 parsecs",
        },
    ],
)
def test_unreadable_thresholds_keep_cassandras_defaults(settings: dict[str, str | None]) -> None:
    assert BatchLimits.from_settings(settings) == BatchLimits()
    assert BatchLimits() == (10, int(5 * 1024 * BATCH_MARGIN))  # under 10 partitions and 5 KiB


def test_a_batcher_uses_the_limits_it_is_given() -> None:
    batcher = Batcher(BatchLimits(partitions=4, bytes=10_000))
    for n in range(10):
        add(batcher, f"p{n}".encode(), 10)
    assert [len(chunk) for chunk in batcher.finish()] == [4, 4, 2]
    batcher = Batcher(BatchLimits(partitions=100, bytes=2 * (10 + PARTITION_BYTES)))
    for n in range(5):
        add(batcher, f"p{n}".encode(), 10)
    assert [len(chunk) for chunk in batcher.finish()] == [2, 2, 1]


def server_size(case: Case) -> int:
    """What the estimate says the server counts for the case's batch."""
    cost = RowCost(case.prepared, case.table)  # type: ignore[arg-type]
    partitions = len({case.partitions(i) for i in range(case.count)})
    return sum(cost(values) for values in case.serialized()) + PARTITION_BYTES * partitions


@pytest.mark.parametrize("case", CASES, ids=[f"{c.statement}-{n}" for n, c in enumerate(CASES)])
def test_the_estimate_is_what_cassandra_measured(case: Case) -> None:
    """Every write the store batches, as one batch the server measured: the estimate is the
    server's figure, to the byte."""
    assert server_size(case) == case.measured


def test_the_estimate_without_schema_metadata_can_only_be_larger() -> None:
    """Without the table's metadata (clustering columns unknown, collections assumed
    non-frozen) the estimate overcounts, never undercounts."""
    for case in CASES:
        blind = RowCost(case.prepared, None)  # type: ignore[arg-type]
        rows = case.serialized()
        partitions = len({case.partitions(i) for i in range(case.count)})
        guess = sum(blind(values) for values in rows) + PARTITION_BYTES * partitions
        assert guess >= server_size(case), case.statement


def test_the_old_sizing_sent_batches_the_server_refuses() -> None:
    """What the issue saw: batches cut at 60 % of the 32 KiB warning threshold in bytes of
    values held state rows the server counts at more than the 50 KiB failure threshold."""
    case = next(c for c in CASES if c.statement == "state_put")
    values = sum(len(v) for row in case.serialized() for v in row if isinstance(v, bytes))
    ratio = server_size(case) / values
    assert ratio > 2.6
    assert 32 * 1024 * 0.6 * ratio > 50 * 1024
