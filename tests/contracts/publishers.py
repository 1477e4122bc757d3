"""The PublisherStore contract and a whole catalogue import: the same calls, the same answers
from SQLite (tests/unit/test_publishers_store.py, needing nothing) and Cassandra
(tests/integration/test_publishers_store.py: the shared server, this run's own keyspace; ids
unique per test). Each gives the `stores` fixture."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime

from services.adapters.memory.bus import MemoryBus
from services.bootstrap import make_caller, make_scheduling
from services.catalogue_import import Importer, ImportOptions
from services.core.catalogue_state import ImportState, Scope, Tally, Window, begin, planned
from services.core.ports import Store
from services.core.publishers import Publisher, PublisherStore
from services.core.works import Work
from services.fetchers.catalogue import CatalogueClient
from services.fetchers.http import HttpSettings
from services.fetchers.registry import SOURCES, get_source
from services.settings import FIXTURES, Settings
from services.stub import server as stub_server

NOW = datetime(2026, 11, 29, 12, tzinfo=UTC)


@dataclass
class Stores:
    """The works store and the publisher store over its database."""

    works: Store
    publishers: PublisherStore


def member() -> str:
    """A member id of this test's own (the keyspace is shared by the session)."""
    return str(random.randrange(10**8, 10**9))


async def test_publishers_are_kept_replaced_and_listed_by_name(stores: Stores) -> None:
    """What was put is read back; a second put replaces; the list is by name."""
    first, second = member(), member()
    zeta = Publisher(first, "Zeta Press", ("10.55555",), ("Zeta",), "Oslo", 12, NOW)
    alpha = Publisher(second, "alpha Books", ())
    await stores.publishers.put_publisher(zeta)
    await stores.publishers.put_publisher(alpha)
    assert await stores.publishers.get_publisher(first) == zeta
    renamed = replace(zeta, name="Zeta Press Ltd", works_upstream=13)
    await stores.publishers.put_publisher(renamed)
    assert await stores.publishers.get_publisher(first) == renamed
    assert await stores.publishers.get_publisher(member()) is None
    listed = [
        p for p in await stores.publishers.list_publishers() if p.member_id in (first, second)
    ]
    assert listed == [alpha, renamed]


async def test_the_state_of_an_import_is_kept_per_scope(stores: Stores) -> None:
    """An import's state reads back equal, replaced by the next put; scopes are apart."""
    scope = Scope.member(member())
    state = planned(begin(scope, None, NOW), [Window(None, NOW.date(), 5)], 5)
    await stores.publishers.put_import(state)
    assert await stores.publishers.get_import(scope) == state
    later = replace(state, cursor="DnF1+/=", cursor_at=NOW, within=1000, tally=Tally(1000))
    await stores.publishers.put_import(later)
    assert await stores.publishers.get_import(scope) == later
    other = Scope.prefix(f"10.{random.randrange(10**7, 10**8)}")
    assert await stores.publishers.get_import(other) is None
    await stores.publishers.put_import(replace(state, scope=other))
    scopes = {s.scope for s in await stores.publishers.list_imports()}
    assert {scope, other} <= scopes
    assert all(isinstance(s, ImportState) for s in await stores.publishers.list_imports())


async def test_a_publishers_works_page_in_work_id_order_and_follow_a_move(stores: Stores) -> None:
    """Works registered with a publisher id and indexed are listed in pages, in work-id order,
    and counted; a work that moves to another publisher leaves the first one's list."""
    mine, theirs = member(), member()
    dois = [f"10.5555/pub.{mine}.{n:03d}" for n in range(25)]
    works = [Work(d, doi=d, type="journal-article", publisher_id=mine) for d in dois]
    await stores.works.register(works)
    await stores.publishers.index_publisher_works([(mine, d) for d in dois])
    await stores.publishers.index_publisher_works([(mine, d) for d in dois[:3]])  # idempotent
    pages = [await stores.publishers.publisher_works(mine, o, 10) for o in (0, 10, 20)]
    assert [w.work_id for page in pages for w in page] == sorted(dois)
    assert pages[0][0] == works[0]
    assert await stores.publishers.count_publisher_works(mine) == 25
    moved = replace(works[5], publisher_id=theirs)
    await stores.works.update_works([moved])
    await stores.publishers.index_publisher_works(
        [(theirs, moved.work_id)], [(mine, moved.work_id)]
    )
    assert moved.work_id not in {
        w.work_id for w in await stores.publishers.publisher_works(mine, 0, 50)
    }
    assert await stores.publishers.publisher_works(theirs, 0, 50) == [moved]
    assert await stores.publishers.count_publisher_works(mine) == 24
    assert await stores.publishers.count_publisher_works(member()) == 0


