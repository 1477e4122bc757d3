"""Registration: storing works once per identifier and announcing new ones on `alm.works`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from pathlib import Path

import pytest

from services.adapters.memory_bus import MemoryBus
from services.adapters.sqlite_store import SqliteStore
from services.core.events import TOPIC_WORKS
from services.core.identifiers import Identifier
from services.core.ports import Registration, WorkStore
from services.core.schema_check import check
from services.core.works import Work
from services.registration import RegisterResult, register

NOW = datetime(2024, 5, 1, 12, tzinfo=UTC)
DOI = "10.1371/journal.pcbi.1000204"


class FakeWorkStore:
    """A WorkStore over dicts that looks a whole batch up before writing any of it.

    That is what a store doing one batched lookup (e.g. Cassandra) does: duplicates inside one
    batch all come back as `created`, so `register` itself must collapse them.
    """

    def __init__(self) -> None:
        self.works: dict[str, Work] = {}
        self.index: dict[Identifier, str] = {}

    async def register(self, works: Sequence[Work]) -> list[Registration]:
        known = dict(self.index)
        out = []
        for work in works:
            found = next((known[i] for i in work.identifiers() if i in known), None)
            merged = self.works[found].merged(work) if found else work
            self.works[merged.work_id] = merged
            self.index.update({i: merged.work_id for i in merged.identifiers()})
            out.append(Registration(merged, created=found is None))
        return out

    async def update_works(self, works: Sequence[Work]) -> None:
        self.works.update({w.work_id: w for w in works})

    async def get_work(self, work_id: str) -> Work | None:
        return self.works.get(work_id)

    async def get_works(self, work_ids: Sequence[str]) -> dict[str, Work]:
        return {w: self.works[w] for w in work_ids if w in self.works}

    async def find_work(self, ident: Identifier) -> Work | None:
        work_id = self.index.get(ident)
        return self.works[work_id] if work_id else None

    async def list_works(self, offset: int, limit: int) -> list[Work]:
        return [self.works[w] for w in sorted(self.works)][offset : offset + limit]

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
        ["10.1371/JOURNAL.PCBI.1000204", "pmid:18974831", "pmc2568856"], store, bus, NOW
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

    results = await register(["not-a-doi", DOI, "", "PMC0"], store, bus, NOW)

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

    results = await register(["nope", "10.1/x"], store, bus, NOW)

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
    )

    assert [(r.work_id, r.created) for r in results] == [(DOI, True), (DOI, False)]
    assert [r.to_dict()["status"] for r in results] == ["created", "exists"]
    assert await store.count_works() == 1
    assert [key for key, _ in await announced(bus)] == [DOI]


async def test_re_registration_reports_exists_and_publishes_nothing(store: WorkStore) -> None:
    """Registering a known work again (any spelling) reports `exists` and announces nothing."""
    bus = MemoryBus()
    await register([DOI], store, bus, NOW)
    await announced(bus)
    published_before = bus.published[TOPIC_WORKS]

    results = await register(["doi:10.1371/Journal.Pcbi.1000204"], store, bus, NOW)

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
    await register(["https://dx.doi.org/10.1371/JOURNAL.PCBI.1000204"], store, bus, NOW)

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
