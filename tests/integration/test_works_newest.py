"""The `works_newest` contract (tests/contracts/works_newest.py) against CassandraStore, in a
keyspace of this module's own (the listing spans every work), and what is particular to
Cassandra's date index. The SQLite run is tests/unit/test_works_newest.py."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from services.adapters.cassandra import CassandraStore
from services.adapters.cassandra import issued as issued_index
from services.cli import commands
from services.core.ports import Store
from services.settings import Settings
from tests.contracts.works_newest import *  # noqa: F403  (the contract's tests, run here)
from tests.contracts.works_newest import DATES, check_listing, every_work, uid, work
from tests.integration.conftest import Infra, own_keyspace

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cassandra(infra: Infra) -> Iterator[CassandraStore]:
    """A keyspace of this module's own, migrated; the store usable from any test's loop."""
    yield from own_keyspace(infra, "w")


@pytest.fixture
def store(cassandra: CassandraStore) -> Store:
    """The contract's store: this module's CassandraStore."""
    return cassandra


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


@pytest.mark.integration
async def test_migration_013_counts_works_registered_before_it(cassandra: CassandraStore) -> None:
    """`count_works` reads the works_count counters, which registration keeps (a work known
    already is not counted again) and `migrate` fills for works registered before 014."""
    u = uid()
    before = await cassandra.count_works()
    await cassandra.register([work(f"10.5555/{u}.c{n}", DATES[n]) for n in range(5)])
    await cassandra.register([work(f"10.5555/{u}.c0", DATES[0])])  # known: not counted again
    assert await cassandra.count_works() == before + 5 == len(await every_work(cassandra))
    cql = await cassandra.session()
    await cql.query("TRUNCATE works_count")
    await cql.query("DELETE FROM schema_migrations WHERE version=14")
    assert await cassandra.count_works() == 0
    await cassandra.migrate()
    assert await cassandra.count_works() == len(await every_work(cassandra)) == before + 5
