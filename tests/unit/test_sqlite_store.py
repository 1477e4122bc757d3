"""The SQLite store: works registry, metric state, history, events, raw responses, due-index."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from services.adapters.memory.bus import MemoryBus
from services.adapters.sqlite import SqliteStore
from services.adapters.sqlite.migrations import MIGRATIONS
from services.aggregator.service import fold, learned_works
from services.core.aggregation import Aggregate, HistoryPoint, SourceState, aggregate
from services.core.events import FetchError, Observation, SourceEvent, Status
from services.core.identifiers import Identifier, IdType, parse_identifier
from services.core.ports import DueEntry
from services.core.provenance import RawResponse
from services.core.staleness import Policy
from services.core.works import Work
from services.fetchers.registry import get_source
from services.registration import Scheduling, register

DOI = "10.1371/journal.pcbi.1000204"
T0 = datetime(2024, 5, 1, 12, tzinfo=UTC)
T1 = T0 + timedelta(days=1)
T2 = T0 + timedelta(days=2)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    """A migrated store in a fresh file."""
    sqlite = SqliteStore(tmp_path / "alm.db")
    await sqlite.migrate()
    yield sqlite
    await sqlite.close()


def work(raw: str, **meta: object) -> Work:
    """The work registered for identifier `raw`."""
    return Work.from_identifier(parse_identifier(raw), **meta)


def ok(work_id: str, source: str, at: datetime, **metrics: int) -> Observation:
    """A successful observation."""
    return Observation(work_id, source, at, Status.OK, metrics)


def failed(work_id: str, source: str, at: datetime) -> Observation:
    """A failed observation."""
    return Observation(work_id, source, at, Status.ERROR, error=FetchError("timeout", "slow"))


async def write(store: SqliteStore, *observations: Observation) -> list[Aggregate]:
    """Aggregate `observations` on top of the stored state and write the result, as the
    aggregator does."""
    keys = sorted({(o.work_id, o.source) for o in observations})
    results = fold(observations, await store.states(keys))
    await store.write_aggregates(results)
    return results


# -- migrations --------------------------------------------------------------------------


def migration_versions(path: Path) -> list[int]:
    """The migration versions recorded in the file at `path`."""
    with sqlite3.connect(path) as conn:
        return [row[0] for row in conn.execute("SELECT version FROM schema_migrations")]


async def test_migrate_twice_is_a_no_op(tmp_path: Path) -> None:
    """Migrating an up-to-date file again (also after a restart) keeps its data and schema."""
    path = tmp_path / "alm.db"
    first = SqliteStore(path)
    await first.migrate()
    await first.register([work(DOI)])
    await first.close()
    applied_once = migration_versions(path)

    again = SqliteStore(path)
    await again.migrate()
    await again.migrate()
    assert await again.count_works() == 1
    assert await again.get_work(DOI) == Work(DOI, doi=DOI)
    await again.close()

    assert applied_once
    assert migration_versions(path) == applied_once


async def test_a_file_from_before_publishers_keeps_its_works_and_gains_the_new_fields(
    tmp_path: Path,
) -> None:
    """A file migrated up to the lease migration (3) is brought up to date: its works stay,
    with no type or publisher id; new works keep theirs; the publishers' tables exist."""
    path = tmp_path / "alm.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY)")
        for version, script in enumerate(MIGRATIONS[:3], start=1):
            conn.executescript(script)
            conn.execute("INSERT INTO schema_migrations VALUES (?)", (version,))
        conn.execute(
            "INSERT INTO works VALUES (?,?,NULL,NULL,'Old',NULL,NULL,NULL,'2026-01-01T00:00:00Z')",
            (DOI, DOI),
        )
    store = SqliteStore(path)
    await store.migrate()
    assert await store.get_work(DOI) == Work(DOI, doi=DOI, title="Old")
    typed = Work("10.1371/x", doi="10.1371/x", type="journal-article", publisher_id="340")
    await store.register([typed])
    assert await store.get_work("10.1371/x") == typed
    assert (await store.get_works(["10.1371/x"]))["10.1371/x"] == typed
    updated = Work(DOI, doi=DOI, title="Old", type="dataset", publisher_id="78")
    await store.update_works([updated])
    assert await store.get_work(DOI) == updated
    await store.close()
    with sqlite3.connect(path) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert {"publishers", "catalogue_imports", "works_by_publisher"} <= tables
    assert migration_versions(path) == list(range(1, len(MIGRATIONS) + 1))


