"""How many events of some topics their consumer groups have not committed yet: the scheduler's
backpressure on the refresh topics (services/scheduler/service.py), read from the brokers.

One admin client, kept, on a thread of its own: per call, one metadata request for the topics'
partitions, one ListOffsets each for their first and end offsets, and one OffsetFetch for
every group. The records between a group's committed offset (the first kept one where it has
committed nothing: the fetchers read from the earliest) and the end are counted in events (a
refresh record packs up to 50 requests) by reading them, but only while they may hold fewer
than the caller's bound: a record holds one event or more, so that many records or more is
already as full as the caller cares. A call that outlasts `timeout` raises, and so does the
next one while it still runs: the scheduler then emits nothing in that tick (due works stay
due) instead of waiting on a broker that does not answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import warnings
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from services.adapters.kafka.settings import KafkaConnection

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # kafka-python's importlib use
    from kafka import KafkaAdminClient, TopicPartition
    from kafka.admin import OffsetSpec

Ranges = dict[str, dict[int, tuple[int, int]]]  # topic -> partition -> (committed, end)


class BacklogProbe:
    """Uncommitted records per topic and group, from the brokers."""

    def __init__(self, connection: KafkaConnection, timeout: float = 15.0) -> None:
        self.connection = connection
        self.timeout = timeout
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kafka-backlog")
        self._admin: Any = None
        self._running: Future[Ranges] | None = None

    async def waiting(
        self,
        queues: Mapping[str, tuple[str, int]],
        count: Callable[[str, Mapping[int, tuple[int, int]]], Awaitable[dict[int, int]]],
    ) -> dict[str, int]:
        """For each topic (plain name) -> (group, up_to): how many of its events the group has
        not committed, counted up to `up_to`; `count` counts the events of record ranges."""
        if self._running is not None and not self._running.done():
            raise TimeoutError("the previous backlog read of the brokers has not answered yet")
        self._running = self._executor.submit(self._ranges, dict(queues))
        ranges = await asyncio.wait_for(asyncio.wrap_future(self._running), self.timeout)
        out = {}
        for topic, (_, up_to) in queues.items():
            lag = ranges.get(topic, {})
            records = sum(max(0, end - start) for start, end in lag.values())
            if records >= up_to or records == 0:
                out[topic] = min(records, up_to)
            else:
                out[topic] = min(sum((await count(topic, lag)).values()), up_to)
        return out

    def _ranges(self, queues: Mapping[str, tuple[str, int]]) -> Ranges:
        try:
            return self._read(queues)
        except Exception:
            self._close_admin()  # a fresh client next time, after a broker restart
            raise

    def _read(self, queues: Mapping[str, tuple[str, int]]) -> Ranges:
        admin = self._client()
        real = {self.connection.topic(t): t for t in queues}
        tps = [
            TopicPartition(d["name"], p["partition_index"])
            for d in admin.describe_topics(list(real))
            if not d.get("error_code")
            for p in d["partitions"]
        ]
        if not tps:
            return {}
        ends = admin.list_partition_offsets({tp: OffsetSpec.LATEST for tp in tps})
        firsts = admin.list_partition_offsets({tp: OffsetSpec.EARLIEST for tp in tps})
        specs: dict[str, list[Any]] = {}
        for tp in tps:
            group = self.connection.topic(queues[real[tp.topic]][0])
            specs.setdefault(group, []).append(tp)
        committed = admin.list_group_offsets(specs)
        out: Ranges = {}
        for tp in tps:
            group = self.connection.topic(queues[real[tp.topic]][0])
            done = committed.get(group, {}).get(tp)
            offset = getattr(done, "offset", -1) if done is not None else -1
            start = max(int(firsts[tp].offset), int(offset))
            out.setdefault(real[tp.topic], {})[tp.partition] = (start, int(ends[tp].offset))
        return out

    def _client(self) -> Any:
        if self._admin is None:
            bound = int(self.timeout * 1000 * 2 / 3)  # a call gives up before its caller does
            self._admin = KafkaAdminClient(
                bootstrap_servers=self.connection.bootstrap,
                client_id=f"{self.connection.client_id}-backlog",
                request_timeout_ms=bound,
                bootstrap_timeout_ms=bound,
            )
        return self._admin

    def _close_admin(self) -> None:
        admin, self._admin = self._admin, None
        if admin is not None:
            with contextlib.suppress(Exception):
                admin.close()

    def close(self) -> None:
        """Close the client (on its thread) and the thread."""
        self._executor.submit(self._close_admin)
        self._executor.shutdown(wait=False)
