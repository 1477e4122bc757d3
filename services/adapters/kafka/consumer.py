"""A Kafka consumer-group member (kafka-python), used from asyncio without blocking the loop.

kafka-python is synchronous and a KafkaConsumer must stay on one thread: each member polls,
commits and closes on a single worker thread of its own. A member commits only when the caller
says so, after its writes (at-least-once).
"""

from __future__ import annotations

import asyncio
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import structlog

from services.adapters.kafka.lag import observe_lag
from services.adapters.kafka.records import messages_of
from services.core.partitions import LagSink
from services.core.ports import Message

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # kafka-python's importlib use
    from kafka import KafkaConsumer
    from kafka.errors import CommitFailedError, KafkaError

log = structlog.get_logger("alm.kafka")


class KafkaBusConsumer:
    """A consumer-group member: poll, process, then commit (at-least-once)."""

    def __init__(
        self,
        bootstrap: str,
        client_id: str,
        topics: list[str],
        group: str,
        strip: int,
        lag: LagSink,
    ) -> None:
        self._bootstrap = bootstrap
        self._client_id = client_id
        self._topics = topics
        self._group = group
        self._strip = strip
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=f"kafka-{group}")
        self._consumer: KafkaConsumer | None = None
        self._closed = False
        self._per_record = 1.0  # events per record in the last poll
        self._lag = lag  # alm_consumer_lag of the partitions this member owns
        self._rewind = False  # a rewind asked for and not done yet (done before the next poll)

    def _ensure(self) -> KafkaConsumer:
        if self._consumer is None:
            self._consumer = KafkaConsumer(
                *self._topics,
                bootstrap_servers=self._bootstrap,
                client_id=self._client_id,
                group_id=self._group,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                isolation_level="read_committed",
                session_timeout_ms=15_000,
                heartbeat_interval_ms=3_000,
                max_poll_interval_ms=300_000,
            )
        return self._consumer

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    def _poll(self, max_records: int, timeout: float) -> list[Message]:
        consumer = self._ensure()
        if self._rewind:
            self._seek_committed()
        # Records may hold many events: ask for about as many records as make `max_records`
        # events at the last poll's events per record.
        want = max(1, min(max_records, round(max_records / self._per_record)))
        batches = consumer.poll(timeout_ms=int(timeout * 1000), max_records=want)
        out: list[Message] = []
        taken = 0
        for tp, records in batches.items():
            for record in records:
                if out and len(out) >= max_records:
                    # Not handed out: read again from here next time, so the position (what
                    # commit() stores) never passes an event that was not processed.
                    consumer.seek(tp, record.offset)
                    break
                out.extend(messages_of(record, self._strip))
                taken += 1
        if taken:
            self._per_record = max(1.0, len(out) / taken)
        observe_lag(consumer, batches, self._lag)
        return out

    async def poll(self, max_records: int, timeout: float) -> list[Message]:
        """Events after this member's position, waiting up to `timeout`: whole records, up to
        `max_records` events (more only when the first record alone holds more)."""
        result: list[Message] = await self._run(self._poll, max_records, timeout)
        return result

    def _seek_committed(self) -> None:
        """Move every assigned partition back to the group's committed offset (to the start
        where nothing is committed yet: auto_offset_reset is earliest)."""
        consumer = self._consumer
        if consumer is not None:
            for tp in consumer.assignment():
                offset = consumer.committed(tp)
                if offset is None:
                    consumer.seek_to_beginning(tp)
                else:
                    consumer.seek(tp, offset)
        self._rewind = False

    async def rewind(self) -> None:
        """Go back to the committed offsets, so the batch of a failed step is polled again
        (without it, the position is past that batch and the next commit would skip it). If the
        group coordinator cannot tell the offsets now, the rewind is done before the next poll,
        and nothing is committed until then."""
        self._rewind = True
        try:
            await self._run(self._seek_committed)
        except KafkaError as exc:
            log.warning("rewind_deferred", group=self._group, error=str(exc))

    def _commit(self) -> None:
        if self._consumer is None or self._rewind:  # positions past unprocessed records
            return
        consumer = self._consumer
        positions = {tp: consumer.position(tp) for tp in consumer.assignment()}
        try:
            consumer.commit()  # commits exactly these positions (what was consumed)
        except CommitFailedError as exc:
            # The group rebalanced while we processed: the partitions' new owner re-reads the
            # batch from the last commit (at-least-once; every write is idempotent).
            log.warning("commit_failed_after_rebalance", group=self._group, error=str(exc))
            return
        for tp, offset in positions.items():
            if offset is not None:
                self._lag.committed((tp.topic, tp.partition), offset)

    async def commit(self) -> None:
        """Commit the positions of everything polled so far."""
        await self._run(self._commit)

    def _close(self) -> None:
        self._lag.close()
        if self._consumer is not None:
            self._consumer.close(autocommit=False)
            self._consumer = None

    async def close(self) -> None:
        """Leave the group without committing."""
        if self._closed:
            return
        self._closed = True
        await self._run(self._close)
        self._thread.shutdown(wait=True)