# -- works -------------------------------------------------------------------------------


async def test_register_reports_created_then_known(store: SqliteStore) -> None:
    """The first registration creates the work; the same work again is not created twice."""
    first = await store.register([work(DOI)])
    second = await store.register([work(DOI)])

    assert [(r.work.work_id, r.created) for r in first + second] == [(DOI, True), (DOI, False)]
    assert await store.count_works() == 1


@pytest.mark.parametrize(
    "spellings",
    [
        ["10.1371/JOURNAL.PCBI.1000204", "https://doi.org/10.1371/journal.pcbi.1000204"],
        ["http://dx.doi.org/10.1371/Journal.Pcbi.1000204", "doi:10.1371/journal.pcbi.1000204"],
        ["10.1371%252Fjournal.pcbi.1000204", " 10.1371/journal.PCBI.1000204 "],
    ],
)
async def test_register_dedupes_a_doi_in_any_case_or_form(
    store: SqliteStore, spellings: list[str]
) -> None:
    """One DOI registered in several spellings (one call and again later) is one work."""
    bus = MemoryBus()
    scheduling = Scheduling((get_source("crossref"),), Policy())
    first = await register(spellings, store, bus, T0, scheduling)
    later = await register(
        ["HTTPS://DX.DOI.ORG/10.1371/JOURNAL.PCBI.1000204"], store, bus, T1, scheduling
    )

    assert {r.work_id for r in first + later} == {DOI}
    assert await store.count_works() == 1
    assert await store.list_works(0, 10) == [Work(DOI, doi=DOI)]


async def test_find_work_by_learned_pmid_and_pmcid(store: SqliteStore) -> None:
    """Once a DOI work learns its PMID and PMCID from an upstream, it is found by them."""
    await store.register([work(DOI)])
    obs = Observation(
        DOI,
        "europepmc",
        T0,
        Status.OK,
        {"citations": 3},
        work_meta={"pmid": "18974831", "pmcid": "PMC2568856", "title": "A paper"},
    )
    learned = learned_works([obs], await store.get_works([DOI]))

    registrations = await store.register(learned)

    assert [r.created for r in registrations] == [False]
    expected = Work(DOI, doi=DOI, pmid="18974831", pmcid="PMC2568856", title="A paper")
    assert await store.find_work(Identifier(IdType.PMID, "18974831")) == expected
    assert await store.find_work(Identifier(IdType.PMCID, "PMC2568856")) == expected
    assert await store.find_work(Identifier(IdType.DOI, DOI)) == expected
    assert await store.count_works() == 1


async def test_registering_a_known_pmid_under_its_doi_is_the_same_work(
    store: SqliteStore,
) -> None:
    """A work first known by PMID, then registered by DOI with that PMID, is merged not doubled."""
    await store.register([work("18974831")])

    (reg,) = await store.register([Work(DOI, doi=DOI, pmid="18974831")])

    assert not reg.created
    assert reg.work == Work("pmid:18974831", doi=DOI, pmid="18974831")
    assert await store.find_work(Identifier(IdType.DOI, DOI)) == reg.work
    assert await store.count_works() == 1


async def test_re_registering_keeps_known_metadata(store: SqliteStore) -> None:
    """Registering a bare id of a known work does not wipe its title or date."""
    await store.register([work(DOI, title="A paper", issued=date(2008, 10, 31))])

    await store.register([work(DOI)])

    assert await store.get_work(DOI) == Work(
        DOI, doi=DOI, title="A paper", issued=date(2008, 10, 31)
    )


async def test_find_work_unknown_is_none(store: SqliteStore) -> None:
    """Looking up an identifier nobody registered gives None."""
    await store.register([work(DOI)])
    assert await store.find_work(Identifier(IdType.PMID, "1")) is None
    assert await store.get_work("10.1371/other") is None


