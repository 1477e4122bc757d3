"""Pure parts of the Cassandra session: the row factory and how writes are batched."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from services.adapters import cassandra_async
from services.adapters.cassandra_async import (
    BATCH_BYTES,
    BATCH_BYTES_SHARE,
    BATCH_PARTITIONS,
    BatchLimits,
    _Batcher,
    row_factory,
)


@dataclass
class FakeBound:
    """What _Batcher reads of a bound statement: its routing key and serialized values."""

    routing_key: bytes
    values: list[bytes] = field(default_factory=lambda: [b"x" * 10])


def test_rows_are_named_tuples_of_one_class_per_column_list() -> None:
    first = row_factory(["work_id", "[applied]"], [("a", True), ("b", False)])
    second = row_factory(["work_id", "[applied]"], [("c", True)])
    assert [r.work_id for r in first] == ["a", "b"] and first[0].applied is True
    assert type(first[0]) is type(second[0])
    assert type(row_factory(["work_id"], [("d",)])[0]) is not type(first[0])


def test_a_batch_holds_at_most_the_partition_limit() -> None:
    batcher = _Batcher()
    for n in range(BATCH_PARTITIONS * 2 + 3):
        batcher.add(FakeBound(f"p{n}".encode()))  # type: ignore[arg-type]
    assert [len(chunk) for chunk in batcher.finish()] == [BATCH_PARTITIONS, BATCH_PARTITIONS, 3]


def test_rows_of_one_partition_do_not_count_twice() -> None:
    batcher = _Batcher()
    for n in range(BATCH_PARTITIONS * 3):
        batcher.add(FakeBound(b"same" if n % 2 else f"p{n}".encode()))  # type: ignore[arg-type]
    chunks = batcher.finish()
    # 15 partitions of one row and one shared by 15 rows: the shared one + 9, then + 6
    assert [len({b.routing_key for b in chunk}) for chunk in chunks] == [10, 7]
    assert sum(len(chunk) for chunk in chunks) == BATCH_PARTITIONS * 3


def test_a_batch_stays_under_the_byte_limit() -> None:
    batcher = _Batcher()
    row = BATCH_BYTES // 4 + 1
    for n in range(8):
        batcher.add(FakeBound(f"p{n}".encode(), [b"x" * row]))  # type: ignore[arg-type]
    assert [len(chunk) for chunk in batcher.finish()] == [3, 3, 2]  # a 4th would not fit
    assert cassandra_async.BATCH_PARTITIONS > 3


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


def session_on(metadata: object) -> cassandra_async.CqlSession:
    cql = cassandra_async.CqlSession(["127.0.0.1"], 9042, "alm")
    cql._cluster = type("FakeCluster", (), {"metadata": metadata})()  # type: ignore[assignment]
    cql._prepared = {"get": FakePrepared()}  # type: ignore[dict-item]
    cql._binders = {"get": FakePrepared().bind}  # type: ignore[dict-item]
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


def test_batch_limits_follow_the_nodes_warning_thresholds() -> None:
    limits = BatchLimits.from_settings(
        {
            "unlogged_batch_across_partitions_warn_threshold": "64",
            "batch_size_warn_threshold": "32KiB",
        }
    )
    assert limits == BatchLimits(64, int(32 * 1024 * BATCH_BYTES_SHARE))
    assert BatchLimits.from_settings({"batch_size_warn_threshold_in_kb": "5"}).bytes == int(
        5 * 1024 * BATCH_BYTES_SHARE
    )  # Cassandra 4.0 names it in KiB
    assert BatchLimits.from_settings({"batch_size_warn_threshold": "1MiB"}).bytes == int(
        1024 * 1024 * BATCH_BYTES_SHARE
    )
    huge = {"unlogged_batch_across_partitions_warn_threshold": "100000"}
    assert BatchLimits.from_settings(huge).partitions == cassandra_async.MAX_BATCH_PARTITIONS


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
    assert BatchLimits.from_settings(settings) == BatchLimits(BATCH_PARTITIONS, BATCH_BYTES)
    assert (BATCH_PARTITIONS, BATCH_BYTES) == (10, 3 * 1024)  # under 10 partitions and 5 KiB


def test_a_batcher_uses_the_limits_it_is_given() -> None:
    batcher = _Batcher(BatchLimits(partitions=4, bytes=10_000))
    for n in range(10):
        batcher.add(FakeBound(f"p{n}".encode()))  # type: ignore[arg-type]
    assert [len(chunk) for chunk in batcher.finish()] == [4, 4, 2]
    batcher = _Batcher(BatchLimits(partitions=100, bytes=25))
    for n in range(5):
        batcher.add(FakeBound(f"p{n}".encode()))  # type: ignore[arg-type]
    assert [len(chunk) for chunk in batcher.finish()] == [2, 2, 1]  # 10 bytes a row
