"""The scheduler's hold on every registered work: leases, their release after a crash of the
embedded process, the reconcile that closes gaps, and emission paced to a source's backlog."""

from __future__ import annotations

import random
import sqlite3
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from services.adapters.memory.bus import MemoryBus
from services.bootstrap import make_pipeline
from services.core.events import TOPIC_WORKS, refresh_topic
from services.core.ports import DueEntry
from services.core.works import Work
from services.embedded import refresh_until_idle, release_dead_leases
from services.fetchers.http import HttpSettings
from services.fetchers.registry import SOURCES, get_source
from services.registration import work_event
from services.scheduler.service import SchedulerSettings
from tests.unit.pipeline_kit import pipeline_kit

DOIS = [f"10.5555/sched.{n}" for n in range(30)]


def _due_rows(path: Path) -> dict[tuple[str, str], tuple[str, int]]:
    """(source, work) -> (due_at, leased), read straight from the file."""
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT source, work_id, due_at, leased FROM due")
        return {(s, w): (at, leased) for s, w, at, leased in rows}


async def test_a_tick_leases_what_it_hands_out(tmp_path: Path) -> None:
    """Each work handed out is leased: marked, and due again only when the lease runs out."""
    async with pipeline_kit(tmp_path, synthetic=True, sources=("crossref",)) as kit:
        await kit.register(DOIS[:3])
        emitted = await kit.pipeline.scheduler.tick()

        assert emitted == 3
        assert await kit.store.due("crossref", kit.clock(), 10) == []
        lease_ends = kit.clock() + kit.pipeline.scheduler.settings.lease
        assert await kit.store.due("crossref", lease_ends, 10) == [
            DueEntry(d, lease_ends, 1, leased=True) for d in DOIS[:3]
        ]


async def test_after_a_crash_the_works_in_flight_are_refreshed_at_once(tmp_path: Path) -> None:
    """The process dies with requests in its in-process bus: the next one releases their
    leases at start-up and refreshes them right away, not an hour later."""
    async with pipeline_kit(tmp_path, synthetic=True) as kit:
        await kit.register(DOIS)
        await kit.pipeline.scheduler.tick()  # handed out, then the process is killed
        # the next process: same file, a fresh bus (the old one died), the same clock
        bus = MemoryBus()
        http = HttpSettings(retries=0, rates={name: 1000.0 for name in SOURCES})
        restarted = make_pipeline(
            kit.pipeline.settings, bus, kit.store, kit.clock, rng=random.Random(1), http=http
        )
        async with restarted.caller:
            released = await release_dead_leases(restarted.scheduler)
            summary = await refresh_until_idle(restarted)

        assert released == 3 * len(DOIS)
        assert summary.refreshed == 3 * len(DOIS)
        states = await kit.store.states_for(DOIS)
        assert all(len(rows) == 3 for rows in states.values())


async def test_reconcile_gives_each_work_the_entries_it_lacks_page_by_page(
    tmp_path: Path,
) -> None:
    """Works that have no entry (registered before registration scheduled, or a source
    enabled later) get one from the reconcile, a page at a time; works that have one keep it."""
    async with pipeline_kit(tmp_path, synthetic=True, sources=("crossref", "openalex")) as kit:
        scheduler = kit.pipeline.scheduler
        scheduler.settings = replace(scheduler.settings, reconcile_page=7)
        await kit.store.register([Work(d, doi=d) for d in DOIS])  # no schedule: a gap
        await kit.register(DOIS[:1])  # this one is scheduled (and so kept as it is)
        await kit.store.set_due("crossref", [DueEntry(DOIS[0], kit.clock() + timedelta(days=9))])

        steps = []
        while not steps or not steps[-1].done:
            steps.append(await scheduler.reconcile())

        assert [s.works for s in steps] == [7, 7, 7, 7, 2]
        assert sum(s.added for s in steps) == 2 * (len(DOIS) - 1)
        assert scheduler.reconciled == 2 * (len(DOIS) - 1)
        rows = _due_rows(tmp_path / "alm.sqlite")
        assert {w for _, w in rows} == set(DOIS)
        assert len(rows) == 2 * len(DOIS)
        assert (await scheduler.reconcile()).added == 0  # a second pass finds nothing missing


async def test_reading_a_work_event_again_never_reschedules_it(tmp_path: Path) -> None:
    """A redelivered `alm.works` event leaves a refreshed work's next due time alone (it only
    adds entries that are missing)."""
    async with pipeline_kit(tmp_path, synthetic=True, sources=("crossref",)) as kit:
        await kit.register(DOIS[:2])
        await refresh_until_idle(kit.pipeline)
        before = _due_rows(tmp_path / "alm.sqlite")
        events = [(d, work_event(Work(d, doi=d), "registered", kit.clock())) for d in DOIS[:2]]

        await kit.bus.publish(TOPIC_WORKS, events)
        summary = await refresh_until_idle(kit.pipeline)

        assert summary.requested == 0
        assert _due_rows(tmp_path / "alm.sqlite") == before


