"""Registration: storing works once per identifier, scheduled in the same write, and
announcing new ones on `alm.works`."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from services import registration
from services.adapters.memory.bus import MemoryBus
from services.adapters.sqlite import SqliteStore
from services.core.events import TOPIC_WORKS
from services.core.identifiers import Identifier
from services.core.ports import DueEntry, Registration, Schedule, WorkStore
from services.core.schema_check import check
from services.core.staleness import Policy
from services.core.works import Work
from services.fetchers.registry import get_source
from services.registration import (
    RegisterResult,
    Scheduling,
    register,
    register_works,
    update_metadata,
)

NOW = datetime(2024, 5, 1, 12, tzinfo=UTC)
DOI = "10.1371/journal.pcbi.1000204"
# Crossref looks works up by DOI only; PubMed by DOI, PMID or PMCID.
SCHEDULING = Scheduling((get_source("crossref"), get_source("pubmed")), Policy())


class FakeWorkStore:
    """A WorkStore over dicts that looks a whole batch up before writing any of it.

    That is what a store doing one batched lookup (e.g. Cassandra) does: duplicates inside one
    batch all come back as `created`, so `register` itself must collapse them. `due` holds
    the entries registration scheduled, by (source, work id).
    """

    def __init__(self) -> None:
        self.works: dict[str, Work] = {}
        self.index: dict[Identifier, str] = {}
        self.due: dict[tuple[str, str], DueEntry] = {}
        self.intake: list[str] = []  # work ids registered in bulk, in order

    async def register(
        self, works: Sequence[Work], schedule: Schedule | None = None, intake: bool = False
    ) -> list[Registration]:
        known = dict(self.index)
        out = []
        for work in works:
            found = next((known[i] for i in work.identifiers() if i in known), None)
            merged = self.works[found].merged(work) if found else work
            self.works[merged.work_id] = merged
            self.index.update({i: merged.work_id for i in merged.identifiers()})
            out.append(Registration(merged, created=found is None))
        if intake:
            self.intake += dict.fromkeys(r.work.work_id for r in out)
            return out
        for work_id in {r.work.work_id for r in out} if schedule is not None else ():
            for source, entry in schedule(self.works[work_id]).items():
                self.due.setdefault((source, work_id), entry)
        return out

    async def works_after(self, after: str | None, limit: int) -> list[Work]:
        return [self.works[w] for w in sorted(self.works) if w > (after or "")][:limit]

    async def update_works(self, works: Sequence[Work]) -> None:
        self.works.update({w.work_id: w for w in works})

    async def get_work(self, work_id: str) -> Work | None:
        return self.works.get(work_id)

    async def get_works(self, work_ids: Sequence[str]) -> dict[str, Work]:
        return {w: self.works[w] for w in work_ids if w in self.works}

    async def find_work(self, ident: Identifier) -> Work | None:
        work_id = self.index.get(ident)
        return self.works[work_id] if work_id else None

    async def find_works(self, idents: Sequence[Identifier]) -> dict[Identifier, Work]:
        return {i: self.works[self.index[i]] for i in idents if i in self.index}

    async def list_works(self, offset: int, limit: int) -> list[Work]:
        return [self.works[w] for w in sorted(self.works)][offset : offset + limit]

    async def works_newest(self, offset: int, limit: int) -> list[Work]:
        def newest(w: Work) -> tuple[bool, int, str]:
            return (w.issued is None, -(w.issued.toordinal() if w.issued else 0), w.work_id)

        return sorted(self.works.values(), key=newest)[offset : offset + limit]

    async def count_works(self) -> int:
        return len(self.works)


@pytest.fixture(params=["fake", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[WorkStore]:
    """The in-memory fake and the real SQLite adapter: register must work with both."""
    if request.param == "fake":
        yield FakeWorkStore()
        return
    sqlite = SqliteStore(tmp_path / "alm.db")
    await sqlite.migrate()
    yield sqlite
    await sqlite.close()


@pytest.fixture
async def sqlite(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    """A migrated SQLite store."""
    store = SqliteStore(tmp_path / "alm.db")
    await store.migrate()
    yield store
    await store.close()


async def due_of(store: WorkStore) -> dict[tuple[str, str], DueEntry]:
    """Every due entry the store holds, by (source, work id)."""
    if isinstance(store, FakeWorkStore):
        return dict(store.due)
    assert isinstance(store, SqliteStore)
    out = {}
    for source in ("crossref", "pubmed"):
        for entry in await store.due(source, NOW + timedelta(days=3650), 1_000_000):
            out[(source, entry.work_id)] = entry
    return out


def entries(*keys: tuple[str, str], at: datetime = NOW) -> Mapping[tuple[str, str], DueEntry]:
    """A due entry at `at` for each (source, work id)."""
    return {(source, work_id): DueEntry(work_id, at) for source, work_id in keys}


async def announced(bus: MemoryBus) -> list[tuple[str, dict[str, object]]]:
    """Everything on alm.works not yet read by the test's consumer group."""
    consumer = bus.consumer([TOPIC_WORKS], "test")
    messages = await consumer.poll(1000, timeout=0)
    await consumer.commit()
    return [(m.key, dict(m.value)) for m in messages]