async def test_find_works_reads_more_identifiers_than_one_statement_binds(
    store: SqliteStore,
) -> None:
    """1,200 DOIs and PMIDs (more than one IN list takes) are all found, in a few statements,
    not one per identifier."""
    dois = [f"10.5555/many.{n}" for n in range(1200)]
    await store.register([work(d) for d in dois])
    await store.register(
        [Work(work_id=d, doi=d, pmid=str(10_000 + n)) for n, d in enumerate(dois[:50])]
    )
    asked = [Identifier(IdType.DOI, d) for d in dois]
    asked += [Identifier(IdType.PMID, str(10_000 + n)) for n in range(50)]
    statements: list[str] = []

    def trace(conn: sqlite3.Connection) -> None:
        conn.set_trace_callback(statements.append)

    await store.run(trace)
    found = await store.find_works([*asked, Identifier(IdType.DOI, "10.5555/none")])
    await store.run(lambda conn: conn.set_trace_callback(None))
    assert len(found) == len(asked)
    assert all(found[i].work_id == dois[n] for n, i in enumerate(asked[:1200]))
    assert [found[i].work_id for i in asked[1200:]] == dois[:50]
    assert len([s for s in statements if s.startswith("SELECT")]) == 4  # 3 DOI chunks, 1 PMID


async def test_list_and_count_works(store: SqliteStore) -> None:
    """Works are listed in work-id order, a page at a time, and counted."""
    ids = ["10.5555/c", "pmid:7", "10.5555/a", "pmcid:PMC9", "10.5555/b"]
    await store.register([work(i) for i in ids])

    everything = [w.work_id for w in await store.list_works(0, 100)]
    assert everything == ["10.5555/a", "10.5555/b", "10.5555/c", "pmcid:PMC9", "pmid:7"]
    assert [w.work_id for w in await store.list_works(1, 2)] == ["10.5555/b", "10.5555/c"]
    assert [w.work_id for w in await store.list_works(4, 10)] == ["pmid:7"]
    assert await store.list_works(5, 10) == []
    assert await store.count_works() == 5


async def test_get_works_returns_only_existing(store: SqliteStore) -> None:
    """get_works maps the ids that exist to their works and omits the others."""
    await store.register([work(DOI), work("18974831")])

    found = await store.get_works([DOI, "10.1371/missing", "pmid:18974831"])

    assert found == {
        DOI: Work(DOI, doi=DOI),
        "pmid:18974831": Work("pmid:18974831", pmid="18974831"),
    }


# -- metric state ------------------------------------------------------------------------


async def test_write_aggregates_then_read_states(store: SqliteStore) -> None:
    """Written states read back equal, by key and per work (sorted by source)."""
    results = await write(
        store,
        ok(DOI, "openalex", T0, citations=12),
        ok(DOI, "crossref", T0, citations=10),
        ok("pmid:1", "crossref", T0, citations=1),
    )
    by_key = {(r.state.work_id, r.state.source): r.state for r in results}

    states = await store.states([(DOI, "crossref"), ("pmid:1", "crossref"), ("pmid:2", "crossref")])
    per_work = await store.states_for([DOI, "pmid:2"])

    assert states == {k: by_key[k] for k in [(DOI, "crossref"), ("pmid:1", "crossref")]}
    assert per_work == {
        DOI: [by_key[(DOI, "crossref")], by_key[(DOI, "openalex")]],
        "pmid:2": [],
    }


async def test_later_aggregates_replace_the_state(store: SqliteStore) -> None:
    """A newer observation's state replaces the stored one; an error keeps the totals."""
    await write(store, ok(DOI, "crossref", T0, citations=10))
    await write(store, ok(DOI, "crossref", T1, citations=11))
    await write(store, failed(DOI, "crossref", T2))

    (state,) = (await store.states([(DOI, "crossref")])).values()

    assert state.metrics == {"citations": 11}
    assert state.retrieved_at == T1
    assert state.status is Status.ERROR


