"""The `search_works` contract (tests/contracts/search.py) run against SqliteStore, a file per
test, and what is particular to SQLite's FTS5 index (the migration's backfill, hostile words);
the Cassandra run is tests/integration/test_search_store.py."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path

import pytest

from services.adapters.sqlite import SqliteStore
from services.adapters.sqlite.migrations import MIGRATIONS, SEARCH_MIGRATION
from services.core.ports import Store
from services.core.search import InvalidQuery, words
from tests.contracts.search import *  # noqa: F403  (the contract's tests, run here)
from tests.contracts.search import work


@pytest.fixture
def store(sqlite: SqliteStore) -> Store:
    """The contract's store: a migrated SqliteStore (tests/unit/conftest.py)."""
    return sqlite


async def test_migration_indexes_the_works_already_there(tmp_path: Path) -> None:
    """A file migrated up to the migration before search, with works in it, has them found
    once migrated."""
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY)")
    for version, script in enumerate(MIGRATIONS[: SEARCH_MIGRATION - 1], start=1):
        conn.executescript(script)
        conn.execute("INSERT INTO schema_migrations VALUES (?)", (version,))
    conn.executemany(
        "INSERT INTO works (work_id, doi, title, publisher, registered_at) VALUES (?,?,?,?,?)",
        [
            (f"10.1/{n}", f"10.1/{n}", f"Old Title {n}", "Ancient Press", "2020-01-01")
            for n in range(3)
        ],
    )
    conn.commit()
    conn.close()
    store = SqliteStore(path)
    await store.migrate()
    try:
        found, _ = await store.search_works(words("old ancient"), None, 10)
        assert sorted(w.work_id for w in found) == ["10.1/0", "10.1/1", "10.1/2"]
        assert [w.work_id for w in (await store.search_works(["2"], None, 10))[0]] == ["10.1/2"]
    finally:
        await store.close()


@pytest.mark.parametrize(
    "word", ['"', 'a"b', "NEAR(a b)", "a OR b", "*", "^x", "-", "x:y", "(", "AND", "NOT"]
)
async def test_fts_syntax_in_words_is_never_an_error(store: Store, word: str) -> None:
    """Words come folded from services.core.search.words, but the store takes no chances: FTS5
    syntax in a word is searched for as text, or refused as InvalidQuery, never an error."""
    await store.register([work("10.1/fts", "AND NOT near")])
    with contextlib.suppress(InvalidQuery):
        await store.search_works([word], None, 5)


async def test_a_cursor_not_from_a_page_is_refused(store: Store) -> None:
    with pytest.raises(InvalidQuery):
        await store.search_works(["x"], "10.1/abc", 5)