async def test_valid_ids_are_registered_and_announced(store: WorkStore) -> None:
    """Each valid id becomes a work, reported created and announced once on alm.works."""
    bus = MemoryBus()

    results = await register(
        ["10.1371/JOURNAL.PCBI.1000204", "pmid:18974831", "pmc2568856"],
        store,
        bus,
        NOW,
        SCHEDULING,
    )

    assert results == [
        RegisterResult("10.1371/JOURNAL.PCBI.1000204", DOI, created=True),
        RegisterResult("pmid:18974831", "pmid:18974831", created=True),
        RegisterResult("pmc2568856", "pmcid:PMC2568856", created=True),
    ]
    assert await store.count_works() == 3
    events = await announced(bus)
    assert [key for key, _ in events] == [DOI, "pmid:18974831", "pmcid:PMC2568856"]
    for key, event in events:
        check("work", event)
        assert event["event"] == "registered"
        assert event["at"] == "2024-05-01T12:00:00Z"
        assert event["work"]["work_id"] == key  # type: ignore[index]
    assert events[0][1]["work"]["doi"] == DOI  # type: ignore[index]
    assert events[1][1]["work"]["pmid"] == "18974831"  # type: ignore[index]
    assert events[2][1]["work"]["pmcid"] == "PMC2568856"  # type: ignore[index]


async def test_invalid_ids_get_an_error_naming_the_value(store: WorkStore) -> None:
    """Invalid ids are reported in place with an error naming them; valid ones still register."""
    bus = MemoryBus()

    results = await register(["not-a-doi", DOI, "", "PMC0"], store, bus, NOW, SCHEDULING)

    assert [r.input for r in results] == ["not-a-doi", DOI, "", "PMC0"]
    assert [r.work_id for r in results] == [None, DOI, None, None]
    for result in (results[0], results[2], results[3]):
        assert result.error is not None
        assert repr(result.input) in result.error
        assert not result.created
        assert result.to_dict()["status"] == "invalid"
    assert await store.count_works() == 1
    assert [key for key, _ in await announced(bus)] == [DOI]


async def test_only_invalid_ids_publish_nothing(store: WorkStore) -> None:
    """A call with nothing valid stores and announces nothing."""
    bus = MemoryBus()

    results = await register(["nope", "10.1/x"], store, bus, NOW, SCHEDULING)

    assert all(r.error for r in results)
    assert await store.count_works() == 0
    assert bus.published.get(TOPIC_WORKS, 0) == 0


async def test_same_doi_twice_in_one_call_is_one_work(store: WorkStore) -> None:
    """Two spellings of one DOI in one call give one work, created once and announced once."""
    bus = MemoryBus()

    results = await register(
        ["10.1371/JOURNAL.PCBI.1000204", "https://doi.org/10.1371/journal.pcbi.1000204"],
        store,
        bus,
        NOW,
        SCHEDULING,
    )

    assert [(r.work_id, r.created) for r in results] == [(DOI, True), (DOI, False)]
    assert [r.to_dict()["status"] for r in results] == ["created", "exists"]
    assert await store.count_works() == 1
    assert [key for key, _ in await announced(bus)] == [DOI]