async def test_unapplied_aggregates_are_not_written(store: SqliteStore) -> None:
    """An aggregate that was not applied (stale or redelivered) leaves the store alone."""
    state = SourceState(DOI, "crossref", {"citations": 99}, T0, T0, Status.OK)

    await store.write_aggregates([Aggregate(state, applied=False)])

    assert await store.states([(DOI, "crossref")]) == {}


async def test_history_points_by_work_and_source(store: SqliteStore) -> None:
    """History keeps one point per change, oldest first, for one source or all of them."""
    await write(
        store,
        ok(DOI, "crossref", T0, citations=10),
        ok(DOI, "crossref", T1, citations=10),  # unchanged: no point
        ok(DOI, "crossref", T2, citations=12),
        ok(DOI, "openalex", T1, citations=3),
        ok("pmid:1", "crossref", T0, citations=1),
    )

    assert await store.history(DOI, "crossref") == [
        HistoryPoint(DOI, "crossref", date(2024, 5, 1), {"citations": 10}),
        HistoryPoint(DOI, "crossref", date(2024, 5, 3), {"citations": 12}),
    ]
    assert [(h.source, h.day) for h in await store.history(DOI, None)] == [
        ("crossref", date(2024, 5, 1)),
        ("crossref", date(2024, 5, 3)),
        ("openalex", date(2024, 5, 2)),
    ]


async def test_events_are_deduplicated_by_event_id(store: SqliteStore) -> None:
    """An event delivered again (same id) is stored once; new ids are added."""
    first = Observation(
        DOI,
        "crossref",
        T0,
        Status.OK,
        {"citations": 2},
        events=(SourceEvent("e1", url="https://x/1"), SourceEvent("e2", url="https://x/2")),
    )
    second = Observation(
        DOI,
        "crossref",
        T1,
        Status.OK,
        {"citations": 3},
        events=(SourceEvent("e2", url="https://x/2"), SourceEvent("e3", url="https://x/3")),
    )
    await write(store, first)
    await write(store, second)
    await write(store, second)  # redelivered: not applied, nothing new

    events = await store.events(DOI, "crossref")

    assert sorted(e.event_id for e in events) == ["e1", "e2", "e3"]
    assert await store.events(DOI, "openalex") == []


async def test_events_of_one_batch_with_repeated_ids(store: SqliteStore) -> None:
    """The same event id twice inside one write is stored once."""
    state = SourceState(DOI, "crossref", {"citations": 1}, T0, T0, Status.OK)
    events = (SourceEvent("e1"), SourceEvent("e1"))

    await store.write_aggregates([Aggregate(state, applied=True, events=events)])

    assert [e.event_id for e in await store.events(DOI, "crossref")] == ["e1"]


# -- raw responses -----------------------------------------------------------------------


def raw(source: str, age: timedelta, *work_ids: str, body: str = "{}") -> RawResponse:
    """A raw response retrieved `age` ago (the store's TTL runs on the real clock)."""
    at = datetime.now(UTC).replace(microsecond=0) - age
    return RawResponse(source, at, f"https://api/{body}", 200, body, tuple(work_ids))


async def test_raw_responses_kept_and_looked_up_by_work(store: SqliteStore) -> None:
    """Each response is found from every work it concerns, newest first, per source."""
    batch = raw("crossref", timedelta(hours=3), DOI, "pmid:1", body="batch")
    single = raw("crossref", timedelta(hours=1), "pmid:1", body="single")
    other = raw("openalex", timedelta(hours=2), DOI, body="other-source")
    await store.add_raw_responses([batch, single, other])

    for_pmid = await store.raw_responses("crossref", "pmid:1", 10)
    for_doi = await store.raw_responses("crossref", DOI, 10)

    assert [r.body for r in for_pmid] == ["single", "batch"]
    assert [r.body for r in for_doi] == ["batch"]
    assert sorted(for_doi[0].work_ids) == sorted([DOI, "pmid:1"])
    assert (for_doi[0].url, for_doi[0].status, for_doi[0].retrieved_at) == (
        batch.url,
        200,
        batch.retrieved_at,
    )
    assert [r.body for r in await store.raw_responses("crossref", "pmid:1", 1)] == ["single"]
    assert [r.body for r in await store.raw_responses("openalex", DOI, 10)] == ["other-source"]
    assert await store.raw_responses("openalex", "pmid:1", 10) == []


