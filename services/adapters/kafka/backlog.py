"""How many events of some topics their consumer groups have not committed yet: the scheduler's
backpressure on the refresh topics (services/scheduler/service.py), read from the brokers.

aiokafka on the event loop, no thread: an admin client for the topics' partitions (one
metadata request) and every group's committed offsets (a coordinator lookup and an OffsetFetch
a group, retried while the coordinator is not ready), and a consumer of no group for the
partitions' first and end offsets (ListOffsets). The two are kept from call to call. The
records between a group's committed offset (the first kept one where it has committed
nothing: the fetchers read from the earliest) and the end are counted in events (a refresh
record packs up to 50 requests) by reading them with that consumer, a bounded fetch at a time
(no thread, no client opened a tick), but only while they may hold fewer than the caller's
bound: a record holds one event or more, so that many records or more is already as full as
the caller cares; and no further than the bound.

A read of the offsets and counts that outlasts `timeout` (connecting included) is cancelled
and raises,
and so does one that fails: the scheduler then emits nothing in that tick (due works stay
due) instead of waiting on a broker that does not answer. Either way both clients are dropped
and closed behind the caller (within `_CLOSE_WITHIN` seconds), and the next call connects
afresh: a client whose first connection failed, or whose broker restarted, is never asked
again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from services.adapters.kafka.records import messages_of
from services.adapters.kafka.settings import KafkaConnection

Ranges = dict[str, dict[int, tuple[int, int]]]  # topic -> partition -> (committed, end)
Clients = tuple[AIOKafkaAdminClient, AIOKafkaConsumer]

_CLOSE_WITHIN = 5.0  # seconds a dropped client may take to close
_RETRY_AFTER = 0.2  # seconds between lookups of a group coordinator that is not ready
# bytes a fetch of the counted records may bring at most (a record packs up to PACK_BYTES; one
# larger than this comes alone): what the count holds at once, whatever the lag
_FETCH_BYTES = 2 * 2**20


class BacklogProbe:
    """Uncommitted records per topic and group, from the brokers."""

    def __init__(self, connection: KafkaConnection, timeout: float = 15.0) -> None:
        self.connection = connection
        self.timeout = timeout
        self._clients: Clients | None = None
        self._lock = asyncio.Lock()
        self._closing: set[asyncio.Task[None]] = set()

    async def waiting(self, queues: Mapping[str, tuple[str, int]]) -> dict[str, int]:
        """For each topic (plain name) -> (group, up_to): how many of its events the group has
        not committed, counted up to `up_to`."""
        try:
            async with asyncio.timeout(self.timeout), self._lock:
                if self._clients is None:
                    self._clients = self._make()
                    admin, offsets = self._clients
                    await admin.start()
                    await offsets.start()
                admin, offsets = self._clients
                ranges = await self._read(admin, offsets, queues)
                out = {}
                for topic, (_, up_to) in queues.items():
                    lag = ranges.get(topic, {})
                    records = sum(max(0, end - start) for start, end in lag.values())
                    if records >= up_to or records == 0:
                        out[topic] = min(records, up_to)
                    else:
                        out[topic] = await self._count(offsets, topic, lag, up_to)
                return out
        except BaseException:
            self._drop()  # a fresh client next time: after a failed bootstrap, a restart
            raise

    async def _count(
        self,
        consumer: AIOKafkaConsumer,
        topic: str,
        lag: Mapping[int, tuple[int, int]],
        up_to: int,
    ) -> int:
        """The events (a packed record holds several) of `topic`'s records in [start, end) of
        each partition, read with `consumer` until `up_to` are found: a fetch of at most
        `_FETCH_BYTES` at a time, each record decoded and dropped, the partitions unassigned
        after (no prefetching between ticks)."""
        real = self.connection.topic(topic)
        ends = {TopicPartition(real, p): end for p, (start, end) in lag.items() if end > start}
        consumer.assign(list(ends))
        try:
            for tp in ends:
                consumer.seek(tp, lag[tp.partition][0])
            events = 0
            left = set(ends)
            while left and events < up_to:
                batches = await consumer.getmany(*left, timeout_ms=500)
                for tp, records in batches.items():
                    events += sum(len(messages_of(r, 0)) for r in records if r.offset < ends[tp])
                for tp in list(left):
                    if await consumer.position(tp) >= ends[tp]:
                        left.discard(tp)
            return min(events, up_to)
        finally:
            consumer.unsubscribe()

    async def _read(
        self,
        admin: AIOKafkaAdminClient,
        offsets: AIOKafkaConsumer,
        queues: Mapping[str, tuple[str, int]],
    ) -> Ranges:
        real = {self.connection.topic(t): t for t in queues}
        # every topic's metadata: one named in the request would be created if missing
        tps = [
            TopicPartition(d["topic"], p["partition"])
            for d in await admin.describe_topics()
            if d["topic"] in real and not d["error_code"]
            for p in d["partitions"]
        ]
        if not tps:
            return {}
        ends = await offsets.end_offsets(tps)
        firsts = await offsets.beginning_offsets(tps)
        specs: dict[str, list[TopicPartition]] = {}
        for tp in tps:
            specs.setdefault(self.connection.topic(queues[real[tp.topic]][0]), []).append(tp)
        committed = {group: await _group_offsets(admin, group, ps) for group, ps in specs.items()}
        out: Ranges = {}
        for tp in tps:
            group = self.connection.topic(queues[real[tp.topic]][0])
            done = committed[group].get(tp)
            offset = done.offset if done is not None else -1
            start = max(int(firsts[tp]), int(offset))
            out.setdefault(real[tp.topic], {})[tp.partition] = (start, int(ends[tp]))
        return out

    def _make(self) -> Clients:
        bound = int(self.timeout * 1000 * 2 / 3)  # a request gives up before its caller does
        name = f"{self.connection.client_id}-backlog"
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self.connection.bootstrap,
            client_id=name,
            request_timeout_ms=bound,
        )
        offsets = AIOKafkaConsumer(
            bootstrap_servers=self.connection.bootstrap,
            client_id=name,
            group_id=None,
            enable_auto_commit=False,
            request_timeout_ms=bound,
            fetch_max_bytes=_FETCH_BYTES,
            max_partition_fetch_bytes=_FETCH_BYTES // 2,
        )
        return admin, offsets

    def _drop(self) -> None:
        clients, self._clients = self._clients, None
        if clients is not None:
            task = asyncio.get_running_loop().create_task(_close(clients))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def close(self) -> None:
        """Close the clients (each within `_CLOSE_WITHIN` seconds)."""
        self._drop()
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)


async def _group_offsets(
    admin: AIOKafkaAdminClient, group: str, partitions: list[TopicPartition]
) -> dict[TopicPartition, Any]:
    """`group`'s committed offsets of `partitions` (-1, or none, where it has none)."""
    while True:
        try:
            found: dict[TopicPartition, Any]
            found = await admin.list_consumer_group_offsets(group, partitions=partitions)
            return found
        except KafkaError as exc:  # e.g. COORDINATOR_NOT_AVAILABLE for a group new to it
            if not exc.retriable:
                raise
        await asyncio.sleep(_RETRY_AFTER)  # the caller's timeout bounds the retries


async def _close(clients: Clients) -> None:
    admin, offsets = clients
    for closing in (admin.close, offsets.stop):
        with contextlib.suppress(Exception):
            async with asyncio.timeout(_CLOSE_WITHIN):
                await closing()
