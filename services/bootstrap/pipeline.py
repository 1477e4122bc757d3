"""The services over a store and a bus: each on its own (a distributed process builds only its
own part) and all of them together (`make_pipeline`: the embedded mode and the tests)."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from services.aggregator.published import PublishedChanges
from services.aggregator.service import Aggregator
from services.bootstrap.adapters import make_checks, make_store
from services.bootstrap.clock import utc_now
from services.checks.service import Checker
from services.core.events import refresh_topic
from services.core.metrics import MetricSpec
from services.core.ports import Bus, QueueDepth, Store
from services.core.staleness import Policy
from services.fetchers.base import Source
from services.fetchers.http import HttpCaller, HttpSettings
from services.fetchers.registry import SOURCES, get_source
from services.fetchers.service import FetcherService
from services.registration import Scheduling
from services.scheduler.service import Backlog, Scheduler, SchedulerSettings
from services.settings import Settings


def make_checker(
    settings: Settings, store: Store, clock: Callable[[], datetime] = utc_now
) -> Checker:
    """The periodic data-quality checks of the sources this configuration runs."""
    return Checker(
        make_checks(settings, store),
        store,
        [s.name for s in selected_sources(settings)],
        clock,
        settings.checks,
        timedelta(seconds=settings.stale_scan_seconds),
    )


def catalog() -> dict[str, tuple[MetricSpec, ...]]:
    """Each installed source's metric specs (what the aggregator's checks read)."""
    return {name: source.metrics for name, source in SOURCES.items()}


def selected_sources(settings: Settings) -> list[Source]:
    """The sources to run: ALM_SOURCES if set, else every registered one that has the
    credentials it needs (Mendeley, COUNTER without them would only fail every work)."""
    if settings.sources:
        return [get_source(name) for name in settings.sources]
    return [s for s in SOURCES.values() if s.missing_config(settings.source_config(s.name)) is None]


def make_scheduling(settings: Settings) -> Scheduling:
    """What registration owes a work: entries from the sources this configuration runs."""
    return Scheduling(tuple(selected_sources(settings)), settings.policy())


def make_caller(
    settings: Settings, sources: list[Source], http: HttpSettings | None = None
) -> HttpCaller:
    """The shared HTTP layer, pointed at the stub upstream or the real APIs."""
    urls = {s.name: settings.base_url_for(s.name, s.base_url) for s in sources}
    http = http or HttpSettings(user_agent=settings.user_agent, rates=settings.rates)
    return HttpCaller(urls, http)


@dataclass(slots=True)
class Pipeline:
    """Every service of the pipeline over one bus and one store (the embedded mode)."""

    settings: Settings
    bus: Bus
    store: Store
    caller: HttpCaller
    scheduler: Scheduler
    fetchers: list[FetcherService]
    aggregator: Aggregator
    clock: Callable[[], datetime]
    checker: Checker


def make_scheduler(
    settings: Settings,
    bus: Bus,
    store: Store,
    clock: Callable[[], datetime] = utc_now,
    policy: Policy | None = None,
    rng: random.Random | None = None,
) -> Scheduler:
    """The scheduler over the sources this configuration runs."""
    return Scheduler(
        selected_sources(settings),
        bus,
        store,
        policy or settings.policy(),
        SchedulerSettings(rates=settings.rates),
        clock,
        rng or random.Random(),
        backlog=_backlog(bus, brokers=settings.backpressure),
    )


def make_fetchers(
    settings: Settings,
    bus: Bus,
    store: Store,
    caller: HttpCaller,
    clock: Callable[[], datetime] = utc_now,
    policy: Policy | None = None,
    rng: random.Random | None = None,
) -> list[FetcherService]:
    """One fetcher per source this configuration runs, over the shared HTTP layer `caller`."""
    checks = make_checks(settings, store)
    return [
        FetcherService(
            s,
            bus,
            store,
            caller,
            settings.source_config(s.name),
            policy or settings.policy(),
            clock,
            rng=rng or random.Random(),
            activity=checks,
            failure_limit=settings.source_failure_limit,
        )
        for s in selected_sources(settings)
    ]


def make_aggregator(
    settings: Settings,
    bus: Bus,
    store: Store,
    clock: Callable[[], datetime] = utc_now,
    policy: Policy | None = None,
    rng: random.Random | None = None,
    already_published: PublishedChanges | None = None,
) -> Aggregator:
    """The aggregator, with the data-quality checks it feeds (distributed: with the check of
    what a partition's previous owner already published)."""
    return Aggregator(
        bus,
        store,
        policy or settings.policy(),
        clock,
        rng or random.Random(),
        already_published=already_published,
        alerts=make_checks(settings, store),
        catalog=catalog(),
        limits=settings.checks,
    )


def make_pipeline(
    settings: Settings,
    bus: Bus,
    store: Store,
    clock: Callable[[], datetime] = utc_now,
    policy: Policy | None = None,
    rng: random.Random | None = None,
    http: HttpSettings | None = None,
) -> Pipeline:
    """Wire scheduler, one fetcher per source and the aggregator (not yet started): the
    embedded mode and the tests; a distributed service builds only its own part."""
    policy = policy or settings.policy()
    rng = rng or random.Random()
    caller = make_caller(settings, selected_sources(settings), http)
    return Pipeline(
        settings,
        bus,
        store,
        caller,
        make_scheduler(settings, bus, store, clock, policy, rng),
        make_fetchers(settings, bus, store, caller, clock, policy, rng),
        make_aggregator(settings, bus, store, clock, policy, rng),
        clock,
        make_checker(settings, store, clock),
    )


def _backlog(bus: Bus, brokers: bool = False) -> Backlog | None:
    """source -> up_to to source -> how many of its refresh requests its fetchers have not
    committed, counted up to `up_to`: the scheduler's backpressure. The in-process bus counts
    them itself; over Kafka (`brokers`: ALM_SCHEDULER_BACKPRESSURE) the brokers are asked each
    tick (backlog.py; on by default, `false` turns it off: docs/operations.md);
    tests/integration/test_backpressure.py runs it on a real broker."""
    from services.adapters.memory.bus import MemoryBus

    if not isinstance(bus, QueueDepth) or not (brokers or isinstance(bus, MemoryBus)):
        return None
    depth = bus

    async def waiting(up_to: Mapping[str, int]) -> dict[str, int]:
        queues = {
            refresh_topic(s): (FetcherService.group_of(s), limit) for s, limit in up_to.items()
        }
        found = await depth.waiting(queues)
        return {s: found.get(refresh_topic(s), 0) for s in up_to}

    return waiting


@dataclass(slots=True)
class AggregatorParts:
    """What the distributed aggregator (the faust app, services/aggregator/app.py) runs with:
    the bus it publishes changes on, the store, the Aggregator over both, and the check of
    what a previous owner of a partition already published (reading the same cluster)."""

    bus: Bus
    store: Store
    aggregator: Aggregator
    published: PublishedChanges


def make_aggregator_parts(settings: Settings) -> AggregatorParts:
    """The distributed aggregator's parts, over the Kafka cluster and the store `settings`
    name (nothing connects until first used)."""
    from services.adapters.kafka import KafkaBus

    bus = KafkaBus(
        settings.kafka_bootstrap, client_id="alm-aggregator", prefix=settings.topic_prefix
    )
    published = PublishedChanges(bus.reader)
    store = make_store(settings)
    aggregator = make_aggregator(settings, bus, store, already_published=published)
    return AggregatorParts(bus, store, aggregator, published)