async def test_expired_raw_responses_are_dropped(tmp_path: Path) -> None:
    """A response older than the TTL is gone once the store writes again; fresh ones stay."""
    store = SqliteStore(tmp_path / "alm.db", raw_ttl=timedelta(days=1))
    await store.migrate()
    await store.add_raw_responses([raw("crossref", timedelta(days=2), DOI, body="old")])
    await store.add_raw_responses([raw("crossref", timedelta(hours=1), DOI, body="new")])

    kept = await store.raw_responses("crossref", DOI, 10)
    await store.close()

    assert [r.body for r in kept] == ["new"]
    with sqlite3.connect(tmp_path / "alm.db") as conn:
        bodies = [row[0] for row in conn.execute("SELECT body FROM raw_responses")]
    assert bodies == ["new"]  # the file does not grow with expired bodies


async def test_expired_raw_responses_are_not_returned_before_the_next_write(
    tmp_path: Path,
) -> None:
    """A response past its TTL is not served even if no write has happened since (as a TTL does)."""
    store = SqliteStore(tmp_path / "alm.db", raw_ttl=timedelta(days=1))
    await store.migrate()
    await store.add_raw_responses([raw("crossref", timedelta(days=2), DOI, body="old")])

    kept = await store.raw_responses("crossref", DOI, 10)
    await store.close()

    assert kept == []


# -- due-index ---------------------------------------------------------------------------


async def test_due_scan_earliest_first_with_limit_and_attempt(store: SqliteStore) -> None:
    """due() returns entries due by `now`, earliest first, up to `limit`, keeping attempts."""
    await store.set_due(
        "crossref",
        [
            DueEntry("future", T0 + timedelta(hours=1)),
            DueEntry("late", T0 - timedelta(hours=1)),
            DueEntry("later", T0 - timedelta(minutes=1), attempt=2),
            DueEntry("latest", T0 - timedelta(days=3), attempt=3),
            DueEntry("exactly-now", T0),
        ],
    )

    assert await store.due("crossref", T0, 10) == [
        DueEntry("latest", T0 - timedelta(days=3), 3),
        DueEntry("late", T0 - timedelta(hours=1), 1),
        DueEntry("later", T0 - timedelta(minutes=1), 2),
        DueEntry("exactly-now", T0, 1),
    ]
    assert [e.work_id for e in await store.due("crossref", T0, 2)] == ["latest", "late"]
    assert await store.due("openalex", T0, 10) == []


async def test_set_due_replaces_the_previous_entry(store: SqliteStore) -> None:
    """Setting a work's due time again replaces it (one entry per work and source)."""
    await store.set_due("crossref", [DueEntry(DOI, T0 - timedelta(hours=1), attempt=2)])
    await store.set_due("openalex", [DueEntry(DOI, T0 - timedelta(hours=1))])

    await store.set_due("crossref", [DueEntry(DOI, T0 + timedelta(days=1), attempt=1)])

    assert await store.due("crossref", T0, 10) == []
    assert await store.due("crossref", T0 + timedelta(days=2), 10) == [
        DueEntry(DOI, T0 + timedelta(days=1), 1)
    ]
    assert [e.work_id for e in await store.due("openalex", T0, 10)] == [DOI]


async def test_leases_are_marked_and_released_as_due_now(store: SqliteStore) -> None:
    """A lease reads back as one; releasing makes the leases that run out within the window
    due now (attempt kept), and leaves scheduled times and later leases alone."""
    lease = DueEntry("a", T0 + timedelta(minutes=30), 2, leased=True)
    await store.set_due("crossref", [lease, DueEntry("b", T0 + timedelta(minutes=10))])
    await store.set_due("openalex", [DueEntry("c", T0 + timedelta(hours=5), leased=True)])

    assert await store.due("crossref", T1, 10) == [DueEntry("b", T0 + timedelta(minutes=10)), lease]
    assert await store.release_leases(T0, timedelta(hours=1)) == 1

    assert await store.due("crossref", T0, 10) == [DueEntry("a", T0, 2)]
    assert await store.due("openalex", T1, 10) == [
        DueEntry("c", T0 + timedelta(hours=5), leased=True)
    ]
    assert await store.release_leases(T0, timedelta(hours=1)) == 0


