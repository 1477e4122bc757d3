"""Packed bus records: events bound for one partition share a record, consumers see them one
by one, whole records at a time, and never lose or skip one across commits."""

from __future__ import annotations

import json

import pytest
from aiokafka.partitioner import DefaultPartitioner

from services.adapters.kafka import partition_of
from services.adapters.memory.bus import MemoryBus
from services.core.packing import PACK_BYTES, pack, unpack
from services.core.schema_check import SchemaViolation, check

TOPIC = "alm.metrics.raw"


def by_mod(parts: int):  # type: ignore[no-untyped-def]
    """A partition function: the number at the end of the key, modulo `parts`."""
    return lambda key: int(key.decode().rsplit(".", 1)[1]) % parts


def events(n: int) -> list[tuple[str, dict[str, object]]]:
    return [(f"10.5555/w.{i}", {"n": i, "text": "é"}) for i in range(n)]


def test_events_of_one_partition_share_records_in_order() -> None:
    records = pack(events(10), by_mod(3), max_items=100)
    assert sorted(p for p, _, _ in records) == [0, 1, 2]
    for part, key, value in records:
        pairs = unpack(key.decode(), json.loads(value))
        assert [v["n"] for _, v in pairs] == [n for n in range(10) if n % 3 == part]
        assert [k for k, _ in pairs] == [f"10.5555/w.{n}" for n in range(10) if n % 3 == part]
        assert key.decode() == pairs[0][0]  # keyed by its first event
        assert all(v["text"] == "é" for _, v in pairs)


def test_records_hold_at_most_max_items_and_about_pack_bytes() -> None:
    records = pack(events(23), lambda _key: 0, max_items=5)
    sizes = [len(json.loads(v)["batch"]) for _, _, v in records]
    assert sizes == [5, 5, 5, 5, 3]
    big = "x" * (PACK_BYTES // 2)
    heavy = [(f"k.{i}", {"blob": big}) for i in range(3)] + [("k.3", {"blob": "x" * PACK_BYTES})]
    records = pack(heavy, lambda _key: 0, max_items=100)
    assert [len(json.loads(v)["batch"]) for _, _, v in records] == [1, 1, 1, 1]
    assert all(len(v) <= PACK_BYTES + 100 for _, _, v in records[:3])


def test_a_packed_record_matches_its_schema() -> None:
    (_, _, value), *_ = pack(events(4), lambda _key: 0, max_items=10)
    assert check("record_batch", json.loads(value))
    with pytest.raises(SchemaViolation):
        check("record_batch", {"schema_version": 1, "batch": [["only-a-key"]]})
    with pytest.raises(ValueError, match="max_items"):
        pack(events(1), lambda _key: 0, max_items=0)


def test_a_record_that_is_not_a_batch_is_one_event() -> None:
    assert unpack("k", {"n": 1}) == [("k", {"n": 1})]


def test_malformed_batches_become_events_no_schema_accepts() -> None:
    ((key, bad),) = unpack("k", {"schema_version": 1, "batch": "nope"})
    assert key == "k" and "not a list" in bad["error"]
    pairs = unpack("k", {"schema_version": 1, "batch": [["a", {"n": 1}], ["b"], 3]})
    assert pairs[0] == ("a", {"n": 1})
    assert [k for k, _ in pairs[1:]] == ["k", "k"]
    for _, event in pairs[1:]:
        assert "[key, event]" in event["error"]
        with pytest.raises(SchemaViolation):
            check("observation", event)


def test_partition_of_is_the_default_partitioners_choice() -> None:
    """The same partition aiokafka (and the Java client) would choose for the key alone."""
    for parts in (1, 3, 6, 7):
        for i in range(200):
            key = f"10.5555/p.{i}".encode()
            assert partition_of(key, parts) == DefaultPartitioner()(key, list(range(parts)), [])


async def test_memory_bus_hands_out_packed_events_one_by_one() -> None:
    bus = MemoryBus()
    consumer = bus.consumer([TOPIC], "g")
    await bus.publish(TOPIC, events(12), pack=5)
    got = await consumer.poll(100, timeout=0)
    assert [(m.key, m.value["n"]) for m in got] == [(f"10.5555/w.{i}", i) for i in range(12)]
    assert [m.offset for m in got] == [0] * 5 + [1] * 5 + [2] * 2  # three records
    assert bus.published[TOPIC] == 12


async def test_a_poll_takes_whole_records_and_a_commit_never_skips_an_event() -> None:
    bus = MemoryBus()
    first = bus.consumer([TOPIC], "g")
    await bus.publish(TOPIC, events(12), pack=5)
    taken = await first.poll(3, timeout=0)  # fewer than one record holds: the whole record
    assert [m.value["n"] for m in taken] == [0, 1, 2, 3, 4]
    taken += await first.poll(6, timeout=0)  # one record more reaches 6: two records
    assert [m.value["n"] for m in taken] == list(range(12))
    await first.rewind()  # nothing committed: all of it again
    again = await first.poll(5, timeout=0)
    assert [m.value["n"] for m in again] == [0, 1, 2, 3, 4]
    await first.commit()
    second = bus.consumer([TOPIC], "g")
    assert [m.value["n"] for m in await second.poll(100, timeout=0)] == list(range(5, 12))
