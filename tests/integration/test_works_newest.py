"""`works_newest` (ALM v5's listing without `ids`) against SqliteStore and CassandraStore: works
by publication date, newest first, undated last, then by work id; pages disjoint and complete;
a date learned or changed later moves the work. The listing spans every work, so the Cassandra
case gets a keyspace of this module's own (the SQLite case a file per test)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from services.adapters.cassandra import CassandraStore
from services.adapters.cassandra import issued as issued_index
from services.adapters.sqlite_store import SqliteStore
from services.cli import commands
from services.core.ports import Store
from services.core.works import Work
from services.settings import Settings
from tests.integration.conftest import Infra, _cleanup_keyspace

DATES = [date(1998, 3, 1), date(2003, 7, 9), date(2019, 12, 31), date(2020, 6, 1), None]


@pytest.fixture(scope="module")
def cassandra(infra: Infra) -> Iterator[CassandraStore]:
    """A keyspace of this module's own, migrated; the store usable from any test's loop."""
    mine = replace(infra, keyspace=f"{infra.keyspace}_w{uuid.uuid4().hex[:6]}")
    store = CassandraStore([mine.cassandra_host], mine.cassandra_port, mine.keyspace)
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, store.migrate()).result()
        yield store
        pool.submit(asyncio.run, store.close()).result()
    _cleanup_keyspace(mine)


@pytest.fixture(params=["sqlite", pytest.param("cassandra", marks=pytest.mark.integration)])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """Each Store adapter in turn."""
    if request.param == "sqlite":
        sqlite = SqliteStore(tmp_path / "alm.sqlite")
        await sqlite.migrate()
        yield sqlite
        await sqlite.close()
    else:
        yield request.getfixturevalue("cassandra")


def uid() -> str:
    return uuid.uuid4().hex[:8]


def work(doi: str, issued: date | None) -> Work:
    return Work(doi, doi=doi, issued=issued)


def newest_first(w: Work) -> tuple[bool, int, str]:
    """The order Lagotto listed works in (the definition the stores are checked against)."""
    return (w.issued is None, -(w.issued.toordinal() if w.issued else 0), w.work_id)


async def every_work(store: Store) -> list[Work]:
    out, after = [], None
    while page := await store.works_after(after, 500):
        out += page
        after = page[-1].work_id
    return out


async def paged(store: Store, per_page: int) -> list[list[str]]:
    """Every page of `works_newest` up to the first empty one."""
    pages: list[list[str]] = []
    while page := await store.works_newest(len(pages) * per_page, per_page):
        assert len(page) <= per_page
        pages.append([w.work_id for w in page])
    return pages


async def check_listing(store: Store, per_page: int) -> list[str]:
    """The pages are disjoint, complete and newest first; the listing, as work ids."""
    pages = await paged(store, per_page)
    listed = [w for page in pages for w in page]
    assert all(len(p) == per_page for p in pages[:-1])
    assert len(set(listed)) == len(listed) == await store.count_works()
    assert listed == [w.work_id for w in sorted(await every_work(store), key=newest_first)]
    return listed


async def test_pages_newest_first_undated_last(store: Store) -> None:
    """Works of several years, several on one date, and undated ones: each page holds the next
    ones by date, newest first, ties and undated works by id."""
    u = uid()
    works = [work(f"10.5555/{u}.{n:02d}", DATES[n % len(DATES)]) for n in range(23)]
    await store.register(works[::2] + works[1::2])  # not in id order
    listed = await check_listing(store, 4)
    mine = [w for w in listed if u in w]
    assert mine[:5] == [f"10.5555/{u}.{n:02d}" for n in (3, 8, 13, 18, 2)]  # 2020, then 2019
    assert mine[-4:] == [f"10.5555/{u}.{n:02d}" for n in (4, 9, 14, 19)]  # undated
    assert [w.work_id for w in await store.works_newest(2, 3)] == listed[2:5]


async def test_a_date_learned_later_moves_the_work(store: Store) -> None:
    """A date learned later (update_works, or registering the work again with it) moves the
    work from the undated ones to its date; a corrected date moves it again; it is listed
    once each time."""
    u = uid()
    await store.register([work(f"10.5555/{u}.{n}", DATES[n]) for n in range(4)])  # 1998-2020
    late, merged = work(f"10.5555/{u}.late", None), work(f"10.5555/{u}.merge", None)
    await store.register([late, merged])
    listed = [w for w in await check_listing(store, 3) if u in w]
    assert listed[-2:] == [late.work_id, merged.work_id]

    await store.update_works([replace(late, title="Known", issued=date(2024, 5, 6))])
    await store.register([replace(merged, issued=date(2001, 1, 1))])
    listed = [w for w in await check_listing(store, 3) if u in w]
    ids = {n: f"10.5555/{u}.{n}" for n in range(4)}
    assert listed == [late.work_id, ids[3], ids[2], ids[1], merged.work_id, ids[0]]

    await store.update_works([replace(late, issued=date(1990, 1, 1))])
    listed = [w for w in await check_listing(store, 5) if u in w]
    assert listed == [ids[3], ids[2], ids[1], merged.work_id, ids[0], late.work_id]


# -- Cassandra specifics --------------------------------------------------------------------


@pytest.mark.integration
async def test_deep_pages_skip_whole_years_by_their_count(
    cassandra: CassandraStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Offsets past COUNT_FROM skip whole buckets by counting them: the same pages."""
    u = uid()
    await cassandra.register([work(f"10.5555/{u}.{n:02d}", DATES[n % 5]) for n in range(15)])
    expected = await check_listing(cassandra, 4)
    monkeypatch.setattr(issued_index, "COUNT_FROM", 1)
    assert await check_listing(cassandra, 4) == expected