async def test_add_missing_due_keeps_existing_entries(store: SqliteStore) -> None:
    """Only (work, source) pairs without an entry get one; a scheduled time or a lease stays."""
    lease = DueEntry("a", T1, leased=True)
    await store.set_due("crossref", [lease])

    added = await store.add_missing_due(
        {"crossref": [DueEntry("a", T0), DueEntry("b", T0)], "openalex": [DueEntry("a", T0)]}
    )

    assert added == 2
    assert await store.due("crossref", T2, 10) == [DueEntry("b", T0), lease]
    assert await store.due("openalex", T2, 10) == [DueEntry("a", T0)]
    assert await store.add_missing_due({"crossref": [DueEntry("b", T1)]}) == 0


async def test_works_after_pages_in_id_order(store: SqliteStore) -> None:
    """Keyset pages: each continues after the last id of the one before, none repeats."""
    ids = sorted(f"10.1234/w{n:03d}" for n in range(25))
    await store.register([work(i) for i in reversed(ids)])

    pages, after = [], None
    while page := await store.works_after(after, 10):
        pages.append([w.work_id for w in page])
        after = page[-1].work_id

    assert [len(p) for p in pages] == [10, 10, 5]
    assert [w for p in pages for w in p] == ids


async def test_a_file_from_before_leases_is_migrated_with_its_entries(tmp_path: Path) -> None:
    """A file written by the previous schema keeps its due entries, read as not leased."""
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY)")
        for version, script in enumerate(MIGRATIONS[:2], start=1):
            conn.executescript(script)
            conn.execute("INSERT INTO schema_migrations VALUES (?)", (version,))
        conn.execute(
            "INSERT INTO due VALUES ('crossref', ?, '2024-05-01T11:00:00.000000Z', 3)", (DOI,)
        )
    store = SqliteStore(path)
    await store.migrate()

    assert await store.due("crossref", T0, 10) == [DueEntry(DOI, T0 - timedelta(hours=1), 3)]
    await store.close()


async def test_due_scan_orders_within_one_second(store: SqliteStore) -> None:
    """Entries half a second apart come out earliest first."""
    await store.set_due(
        "crossref",
        [DueEntry("second", T0 + timedelta(milliseconds=500)), DueEntry("first", T0)],
    )

    due = await store.due("crossref", T0 + timedelta(seconds=5), 10)

    assert [e.work_id for e in due] == ["first", "second"]


async def test_due_scan_includes_an_entry_due_a_fraction_of_a_second_ago(
    store: SqliteStore,
) -> None:
    """An entry due at midnight (a future publication date) is due 250 ms later."""
    await store.set_due("crossref", [DueEntry(DOI, T0)])

    due = await store.due("crossref", T0 + timedelta(milliseconds=250), 10)

    assert [e.work_id for e in due] == [DOI]


# -- leaderboard and summary -------------------------------------------------------------


async def test_top_works_by_metric(store: SqliteStore) -> None:
    """The leaderboard orders a source's works by a metric, highest first, ties by work id."""
    await write(
        store,
        ok("10.5555/a", "crossref", T0, citations=5),
        ok("10.5555/c", "crossref", T0, citations=12),
        ok("10.5555/b", "crossref", T0, citations=12),
        ok("10.5555/d", "crossref", T0, references=50),
        failed("10.5555/e", "crossref", T0),
        ok("10.5555/f", "openalex", T0, citations=100),
    )

    assert await store.top_works("crossref", "citations", 10) == [
        ("10.5555/b", 12),
        ("10.5555/c", 12),
        ("10.5555/a", 5),
    ]
    assert await store.top_works("crossref", "citations", 2) == [
        ("10.5555/b", 12),
        ("10.5555/c", 12),
    ]
    assert await store.top_works("openalex", "citations", 10) == [("10.5555/f", 100)]
    assert await store.top_works("crossref", "readers", 10) == []


