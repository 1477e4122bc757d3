"""The distributed aggregator: a faust-streaming app over `alm.metrics.raw`.

Started by `alm aggregator` through `run_worker(settings)`: a faust Worker in the command's
event loop (no `faust` CLI), log level warn, web server off.

Where the state lives: read-through to Cassandra, no faust Table. The state is already in
Cassandra for the API, and Cassandra is what decides whether an observation is new
(aggregate() compares with the stored `retrieved_at`), so a Table with a changelog topic would
be a second copy to recover on every rebalance and to keep in step with the first. Partitions
(keyed by work id) make each work's state owned by one aggregator at a time, so reading it,
folding and writing it back has no competing writer. App store `memory://` (nothing in it).

Processing guarantee `at_least_once`, made exact where it matters:
- offsets are committed only after a batch is fully processed (the agent acknowledges events
  itself, after Aggregator.process returned), so a restart or a crash loses nothing;
- redelivered observations change nothing (aggregate() is idempotent by `retrieved_at`, every
  write is an upsert);
- a change published just before a crash is not re-emitted when its observation is processed
  again (published.py: the new owner of a partition reads what was already published).
faust's `exactly_once` would make the Kafka side transactional but not the Cassandra writes,
which are the part that decides; it is not used.

Several aggregator processes (same app id = consumer group) split the partitions of
`alm.metrics.raw`; each work is counted by exactly one of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import warnings
from typing import Any

import faust
import structlog
from mode.types.signals import BaseSignalT

from services.aggregator.agents import BATCH, Runtime, attach
from services.aggregator.lag_monitor import LagMonitor
from services.aggregator.topics import raw_topic
from services.bootstrap import AggregatorParts, make_aggregator_parts
from services.core.events import TOPIC_RAW
from services.settings import Settings
from services.shutdown import DRAIN_SECONDS, close_all
from services.telemetry import memory

log = structlog.get_logger("alm.aggregator")

APP_ID = "alm-aggregator"  # also the consumer group id (same as the embedded runner's group)


def create_app(settings: Settings, parts: AggregatorParts) -> tuple[Any, Runtime]:
    """The faust app with its agent over `parts` (from bootstrap), and the agent's runtime."""
    prefix = settings.topic_prefix
    datadir = (settings.data_dir / "faust").resolve()  # faust wants it; nothing is kept there
    datadir.mkdir(parents=True, exist_ok=True)
    monitor = LagMonitor(prefix + APP_ID)  # faust's Monitor, exporting alm_consumer_lag
    app = faust.App(
        prefix + APP_ID,
        broker=[f"kafka://{host}" for host in settings.kafka_bootstrap.split(",")],
        store="memory://",
        processing_guarantee="at_least_once",
        autodiscover=False,
        web_enabled=False,
        topic_disable_leader=True,
        topic_allow_declare=False,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        broker_session_timeout=15.0,
        broker_heartbeat_interval=3.0,
        # Records, each up to PACK_OBSERVATIONS observations: a poll and the agent's buffer
        # hold about two of the agent's batches, so memory stays bounded under a backlog.
        # A partition's prefetch stays at faust's 1 MiB: aiokafka skips a record batch larger
        # than the fetch size, and a producer's batch may reach its 1 MB request size.
        broker_max_poll_records=BATCH,
        stream_buffer_maxsize=2 * BATCH,
        stream_wait_empty=True,
        datadir=str(datadir),
        monitor=monitor,
    )
    published = parts.published
    runtime = Runtime(parts.aggregator, published)
    attach(app, raw_topic(app, prefix), runtime)

    def on_revoked(sender: Any, /, *args: Any, signal: BaseSignalT[Any], **kwargs: Any) -> None:
        revoked = args[0] if args else kwargs.get("revoked", ())
        published.forget(tp.partition for tp in revoked if tp.topic == prefix + TOPIC_RAW)
        monitor.revoked(revoked)

    app.on_partitions_revoked.connect(on_revoked)

    return app, runtime


class _Worker(faust.Worker):
    """faust's Worker, draining for at most DRAIN_SECONDS on SIGTERM/SIGINT.

    Rebalances wait for the batch in progress (stream_wait_empty): it finishes, is acknowledged
    and committed before the partition moves. On a signal, no new batch is started and the
    batches in progress get DRAIN_SECONDS to be folded and acknowledged; then faust commits
    what was acknowledged and stops, cancelling whatever is still running (never acknowledged,
    so redone after the restart). Waiting for those would only hang the shutdown (a batch
    retried while Cassandra is down), so faust does not wait for unacknowledged events.
    """

    runtime: Runtime | None = None

    def _flag_as_shutdown_by_signal(self) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # faust warns that the setting was already read
            self.app.conf.stream_wait_empty = False
        super()._flag_as_shutdown_by_signal()

    async def _stop_on_signal(self, signal: Any) -> None:
        if self.runtime is not None:
            drained = await self.runtime.drain(DRAIN_SECONDS)
            log.warning("aggregator_drained", complete=drained)
        await super()._stop_on_signal(signal)


async def run_worker(settings: Settings) -> int:
    """Run the aggregator until SIGTERM/SIGINT; returns the exit code."""
    for name in ("faust", "mode", "aiokafka", "kafka"):  # the worker's own logs: warn and up
        logging.getLogger(name).setLevel(logging.WARNING)
    parts = make_aggregator_parts(settings)
    app, runtime = create_app(settings, parts)
    await runtime.published.check_alignment()
    worker = _Worker(
        app,
        loglevel="warn",
        quiet=True,
        redirect_stdouts=False,
        override_logging=False,
        loop=asyncio.get_running_loop(),
    )
    worker.spinner = None  # a terminal progress spinner; services log to files
    worker.runtime = runtime
    tracing = memory.start("aggregator")
    try:
        await worker.start()  # returns once a signal stopped it
    finally:
        if tracing is not None:
            tracing.cancel()
        with contextlib.suppress(Exception):
            await worker.stop()
        await close_all(parts.bus.close(), parts.store.close())
        log.warning(
            "aggregator_stopped",
            batches=runtime.batches,
            observations=runtime.observations,
            changes=runtime.aggregator.changes,
            suppressed=runtime.published.suppressed,
        )
    return 0