async def test_re_registration_reports_exists_and_publishes_nothing(store: WorkStore) -> None:
    """Registering a known work again (any spelling) reports `exists` and announces nothing."""
    bus = MemoryBus()
    await register([DOI], store, bus, NOW, SCHEDULING)
    await announced(bus)
    published_before = bus.published[TOPIC_WORKS]

    results = await register(["doi:10.1371/Journal.Pcbi.1000204"], store, bus, NOW, SCHEDULING)

    assert results == [RegisterResult("doi:10.1371/Journal.Pcbi.1000204", DOI, created=False)]
    assert results[0].to_dict() == {
        "input": "doi:10.1371/Journal.Pcbi.1000204",
        "work_id": DOI,
        "status": "exists",
    }
    assert bus.published[TOPIC_WORKS] == published_before
    assert await announced(bus) == []
    assert await store.count_works() == 1


async def test_registered_work_can_be_found_by_its_identifier(store: WorkStore) -> None:
    """After registering, the store finds the work by the normalised identifier."""
    bus = MemoryBus()
    await register(["https://dx.doi.org/10.1371/JOURNAL.PCBI.1000204"], store, bus, NOW, SCHEDULING)

    work = await store.get_work(DOI)

    assert work == Work(DOI, doi=DOI)


def test_register_result_to_dict_shapes() -> None:
    """The API's per-id result: created / exists with the work id, invalid with the error."""
    assert RegisterResult("x", DOI, created=True).to_dict() == {
        "input": "x",
        "work_id": DOI,
        "status": "created",
    }
    assert RegisterResult("y", error="invalid identifier 'y'").to_dict() == {
        "input": "y",
        "status": "invalid",
        "error": "invalid identifier 'y'",
    }


async def test_registering_schedules_every_source_that_can_fetch_the_work(
    store: WorkStore,
) -> None:
    """Registration alone (no scheduler, no event read) leaves each work due now from every
    source that can look it up: the DOI from both sources, the PMID from PubMed only."""
    await register([DOI, "pmid:18974831"], store, MemoryBus(), NOW, SCHEDULING)

    assert await due_of(store) == entries(
        ("crossref", DOI), ("pubmed", DOI), ("pubmed", "pmid:18974831")
    )


async def test_registering_a_known_work_again_restores_a_missing_entry_only(
    sqlite: SqliteStore,
) -> None:
    """A known work whose entry went missing (older data, a crash) gets it back when it is
    registered again; it still answers `exists`, and its other entry (a lease) is kept."""
    bus = MemoryBus()
    await register([DOI], sqlite, bus, NOW, SCHEDULING)
    lease = DueEntry(DOI, NOW + timedelta(hours=1), 2, leased=True)
    await sqlite.set_due("pubmed", [lease])
    with sqlite3.connect(sqlite._path) as conn:
        conn.execute("DELETE FROM due WHERE source='crossref'")

    again = await register([DOI.upper()], sqlite, bus, NOW + timedelta(days=1), SCHEDULING)

    assert [r.to_dict()["status"] for r in again] == ["exists"]
    assert await due_of(sqlite) == {
        ("crossref", DOI): DueEntry(DOI, NOW + timedelta(days=1)),
        ("pubmed", DOI): lease,
    }


async def test_a_work_published_later_is_due_on_its_publication_date(
    sqlite: SqliteStore,
) -> None:
    """A work whose issued date is still to come is first due on that date, from each source."""
    future = Work(DOI, doi=DOI, issued=date(2024, 6, 1))
    schedule = SCHEDULING.first_due(future, NOW)

    await sqlite.register([future], lambda w: SCHEDULING.first_due(w, NOW))

    at = datetime(2024, 6, 1, tzinfo=UTC)
    assert schedule == {"crossref": DueEntry(DOI, at), "pubmed": DueEntry(DOI, at)}
    assert await due_of(sqlite) == entries(("crossref", DOI), ("pubmed", DOI), at=at)


async def test_works_and_their_entries_are_one_transaction(sqlite: SqliteStore) -> None:
    """If writing the due entries fails, the works are not registered either: a crash can
    never leave a registered work that nothing will refresh."""
    with sqlite3.connect(sqlite._path) as conn:
        conn.execute(
            "CREATE TRIGGER no_due BEFORE INSERT ON due BEGIN SELECT RAISE(ABORT, 'disk'); END"
        )

    with pytest.raises(sqlite3.IntegrityError, match="disk"):
        await register([DOI, "pmid:18974831"], sqlite, MemoryBus(), NOW, SCHEDULING)

    assert await sqlite.count_works() == 0


