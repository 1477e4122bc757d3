"""The in-process bus: ordering, consumer groups, at-least-once redelivery and trimming."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from services.adapters.memory.bus import MemoryBus, MemoryConsumer

TOPIC = "alm.metrics.raw"


def items(*numbers: int) -> list[tuple[str, dict[str, int]]]:
    """Keyed events `{"n": number}` keyed by `k<number>`."""
    return [(f"k{n}", {"n": n}) for n in numbers]


async def test_poll_returns_published_records_in_order() -> None:
    """A consumer reads records in publish order, with their keys, values, topic and offsets."""
    bus = MemoryBus()
    consumer = bus.consumer([TOPIC], "g")
    await bus.publish(TOPIC, items(1, 2))
    await bus.publish(TOPIC, items(3))

    batch = await consumer.poll(10, timeout=0)

    assert [(m.topic, m.key, dict(m.value), m.offset) for m in batch] == [
        (TOPIC, "k1", {"n": 1}, 0),
        (TOPIC, "k2", {"n": 2}, 1),
        (TOPIC, "k3", {"n": 3}, 2),
    ]


async def test_poll_honours_max_records_and_continues_where_it_stopped() -> None:
    """A poll returns at most max_records; the next poll continues after them."""
    bus = MemoryBus()
    consumer = bus.consumer([TOPIC], "g")
    await bus.publish(TOPIC, items(1, 2, 3, 4, 5))

    first = await consumer.poll(2, timeout=0)
    second = await consumer.poll(2, timeout=0)
    third = await consumer.poll(2, timeout=0)
    fourth = await consumer.poll(2, timeout=0)

    assert [[m.value["n"] for m in b] for b in (first, second, third, fourth)] == [
        [1, 2],
        [3, 4],
        [5],
        [],
    ]


async def test_consumer_of_several_topics_reads_each() -> None:
    """A consumer subscribed to two topics gets the records of both and knows which is which."""
    bus = MemoryBus()
    consumer = bus.consumer(["a", "b"], "g")
    await bus.publish("b", items(2))
    await bus.publish("a", items(1))

    batch = await consumer.poll(10, timeout=0)

    assert sorted((m.topic, m.value["n"]) for m in batch) == [("a", 1), ("b", 2)]


async def test_uncommitted_batch_is_redelivered_after_rewind() -> None:
    """Records polled but not committed come back after a rewind (a member's restart)."""
    bus = MemoryBus()
    consumer = bus.consumer([TOPIC], "g")
    await bus.publish(TOPIC, items(1, 2))
    await consumer.poll(10, timeout=0)

    await consumer.rewind()

    assert [m.value["n"] for m in await consumer.poll(10, timeout=0)] == [1, 2]


async def test_new_member_of_group_resumes_from_committed_offset() -> None:
    """A replacement consumer in the same group gets exactly what was not committed."""
    bus = MemoryBus()
    first = bus.consumer([TOPIC], "g")
    await bus.publish(TOPIC, items(1, 2))
    await first.poll(10, timeout=0)
    await first.commit()
    await bus.publish(TOPIC, items(3, 4))
    await first.poll(10, timeout=0)
    await first.close()  # crashes before committing 3 and 4

    second = bus.consumer([TOPIC], "g")

    assert [m.value["n"] for m in await second.poll(10, timeout=0)] == [3, 4]


async def test_committed_records_are_not_redelivered() -> None:
    """After a commit, a rewind does not bring the committed records back."""
    bus = MemoryBus()
    consumer = bus.consumer([TOPIC], "g")
    await bus.publish(TOPIC, items(1, 2))
    await consumer.poll(10, timeout=0)
    await consumer.commit()

    await consumer.rewind()

    assert await consumer.poll(10, timeout=0) == []


async def test_two_groups_are_independent() -> None:
    """Each group reads every record; one group's commits do not move the other."""
    bus = MemoryBus()
    scheduler = bus.consumer([TOPIC], "scheduler")
    aggregator = bus.consumer([TOPIC], "aggregator")
    await bus.publish(TOPIC, items(1, 2))

    assert [m.value["n"] for m in await scheduler.poll(10, timeout=0)] == [1, 2]
    await scheduler.commit()

    assert [m.value["n"] for m in await aggregator.poll(10, timeout=0)] == [1, 2]
    await aggregator.rewind()
    assert [m.value["n"] for m in await aggregator.poll(10, timeout=0)] == [1, 2]
    assert bus.lag(TOPIC, "scheduler") == 0
    assert bus.lag(TOPIC, "aggregator") == 2


async def test_lag_counts_uncommitted_records() -> None:
    """lag is the number of records the group has not committed (polling alone is not enough)."""
    bus = MemoryBus()
    consumer = bus.consumer([TOPIC], "g")
    await bus.publish(TOPIC, items(1, 2, 3))
    assert bus.lag(TOPIC, "g") == 3

    await consumer.poll(2, timeout=0)
    assert bus.lag(TOPIC, "g") == 3

    await consumer.commit()
    assert bus.lag(TOPIC, "g") == 1


async def test_records_committed_by_every_group_are_trimmed() -> None:
    """Memory stays bounded: records are dropped once every group has committed them."""
    bus = MemoryBus()
    fast = bus.consumer([TOPIC], "fast")
    slow = bus.consumer([TOPIC], "slow")
    await bus.publish(TOPIC, items(*range(100)))

    await fast.poll(1000, timeout=0)
    await fast.commit()
    assert len(bus.topic(TOPIC).log) == 100  # "slow" still needs them

    await slow.poll(60, timeout=0)
    await slow.commit()
    assert len(bus.topic(TOPIC).log) == 40

    await slow.poll(1000, timeout=0)
    await slow.commit()
    assert len(bus.topic(TOPIC).log) == 0


async def test_offsets_keep_counting_after_trimming() -> None:
    """After a trim, new records still get increasing offsets and are delivered once."""
    bus = MemoryBus()
    consumer = bus.consumer([TOPIC], "g")
    await bus.publish(TOPIC, items(1, 2))
    await consumer.poll(10, timeout=0)
    await consumer.commit()
    await bus.publish(TOPIC, items(3))

    batch = await consumer.poll(10, timeout=0)

    assert [(m.value["n"], m.offset) for m in batch] == [(3, 2)]


async def test_idle_member_skips_records_its_group_committed_and_trimmed() -> None:
    """A group member that sat idle while another member committed resumes at the oldest kept
    record instead of reading trimmed ones."""
    bus = MemoryBus()
    idle = bus.consumer([TOPIC], "g")
    busy = bus.consumer([TOPIC], "g")
    await bus.publish(TOPIC, items(1, 2, 3))
    await busy.poll(2, timeout=0)
    await busy.commit()

    assert [m.value["n"] for m in await idle.poll(10, timeout=0)] == [3]


async def test_published_values_are_copies() -> None:
    """Changing a dict after publishing it does not change what consumers read."""
    bus = MemoryBus()
    consumer = bus.consumer([TOPIC], "g")
    value = {"n": 1}
    await bus.publish(TOPIC, [("k", value)])
    value["n"] = 99

    assert (await consumer.poll(1, timeout=0))[0].value == {"n": 1}


async def test_publish_rejects_values_that_are_not_json() -> None:
    """A payload that Kafka could not carry as JSON fails at publish, as it would in production."""
    bus = MemoryBus()
    with pytest.raises(TypeError):
        await bus.publish(TOPIC, [("k", {"when": object()})])


async def test_publish_counts_per_topic() -> None:
    """`published` counts records per topic; an empty publish adds nothing."""
    bus = MemoryBus()
    await bus.publish("a", items(1, 2))
    await bus.publish("a", [])
    await bus.publish("b", items(3))
    assert bus.published == {"a": 2, "b": 1}


async def test_poll_with_timeout_wakes_on_publish() -> None:
    """A consumer waiting in poll returns as soon as a record is published, not at the timeout."""
    bus = MemoryBus()
    consumer = bus.consumer([TOPIC], "g")
    waiting = asyncio.create_task(consumer.poll(10, timeout=30))
    await asyncio.sleep(0.01)
    assert not waiting.done()

    started = time.monotonic()
    await bus.publish(TOPIC, items(1))
    batch = await asyncio.wait_for(waiting, timeout=5)

    assert [m.value["n"] for m in batch] == [1]
    assert time.monotonic() - started < 5


async def test_poll_with_timeout_returns_empty_when_nothing_arrives() -> None:
    """With nothing published a poll gives up after its timeout with an empty batch."""
    bus = MemoryBus()
    consumer = bus.consumer([TOPIC], "g")

    started = time.monotonic()
    batch = await consumer.poll(10, timeout=0.05)

    assert batch == []
    assert time.monotonic() - started >= 0.04


async def _cancel_storm(seed: int) -> list[BaseException]:
    """Pollers with tiny timeouts, a publisher, and pollers cancelled (sometimes twice, as a
    shutdown racing a timeout does) at random moments; what the pollers raised besides their
    cancellation."""
    rng = random.Random(seed)
    bus = MemoryBus()
    consumers = [bus.consumer([TOPIC], f"g{i}") for i in range(6)]

    async def keep_polling(consumer: MemoryConsumer) -> None:
        while True:
            await consumer.poll(10, timeout=rng.choice([0.0005, 0.001, 0.002]))
            await consumer.commit()

    tasks = [asyncio.create_task(keep_polling(c)) for c in consumers]
    ended: list[asyncio.Task[None]] = []
    for n in range(60):
        await asyncio.wait_for(bus.publish(TOPIC, items(n)), 1)
        await asyncio.sleep(rng.choice([0, 0.0005, 0.001]))
        if rng.random() < 0.3:
            j = rng.randrange(len(tasks))
            tasks[j].cancel()
            if rng.random() < 0.5:
                await asyncio.sleep(0)
                tasks[j].cancel()
            ended.append(tasks[j])
            tasks[j] = asyncio.create_task(keep_polling(consumers[j]))
    for task in tasks:
        task.cancel()
    results = await asyncio.wait_for(asyncio.gather(*ended, *tasks, return_exceptions=True), 2)
    await asyncio.wait_for(bus.publish(TOPIC, items(-1)), 1)  # hung here with a held lock
    return [r for r in results if not isinstance(r, asyncio.CancelledError)]


async def test_pollers_cancelled_at_any_moment_never_block_a_publish() -> None:
    """Cancelling waiting pollers at awkward moments (their timeout firing, a second cancel)
    leaves the bus usable: every later publish returns and every poller ends. An
    asyncio.Condition under wait_for could be left locked, after which publish hung forever."""
    for seed in range(40):
        assert await _cancel_storm(seed) == [], f"seed {seed}"


async def test_an_unread_topic_keeps_only_its_last_window_of_records() -> None:
    """A topic no group reads (change events with no subscriber) keeps the last `window`
    records with their offsets, instead of every record ever published."""
    bus = MemoryBus(window=100)
    for start in range(0, 5000, 250):
        await bus.publish(TOPIC, items(*range(start, start + 250)))

    kept = bus.topic(TOPIC)
    assert len(kept.log) == 100
    assert (kept.base, kept.end) == (4900, 5000)
    tail = bus.read(TOPIC, 4990, 1000)
    assert [(m.offset, m.value["n"]) for m in tail] == [(o, o) for o in range(4990, 5000)]
    assert bus.read(TOPIC, 0, 3)[0].offset == 4900  # resuming from a trimmed offset


async def test_a_group_that_subscribes_late_reads_the_window_then_trims_as_it_commits() -> None:
    """A group joining an unread topic starts at the oldest kept record; from then on the topic
    is trimmed to what the group committed."""
    bus = MemoryBus(window=10)
    await bus.publish(TOPIC, items(*range(50)))
    consumer = bus.consumer([TOPIC], "late")

    batch = await consumer.poll(100, timeout=0)
    assert [m.value["n"] for m in batch] == list(range(40, 50))
    await consumer.commit()
    await bus.publish(TOPIC, items(*range(50, 70)))

    assert len(bus.topic(TOPIC).log) == 20  # the group has not read these: all kept
    assert bus.backlog() == 20


async def test_pending_counts_the_events_of_packed_records() -> None:
    """`pending` counts events not committed, whatever number of records they were packed in;
    `lag` counts records."""
    bus = MemoryBus()
    consumer = bus.consumer([TOPIC], "g")
    await bus.publish(TOPIC, items(*range(120)), pack=50)  # records of 50, 50, 20

    assert (bus.pending(TOPIC, "g"), bus.lag(TOPIC, "g")) == (120, 3)
    assert len(await consumer.poll(60, timeout=0)) == 100  # whole records
    assert bus.pending(TOPIC, "g") == 120  # polled, not committed
    await consumer.commit()
    assert (bus.pending(TOPIC, "g"), bus.lag(TOPIC, "g")) == (20, 1)
    await consumer.poll(60, timeout=0)
    await consumer.commit()
    assert (bus.pending(TOPIC, "g"), bus.backlog()) == (0, 0)