async def test_a_publishers_works_walk_with_a_cursor_past_a_stale_entry(stores: Stores) -> None:
    """Keyset pages: each page the works after the cursor, in work-id order, the next cursor
    None only after the last; an index entry whose work moved to another publisher is not
    listed, and does not end the walk early (Cassandra keeps such entries until moved)."""
    mine, theirs = member(), member()
    dois = [f"10.5555/cur.{mine}.{n:03d}" for n in range(23)]
    works = [Work(d, doi=d, type="journal-article", publisher_id=mine) for d in dois]
    await stores.works.register(works)
    await stores.publishers.index_publisher_works([(mine, d) for d in dois])
    stale = replace(works[12], publisher_id=theirs)  # moved, its old entry left in the index
    await stores.works.update_works([stale])
    walked: list[str] = []
    cursor: str | None = None
    for _ in range(10):
        page, cursor = await stores.publishers.publisher_works_after(mine, cursor, 5)
        assert all(w.publisher_id == mine for w in page)
        walked += [w.work_id for w in page]
        if cursor is None:
            break
    assert walked == sorted(set(dois) - {stale.work_id})
    assert await stores.publishers.publisher_works_after(mine, sorted(dois)[-1], 5) == ([], None)
    empty = await stores.publishers.publisher_works_after(member(), None, 5)
    assert empty == ([], None)


async def test_works_keep_their_type_and_publisher_through_every_read(stores: Stores) -> None:
    """The new work fields survive registration, lookups, pages and metadata updates."""
    doi = f"10.5555/typed.{member()}"
    work = Work(doi, doi=doi, title="T", issued=date(2026, 1, 2), type="dataset", publisher_id="78")
    [registration] = await stores.works.register([work])
    assert registration.created and registration.work == work
    assert await stores.works.get_work(doi) == work
    assert (await stores.works.get_works([doi]))[doi] == work
    bare = await stores.works.register([Work(doi, doi=doi)])
    assert bare[0].work == work  # registering again keeps what is known
    await stores.works.update_works([replace(work, type="journal-article")])
    assert (await stores.works.get_work(doi)) == replace(work, type="journal-article")


class _Quiet:
    def found(self, publisher: Publisher) -> None:
        pass

    def planned(self, state: ImportState) -> None:
        pass

    def advanced(self, state: ImportState) -> None:
        pass

    def note(self, text: str) -> None:
        pass


async def test_a_catalogue_import_registers_and_indexes_every_work(stores: Stores) -> None:
    """PLOS imported from the stub: every work registered once, the publisher stored, its
    works listed and counted, the import complete; a second run registers nothing new."""
    app = stub_server.init_app(SOURCES, FIXTURES)
    catalogue = app[stub_server.STUBS]["crossref"].catalogue
    catalogue.resize(296)
    runner, root = await stub_server.start(app)
    settings = Settings(upstream_root=root, rates={"crossref": 1000.0})
    crossref = get_source("crossref")
    try:
        async with make_caller(
            settings, [crossref], HttpSettings(retries=0, rates=settings.rates)
        ) as caller:
            client = CatalogueClient(caller, crossref, settings.source_config("crossref"))
            importer = Importer(
                client,
                stores.works,
                stores.publishers,
                MemoryBus(window=0),
                make_scheduling(settings),
                lambda: datetime.now(UTC),
                _Quiet(),
                ImportOptions(rows=100, window_works=120),
            )
            state = await importer.run(Scope.prefix("10.1371"), None, True, asyncio.Event())
            again = await importer.run(
                Scope.prefix("10.1371"), date(2020, 1, 1), False, asyncio.Event()
            )
    finally:
        await runner.cleanup()
    assert state.complete and state.done == 300 and len(state.windows) >= 3
    assert state.tally.created + state.tally.known == 300
    assert again.complete and again.tally.created == 0
    assert await stores.publishers.count_publisher_works("340") == 300
    listed = await stores.publishers.publisher_works("340", 0, 1000)
    assert len(listed) == 300 and all(w.type and w.publisher_id == "340" for w in listed)
    publisher = await stores.publishers.get_publisher("340")
    assert publisher is not None and publisher.works_upstream == 300
    assert await stores.publishers.get_import(Scope.prefix("10.1371")) == again