async def test_a_large_registration_schedules_every_work(
    store: WorkStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More works than one chunk (made small here: the chunking is what is tested, not the
    size): every one is registered, scheduled and announced once."""
    assert registration.CHUNK >= 1000  # the real chunk bounds memory, not one work a write
    monkeypatch.setattr(registration, "CHUNK", 40)
    bus = MemoryBus(window=0)
    consumer = bus.consumer([TOPIC_WORKS], "subscriber")
    ids = [f"10.5555/large.{n}" for n in range(registration.CHUNK * 2 + 7)]

    results = await register(ids, store, bus, NOW, SCHEDULING)

    assert sum(r.created for r in results) == len(ids)
    due = await due_of(store)
    assert len(due) == 2 * len(ids)
    assert {work_id for _, work_id in due} == set(ids)
    assert len(await consumer.poll(len(ids) * 2, timeout=0)) == len(ids)


CATALOGUED = Work(
    DOI,
    doi=DOI,
    title="Ten Simple Rules for Getting Published",
    issued=date(2008, 10, 31),
    publisher="Public Library of Science (PLoS)",
    type="journal-article",
    publisher_id="340",
)


async def test_works_with_metadata_are_registered_scheduled_and_announced_with_it(
    store: WorkStore,
) -> None:
    """`register_works` keeps the metadata a catalogue gives (type, publisher id too), writes
    the due entries and announces each new work with it; once only."""
    bus = MemoryBus()
    results = await register_works([(DOI, CATALOGUED)], store, bus, NOW, SCHEDULING)
    assert [r.to_dict() for r in results] == [{"input": DOI, "work_id": DOI, "status": "created"}]
    assert await store.get_work(DOI) == CATALOGUED
    assert set(await due_of(store)) == {("crossref", DOI), ("pubmed", DOI)}
    [(key, event)] = await announced(bus)
    assert key == DOI and event["work"] == CATALOGUED.to_dict()
    again = await register_works([(DOI, CATALOGUED)], store, bus, NOW, SCHEDULING)
    assert not again[0].created and await announced(bus) == []


async def test_a_work_the_schema_refuses_gets_its_error_and_the_rest_is_registered(
    store: WorkStore,
) -> None:
    """A work whose metadata the alm.works schema refuses (a type with spaces) is reported,
    never written; the others of its batch are."""
    bad = Work("10.1371/bad", doi="10.1371/bad", type="Journal Article")
    results = await register_works(
        [("10.1371/bad", bad), (DOI, CATALOGUED)], store, MemoryBus(), NOW, SCHEDULING
    )
    assert results[0].error and "type" in results[0].error and results[1].created
    assert await store.get_work("10.1371/bad") is None


async def test_known_works_take_new_metadata_and_are_announced_as_updated(
    store: WorkStore,
) -> None:
    """Registering keeps what a known work has; `update_metadata` replaces it (the catalogue is
    the authority) and announces the change as `updated`."""
    bus = MemoryBus()
    await register([DOI], store, bus, NOW, SCHEDULING)
    await announced(bus)
    old = await store.get_work(DOI)
    assert old is not None
    fixed = old.overridden(CATALOGUED)
    await update_metadata([fixed], store, bus, NOW)
    assert await store.get_work(DOI) == CATALOGUED
    [(_, event)] = await announced(bus)
    assert event["event"] == "updated" and event["work"]["publisher_id"] == "340"
    await update_metadata([], store, bus, NOW)
    assert await announced(bus) == []


def test_an_override_replaces_metadata_but_never_identifiers() -> None:
    """`overridden` takes every metadata field the other work has; ids and empty fields stay."""
    known = Work(DOI, doi=DOI, pmid="18974831", title="Old", canonical_url="https://x.org/a")
    new = known.overridden(Work(DOI, doi="10.9/other", pmid=None, title="New", type="dataset"))
    assert (new.doi, new.pmid, new.title, new.type) == (DOI, "18974831", "New", "dataset")
    assert new.canonical_url == "https://x.org/a"
    assert known.overridden(known) is known