@pytest.mark.integration
async def test_a_row_of_a_date_the_work_no_longer_has_is_dropped(
    cassandra: CassandraStore,
) -> None:
    """A row left by racing updates (the work has another date now) is not listed and is
    deleted, while the work stays listed at its date."""
    u = uid()
    moved = work(f"10.5555/{u}.moved", date(2015, 5, 5))
    await cassandra.register([moved])
    cql = await cassandra.session()
    await cql.run("issued_put", (2016, date(2016, 1, 1), moved.work_id))
    await cql.run("issued_bucket_put", (2016,))
    listed = [w.work_id for w in await cassandra.works_newest(0, 10_000)]
    assert listed.count(moved.work_id) == 1
    rows = await cql.query("SELECT work_id FROM works_by_issued WHERE bucket=2016")
    assert moved.work_id not in {r.work_id for r in rows}
    await check_listing(cassandra, 7)


@pytest.mark.integration
async def test_migration_012_lists_works_registered_before_it(cassandra: CassandraStore) -> None:
    """Works registered before 012 (their rows missing) are listed once `migrate` has run it."""
    u = uid()
    await cassandra.register([work(f"10.5555/{u}.{n}", DATES[n]) for n in range(5)])
    cql = await cassandra.session()
    await cql.query("TRUNCATE works_by_issued")
    await cql.query("TRUNCATE works_issued_buckets")
    await cql.query("DELETE FROM schema_migrations WHERE version=12")
    assert await cassandra.works_newest(0, 10) == []
    await cassandra.migrate()
    listed = await check_listing(cassandra, 6)
    assert [w for w in listed if u in w] == [f"10.5555/{u}.{n}" for n in (3, 2, 1, 0, 4)]


@pytest.mark.integration
async def test_reindex_dates_writes_the_rows_of_works_that_lack_one(
    cassandra: CassandraStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`alm db reindex-dates` lists works a process of a version before 012 registered (no
    row) and keeps each work listed once."""
    u = uid()
    await cassandra.register([work(f"10.5555/{u}.{n}", DATES[n]) for n in range(5)])
    cql = await cassandra.session()
    for n in range(5):
        await cql.run("issued_del", issued_index.key_of(f"10.5555/{u}.{n}", DATES[n]))
    assert not [w for w in await cassandra.works_newest(0, 10_000) if u in w.work_id]
    settings = Settings(
        data_dir=tmp_path,
        store="cassandra",
        cassandra_hosts=(cassandra._cql.hosts[0],),
        cassandra_port=cassandra._cql.port,
        keyspace=cassandra.keyspace,
    )
    assert await commands.db_reindex_dates(settings) == 0
    assert "indexed (cassandra)" in capsys.readouterr().out
    listed = await check_listing(cassandra, 9)
    assert [w for w in listed if u in w] == [f"10.5555/{u}.{n}" for n in (3, 2, 1, 0, 4)]