async def test_an_announced_work_is_scheduled_by_its_registration_not_by_the_event(
    tmp_path: Path,
) -> None:
    """The scheduler reads `alm.works` without writing entries: registration wrote them (or
    an intake row) with the work; an event alone (no work stored) schedules nothing, and the
    reconcile pass is what closes a gap."""
    async with pipeline_kit(tmp_path, synthetic=True, sources=("crossref",)) as kit:
        ghost = "10.5555/announced.only"
        await kit.bus.publish(
            TOPIC_WORKS, [(ghost, work_event(Work(ghost, doi=ghost), "registered", kit.clock()))]
        )
        await kit.pipeline.scheduler.step(0)
        assert kit.bus.pending(TOPIC_WORKS, kit.pipeline.scheduler.GROUP) == 0  # read
        assert _due_rows(tmp_path / "alm.sqlite") == {}
        await kit.register(DOIS[:1])
        assert {w for _, w in _due_rows(tmp_path / "alm.sqlite")} == {DOIS[0]}


async def test_emission_waits_for_the_source_to_take_its_queue(tmp_path: Path) -> None:
    """With the in-process bus, a tick hands a source no more than its queue allows (here
    128 requests for a one-work-a-call source); the rest stays due, not leased."""
    dois = [f"10.5555/queue.{n}" for n in range(300)]
    async with pipeline_kit(tmp_path, synthetic=True, sources=("datacite",)) as kit:
        await kit.register(dois)
        scheduler = kit.pipeline.scheduler

        first = await scheduler.tick()
        second = await scheduler.tick()  # nothing taken yet: no room
        taken = await kit.pipeline.fetchers[0].step(0)  # whole records of 64+ requests
        third = await scheduler.tick()

        assert (first, second) == (128, 0)
        assert 64 <= taken < 128
        assert third == taken  # the queue is topped up to 128 again
        assert kit.bus.pending(refresh_topic("datacite"), "alm-fetcher-datacite") == 128
        assert len(await kit.store.due("datacite", kit.clock(), 1000)) == 300 - 128 - taken


async def test_a_tick_emits_a_sources_share_in_bounded_rounds(tmp_path: Path) -> None:
    """A tick reads, builds and emits a source's share `emit_round` requests at a time, so
    what it holds does not grow with the due backlog; it still hands out the whole share, each
    request once, and stops at the share: the rest stays due."""
    dois = [f"10.5555/round.{n}" for n in range(25)]
    async with pipeline_kit(tmp_path, synthetic=True, sources=("crossref",)) as kit:
        await kit.register(dois)
        scheduler = kit.pipeline.scheduler
        scheduler.settings = replace(scheduler.settings, emit_round=4, per_source_per_tick=18)
        asked: list[int] = []
        due = kit.store.due

        async def spy(source, now, limit, handoff=None):  # type: ignore[no-untyped-def]
            asked.append(limit)
            return await due(source, now, limit, handoff)

        scheduler.store.due = spy  # type: ignore[method-assign]
        first = await scheduler.tick()
        rounds, asked[:] = list(asked), []
        second = await scheduler.tick()

        assert (first, second) == (18, 25 - 18)
        assert rounds == [4, 4, 4, 4, 2]  # the share of 18, four at a time
        assert asked == [4, 4]  # 7 left: a short round ends the tick
        assert kit.bus.pending(refresh_topic("crossref"), "alm-fetcher-crossref") == 25
        assert await kit.store.due("crossref", kit.clock(), 100) == []


def test_a_sources_queue_holds_two_ticks_of_calls_at_its_rate() -> None:
    """The queue a source may have waiting: at least `min_queue` requests and `queued_calls`
    calls' worth, and two ticks of calls at its rate limit (ALM_<SOURCE>_RATE where set), so
    fetchers at that rate never run dry between ticks, and a request never waits long enough
    for its lease to run out."""
    datacite = get_source("datacite")  # one work a call, 3 calls/s by default
    settings = SchedulerSettings(tick_seconds=5.0, per_source_per_tick=5000)
    assert settings.queue(datacite) == 128
    assert replace(settings, rates={"datacite": 100.0}).queue(datacite) == 1000
    assert replace(settings, rates={"datacite": 100.0}, tick_seconds=0.5).queue(datacite) == 128
    assert replace(settings, min_queue=1).queue(datacite) == 40
    # a loopback stub at 1,000 calls/s: no more than a tick's share waits
    assert replace(settings, rates={"datacite": 1000.0}).queue(datacite) == 5000


async def test_works_registered_in_bulk_are_taken_in_by_the_tick_and_refreshed(
    tmp_path: Path,
) -> None:
    """Works registered in bulk wait in the intake with no entry; a tick takes at most its
    share of them in (their entries written) before emitting, and every one is refreshed."""
    async with pipeline_kit(tmp_path, synthetic=True, sources=("crossref", "openalex")) as kit:
        scheduler = kit.pipeline.scheduler
        scheduler.settings = replace(scheduler.settings, intake_per_tick=12)
        works = [Work(d, doi=d) for d in DOIS]
        await kit.store.register(works, intake=True)
        assert _due_rows(tmp_path / "alm.sqlite") == {}

        first = await scheduler.tick()

        assert first == 2 * 12 and scheduler.taken_in == 12
        assert await scheduler.due_now()  # takes the rest of the intake in first
        assert scheduler.taken_in == len(DOIS)
        summary = await refresh_until_idle(kit.pipeline)
        assert summary.requested == 2 * (len(DOIS) - 12)  # the first tick's were sent
        assert summary.refreshed == 2 * len(DOIS)
        assert {w for _, w in _due_rows(tmp_path / "alm.sqlite")} == set(DOIS)
        assert await kit.store.take_intake(100, lambda w: {}) == 0