async def test_source_summary_counts_works_and_errors(store: SqliteStore) -> None:
    """Per source: how many works have a state and how many of them last failed."""
    await write(
        store,
        ok("10.5555/a", "crossref", T0, citations=5),
        ok("10.5555/b", "crossref", T0, citations=1),
        failed("10.5555/b", "crossref", T1),
        failed("10.5555/c", "crossref", T0),
        ok("10.5555/d", "crossref", T0, citations=0),
        failed("10.5555/d", "crossref", T1),
        ok("10.5555/d", "crossref", T2, citations=1),  # recovered
        ok("10.5555/a", "openalex", T0, citations=9),
    )

    assert await store.source_summary() == {
        "crossref": {"works": 4, "errors": 2},
        "openalex": {"works": 1, "errors": 0},
    }


async def test_source_summary_of_an_empty_store(store: SqliteStore) -> None:
    """With nothing collected the summary is empty."""
    assert await store.source_summary() == {}


async def test_state_round_trips_through_the_store(store: SqliteStore) -> None:
    """Every field of a state (times, status, error, periods) survives storage."""
    result = aggregate(
        failed(DOI, "crossref", T1), aggregate(ok(DOI, "crossref", T0, c=1), None).state
    )
    await store.write_aggregates([result])

    assert await store.states([(DOI, "crossref")]) == {(DOI, "crossref"): result.state}


def test_migrations_are_applied_whole_or_not_at_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A migration that fails leaves the file as it was: the ones before it in the same start
    are neither applied nor recorded, so the next start applies each exactly once (a migration
    applied but unrecorded would be applied again, and an ALTER TABLE twice fails)."""
    from services.adapters.sqlite import migrations

    path = tmp_path / "alm.db"
    with sqlite3.connect(path) as conn:  # an older file: migrated step by step
        conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY)")
        conn.execute("CREATE TABLE earlier (a INTEGER)")
    good = "CREATE TABLE first (a INTEGER); ALTER TABLE first ADD COLUMN b INTEGER"
    monkeypatch.setattr(migrations, "MIGRATIONS", (good, "CREATE TABLE second (a INTEGER); oops"))
    with sqlite3.connect(path) as conn, pytest.raises(sqlite3.OperationalError):
        migrations.apply_migrations(conn)
    with sqlite3.connect(path) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        assert not tables & {"first", "second"}
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone() == (0,)
    monkeypatch.setattr(migrations, "MIGRATIONS", (good, "CREATE TABLE second (a INTEGER)"))
    with sqlite3.connect(path) as conn:
        migrations.apply_migrations(conn)
        migrations.apply_migrations(conn)
    assert migration_versions(path) == [1, 2]


def _schema(path: Path) -> tuple[set[tuple[str, str, str]], list[int]]:
    with sqlite3.connect(path) as conn:
        objects = {
            (kind, name, " ".join(sql.split()))
            for kind, name, sql in conn.execute(
                "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL"
            )
        }
    return objects, migration_versions(path)


def test_a_new_file_gets_the_schema_the_migrations_end_with(tmp_path: Path) -> None:
    """A new file is made from the final schema in one go; a file migrated step by step (as
    an older file is, one migration after another) ends with the same tables, columns,
    indexes and versions."""
    from services.adapters.sqlite import migrations

    new, stepwise = tmp_path / "new.db", tmp_path / "stepwise.db"
    with sqlite3.connect(new) as conn:
        migrations.apply_migrations(conn)
    with sqlite3.connect(stepwise) as conn:
        conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY)")
        conn.executescript(MIGRATIONS[0])  # an old file: the first migration only
        conn.execute("INSERT INTO schema_migrations VALUES (1)")
        migrations.apply_migrations(conn)
    assert _schema(new) == _schema(stepwise)
    assert len(_schema(new)[0]) > len(MIGRATIONS)
    assert _schema(new)[1] == list(range(1, len(MIGRATIONS) + 1))
